"""Fixtures of the audit trail's tests: events, an isolated signing key, tampering as a superuser would."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from audit import checkpoints, recorder, triggers
from audit.models import AuditEvent


@pytest.fixture
def make_event(db) -> Callable[..., AuditEvent]:
    """Write an event through the recorder, as the middleware does."""

    def make(**overrides: Any) -> AuditEvent:
        values: dict[str, Any] = {
            "action": "test.consumer_detail",
            "outcome": AuditEvent.Outcome.ALLOWED,
            "method": "GET",
            "path": "/test/",
            "status": 200,
            "resource_kind": "consumer",
        }
        values.update(overrides)
        return recorder.record(**values)

    return make


@pytest.fixture(autouse=True)
def signing_key_dir(tmp_path, settings) -> Iterator[None]:
    """Each test signs with its own development key file, never the one under the real VAR_DIR."""
    settings.AUDIT_SIGNING_KEY = ""
    settings.VAR_DIR = tmp_path / "var"
    yield
    checkpoints._private_key.cache_clear()


def settle_deferred_constraints() -> None:
    """Check PostgreSQL's deferred foreign keys now. Django creates them INITIALLY DEFERRED, and a test's
    single transaction would otherwise still owe those checks, and PostgreSQL refuses DDL on the table."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@contextmanager
def tampering() -> Iterator[None]:
    """What a database superuser can do: take the append-only rule away, change rows, put the rule back."""
    settle_deferred_constraints()
    triggers.uninstall(connection)
    try:
        yield
    finally:
        triggers.install(connection)


def execute(sql: str, params: list[Any] | None = None) -> int:
    settle_deferred_constraints()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class WitnessProcess:
    """`manage.py audit_witness` as a subprocess on a free port, with its key and state under `directory`."""

    def __init__(self, directory: Path, name: str, logs: list[str]) -> None:
        self.directory, self.name, self.logs = directory, name, logs
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "audit_witness",
                "--name",
                self.name,
                "--key-file",
                str(self.directory / "witness.key"),
                "--state",
                str(self.directory / "state.json"),
                *(argument for log in self.logs for argument in ("--log", log)),
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "listening on" in line, line
        self.key = line.split()[1]
        self.url = f"http://{line.split()[-1]}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def post(self, body: bytes) -> tuple[int, str, str]:
        request = urllib.request.Request(f"{self.url}/add-checkpoint", data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (a local test URL)
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()
