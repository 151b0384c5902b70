"""No unrecorded path (SPEC §4): the exempt list is matched on the routed path. Behind the real gunicorn with
the shipped deploy/gunicorn.conf.py, a client's `SCRIPT_NAME` header is put in front of `request.path` but
not routed: `SCRIPT_NAME: /healthz` on `/healthz/api/v1/consumers/` reaches the consumer list, which must then
be recorded like any other request."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from audit.models import AuditEvent
from portal.accounts.models import User
from portal.accounts.tokens import token_create
from tests.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn() -> Iterator[str]:
    """The portal under gunicorn with deploy/gunicorn.conf.py, on the test database; its base URL."""
    db = settings.DATABASES["default"]
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "PORTAL_EMBEDDED_BEAT": "false",
        "PORTAL_VAR_DIR": str(settings.VAR_DIR),  # the identifier keys the test's rows were encrypted with
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", "deploy/gunicorn.conf.py", "portal.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited with {server.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("gunicorn did not listen within 60 s")
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (our own test server)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("prefix", ["/healthz", "/static"])
def test_a_script_name_header_does_not_skip_the_recorder(gunicorn, prefix):
    call_command("seed_demo", "--consumers", "120", verbosity=0)
    secret, _token = token_create(user=User.objects.get(username="regulator"))
    assert connection.vendor == "postgresql"
    before = AuditEvent.objects.count()
    path = f"{prefix}/api/v1/consumers/"
    status, body = _get(gunicorn + path, {"Authorization": f"Bearer {secret}", "SCRIPT_NAME": prefix})
    # gunicorn routed the request to the consumer list (the header is honoured, as it is in production)...
    assert status == 200 and b'"public_id"' in body
    # ...so it must have been recorded, under the path the client asked for.
    listed = list(AuditEvent.objects.filter(action="consumer.list"))
    assert len(listed) == 1, "consumer data was served without an audit event"
    event = listed[0]
    assert event.path == path and event.actor_username == "regulator" and event.row_count > 0
    assert event.subjects.count() == event.row_count
    assert AuditEvent.objects.count() > before
