"""Fail-closed: a response carrying consumer data leaves only after its audit event is committed; when the
event cannot be written, the user gets 503 and none of the data.

The write is made to fail by the database itself (a trigger), not by REVOKE: the test connection is a
superuser, and superusers ignore privileges.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from audit.models import AuditEvent, AuditSubject
from tests.audit.conftest import execute
from tests.audit.urls import CONSUMER


@contextmanager
def refusing_inserts(table: str, *, at_commit: bool = False) -> Iterator[None]:
    """Make every INSERT into an audit table fail: at once, or (PostgreSQL) at commit."""
    if connection.vendor == "postgresql":
        execute(
            "CREATE FUNCTION audit_test_refuse_insert() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END $$"
        )
        if at_commit:
            kind, when = "CONSTRAINT TRIGGER", f"AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED"
        else:
            kind, when = "TRIGGER", f"BEFORE INSERT ON {table}"
        execute(
            f"CREATE {kind} audit_test_refuse_insert {when} "
            "FOR EACH ROW EXECUTE FUNCTION audit_test_refuse_insert()"
        )
    else:
        assert not at_commit, "SQLite has no deferred triggers"
        execute(
            f"CREATE TRIGGER audit_test_refuse_insert BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'audit storage unavailable'); END"
        )
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            execute(f"DROP TRIGGER audit_test_refuse_insert ON {table}")
            execute("DROP FUNCTION audit_test_refuse_insert()")
        else:
            execute("DROP TRIGGER audit_test_refuse_insert")


def assert_no_consumer_data(body: bytes) -> None:
    text = body.decode()
    for value in CONSUMER.values():
        assert value not in text and json.dumps(value)[1:-1] not in text


@pytest.fixture
def data_view(settings):
    settings.ROOT_URLCONF = "tests.audit.urls"


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditsubject"])
def test_data_is_served_while_auditing_works_and_withheld_once_it_fails(client, data_view, table):
    served = client.get("/consumer/")
    assert served.status_code == 200 and served.json() == CONSUMER
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.status) == ("test.consumer_detail", "allowed", 200)
    assert list(AuditSubject.objects.values_list("public_id", flat=True)) == [CONSUMER["public_id"]]

    with refusing_inserts(table):
        refused = client.get("/consumer/")
    assert refused.status_code == 503
    assert refused["Retry-After"] and refused["X-Request-ID"]
    assert "audit trail is unavailable" in refused.json()["detail"]
    assert_no_consumer_data(refused.content)
    # Nothing half-written: the event and its subjects commit together or not at all.
    assert AuditEvent.objects.count() == 1 and AuditSubject.objects.count() == 1

    assert client.get("/consumer/").status_code == 200  # back once the trail is


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_commit_that_fails_after_the_view_returned_still_withholds_the_data(client, data_view):
    with refusing_inserts("audit_auditevent", at_commit=True):
        refused = client.get("/consumer/")
    assert refused.status_code == 503
    assert_no_consumer_data(refused.content)
    assert not AuditEvent.objects.exists()
