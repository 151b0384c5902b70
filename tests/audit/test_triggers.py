"""The database itself refuses to rewrite the audit trail; only the sealer's one-time filling passes."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.management.sql import emit_post_migrate_signal
from django.db import IntegrityError, connection, models, transaction

from audit import chain, checkpoints, triggers
from audit.checks import check_append_only_triggers
from audit.models import AuditCheckpoint, AuditEvent, AuditSubject
from tests.audit.conftest import execute, settle_deferred_constraints

pytestmark = pytest.mark.django_db

REFUSED = "append-only"


def refused(sql: str, params: list | None = None) -> None:
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        execute(sql, params)


def test_update_of_an_event_is_refused(make_event):
    event = make_event()
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(outcome=AuditEvent.Outcome.DENIED)
    refused("UPDATE audit_auditevent SET purpose = 'rewritten'")
    assert AuditEvent.objects.get(pk=event.pk).outcome == AuditEvent.Outcome.ALLOWED


def test_delete_of_an_event_is_refused(make_event):
    event = make_event(subjects=["C1"])
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    refused("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_subjects_and_checkpoints_are_append_only(make_event):
    make_event(subjects=["C1", "C2"])
    chain.events_seal()
    checkpoints.checkpoint_publish()
    assert AuditSubject.objects.count() == 2 and AuditCheckpoint.objects.count() == 1
    refused("UPDATE audit_auditsubject SET public_id = 'C3'")
    refused("DELETE FROM audit_auditsubject")
    refused("UPDATE audit_auditcheckpoint SET head_hash = %s", ["0" * 64])
    refused("DELETE FROM audit_auditcheckpoint")
    assert AuditSubject.objects.count() == 2 and AuditCheckpoint.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("table", triggers.TABLES)
def test_truncate_is_refused(make_event, table):
    make_event(subjects=["C1"])
    refused(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.count() == 1


def test_the_sealer_fills_the_chain_columns_once_and_never_again(make_event):
    event = make_event()
    chain.events_seal()
    sealed = AuditEvent.objects.get(pk=event.pk)
    assert sealed.chain_position == 1 and len(sealed.hash) == 64 and sealed.sealed_at is not None
    refused("UPDATE audit_auditevent SET hash = %s", ["f" * 64])
    refused("UPDATE audit_auditevent SET chain_position = 7")
    refused(
        "UPDATE audit_auditevent SET chain_position = NULL, prev_hash = '', hash = '', sealed_at = NULL",
    )
    assert AuditEvent.objects.get(pk=event.pk).hash == sealed.hash


def test_an_event_cannot_be_inserted_already_sealed():
    # Otherwise a forged link could be slipped in at the head, and the sealer would build on it.
    with pytest.raises(IntegrityError, match="arrives unsealed"), transaction.atomic():
        AuditEvent.objects.create(
            action="forged",
            outcome=AuditEvent.Outcome.ALLOWED,
            chain_position=1,
            prev_hash=chain.GENESIS_HASH,
            hash="1" * 64,
            sealed_at=chain.timezone.now(),
        )
    with pytest.raises(IntegrityError, match="arrives unsealed"), transaction.atomic():
        AuditEvent.objects.create(action="forged", outcome=AuditEvent.Outcome.ALLOWED, hash="1" * 64)
    assert not AuditEvent.objects.exists()


def test_filling_the_chain_columns_cannot_change_anything_else(make_event):
    make_event()
    refused(
        "UPDATE audit_auditevent SET chain_position = 1, prev_hash = %s, hash = %s, sealed_at = %s, "
        "action = 'forged'",
        ["0" * 64, "1" * 64, connection.ops.adapt_datetimefield_value(chain.timezone.now())],
    )
    # Half a seal (no hash) is refused too: the columns are filled together or not at all.
    refused("UPDATE audit_auditevent SET chain_position = 1")


def test_a_column_added_later_is_covered_once_the_triggers_are_reinstalled(make_event):
    make_event()
    execute("ALTER TABLE audit_auditevent ADD COLUMN extra varchar(10) NULL")
    # SQLite's rule names every column: the check sees that it no longer covers the table.
    if connection.vendor == "sqlite":
        assert set(triggers.problems(connection)) == {triggers.Trigger(triggers.EVENT_TABLE, "UPDATE")}
    triggers.install(connection)
    assert triggers.problems(connection) == {}
    refused("UPDATE audit_auditevent SET extra = 'x'")


def test_the_system_check_reports_a_dropped_trigger(make_event):
    assert check_append_only_triggers(databases=["default"]) == []
    on_table = " ON audit_auditevent" if connection.vendor == "postgresql" else ""
    execute(f"DROP TRIGGER audit_auditevent_append_only_delete{on_table}")

    errors = check_append_only_triggers(databases=["default"])
    assert [error.id for error in errors] == ["audit.E001"]
    assert "audit_auditevent_append_only_delete" in errors[0].msg and "missing" in errors[0].msg
    with pytest.raises(SystemCheckError, match=r"audit\.E001"):
        call_command("check", databases=["default"], deploy=True)
    # Without a database the check has nothing to inspect (plain `manage.py check`).
    assert check_append_only_triggers(databases=None) == []


@pytest.mark.postgres
def test_the_system_check_reports_a_disabled_trigger_or_a_replaced_function():
    execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only_update")
    assert "disabled" in check_append_only_triggers(databases=["default"])[0].msg
    triggers.install(connection)
    assert check_append_only_triggers(databases=["default"]) == []

    execute(
        "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN OLD; END $$"
    )
    messages = [error.msg for error in check_append_only_triggers(databases=["default"])]
    # Every trigger calling it, on the tables and on each monthly partition of the events and subjects.
    refusing = [
        t
        for t in triggers.triggers("postgresql", triggers.all_partitions(connection))
        if t.function == triggers.REFUSE_FUNCTION
    ]
    assert len(refusing) > 8
    assert {t.relation for t in refusing} >= set(triggers.subject_partitions(connection)) != set()
    assert len(messages) == len(refusing) and all("altered" in message for message in messages)


def test_post_migrate_puts_dropped_triggers_back(make_event):
    make_event()
    settle_deferred_constraints()
    triggers.uninstall(connection)
    # A partition's copies of a table's row triggers go with the table's own, and are reported with it.
    rule = triggers.triggers(connection.vendor, triggers.all_partitions(connection))
    assert len(triggers.problems(connection)) == len([t for t in rule if not t.cloned])
    assert check_append_only_triggers(databases=["default"])
    # Its checks do not stop migrate (E001 is a deployment check), and its post_migrate step repairs.
    call_command("migrate", verbosity=0, skip_checks=False)
    assert triggers.problems(connection) == {}
    refused("DELETE FROM audit_auditevent")


@pytest.mark.django_db(transaction=True)
def test_a_migration_that_rebuilds_the_table_does_not_leave_it_unguarded(make_event):
    """SQLite alters a table by rebuilding it, which drops its triggers; post_migrate puts them back."""
    make_event()
    old = AuditEvent._meta.get_field("action")
    wider: models.CharField = models.CharField(max_length=120)
    wider.set_attributes_from_name("action")
    wider.model = AuditEvent
    try:
        with connection.schema_editor() as editor:
            editor.alter_field(AuditEvent, old, wider)
        if connection.vendor == "sqlite":
            assert {t.table for t in triggers.problems(connection)} == {triggers.EVENT_TABLE}
        emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
        assert triggers.problems(connection) == {}
        refused("DELETE FROM audit_auditevent")
    finally:
        with connection.schema_editor() as editor:
            editor.alter_field(AuditEvent, wider, old)
        emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
