"""Fixtures for the personas and the real services.

Tests marked `postgres`, `redis`, `worker` or `browser` need that service. Without it they are skipped on a
newcomer's machine and fail when PORTAL_REQUIRE_SERVICES=1 (CI): a missing service never passes silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _missing(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL (set DATABASE_URL)"
    if marker in ("redis", "worker") and not settings.REDIS_URL:
        return "needs Redis (set REDIS_URL)"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("postgres", "redis", "worker"):
        if item.get_closest_marker(marker):
            reason = _missing(marker)
            if reason:
                if settings.PORTAL_REQUIRE_SERVICES:
                    pytest.fail(f"PORTAL_REQUIRE_SERVICES is set and this test {reason}")
                pytest.skip(reason)


@pytest.fixture
def organisations(db):
    from tests.factories import OrganisationFactory

    return {
        "regulator": OrganisationFactory.create(kind="regulator", short_name="reg-a"),
        "shareholder": OrganisationFactory.create(kind="shareholder", short_name="share-a"),
        "operator": OrganisationFactory.create(kind="operator", short_name="op"),
    }


@pytest.fixture
def celery_worker_process() -> Iterator[subprocess.Popen]:
    """A real Celery worker process on the test broker, stopped after the test."""
    env = {**os.environ, "PORTAL_EMBEDDED_BEAT": "false"}
    db = settings.DATABASES["default"]
    if connection.vendor == "postgresql":
        # The worker must read the test database, where the test's committed rows are.
        host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        env["DATABASE_URL"] = f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"
    hostname = f"test-{os.getpid()}@%h"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "solo",
            "-l",
            "WARNING",
            "--hostname",
            hostname,
            "--queues",
            "default,audit,scoring,exports",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    from portal.celery import app

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the Celery worker exited with {worker.returncode}")
        if app.control.ping(timeout=0.5):
            break
    else:
        worker.terminate()
        pytest.fail("the Celery worker did not answer a ping within 30 s")
    yield worker
    worker.terminate()
    worker.wait(timeout=30)


# --- The audit trail's append-only triggers around pytest-django's flush ----------------------------------
# A transactional test ends with a flush of every table (TRUNCATE on PostgreSQL, DELETE on SQLite), which the
# triggers refuse. Test-only: the triggers are dropped just before the flush and re-created right after it.
# The product has no such switch.

from pytest_django import DjangoDbBlocker  # noqa: E402

_AUDIT_TRIGGERS_LIFTED = pytest.StashKey[DjangoDbBlocker]()


def _flushes_database(request: pytest.FixtureRequest) -> bool:
    """Whether pytest-django runs this test as a TransactionTestCase, which flushes the database after it."""
    if {"transactional_db", "live_server", "django_db_reset_sequences"} & set(request.fixturenames):
        return True
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return False
    transaction = marker.kwargs.get("transaction", marker.args[0] if marker.args else False)
    reset_sequences = marker.kwargs.get("reset_sequences", marker.args[1] if len(marker.args) > 1 else False)
    return bool(transaction or reset_sequences)


@pytest.fixture(autouse=True)
def _audit_triggers_lifted_for_flush(
    request: pytest.FixtureRequest, django_db_blocker: DjangoDbBlocker
) -> Iterator[None]:
    if not _flushes_database(request):
        yield
        return
    # Set up pytest-django's database now, if it is not yet: what is set up first is torn down last, so this
    # fixture's teardown runs just before the flush.
    request.getfixturevalue("transactional_db")
    yield
    from audit import triggers

    triggers.uninstall(connection)
    request.node.stash[_AUDIT_TRIGGERS_LIFTED] = django_db_blocker


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Re-create the audit triggers once every fixture of the test, the flush included, is torn down."""
    try:
        return (yield)
    finally:
        blocker = item.stash.get(_AUDIT_TRIGGERS_LIFTED, None)
        if blocker is not None:
            from audit import triggers

            with blocker.unblock():
                triggers.install(connection)
