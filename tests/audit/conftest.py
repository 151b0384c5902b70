"""Fixtures of the audit trail's tests: events, an isolated signing key, tampering as a superuser would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
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
