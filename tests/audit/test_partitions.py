"""Monthly partitions of the audit trail (PostgreSQL): where events land, the job that creates partitions
ahead, the triggers on every partition, and retention that detaches only what a checkpoint covers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import chain, checkpoints, partitions, tasks, triggers
from audit.models import AuditEvent
from audit.verify import chain_verify
from tests.audit.conftest import settle_deferred_constraints, tampering

pytestmark = pytest.mark.postgres

THIS_MONTH = partitions.month_start(datetime.now(UTC))
OLD_MONTH = partitions.add_months(THIS_MONTH, -6)


def event_at(moment: datetime, action: str = "test.old") -> AuditEvent:
    # Written as the recorder writes (unsealed), at a chosen time: the trail of a month long gone.
    return AuditEvent.objects.create(occurred_at=moment, action=action, outcome=AuditEvent.Outcome.ALLOWED)


def partition_of(event: AuditEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_auditevent WHERE id = %s", [event.id])
        return cursor.fetchone()[0]


def create_partition(month: date) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {partitions.CREATE_FUNCTION}(%s)", [month])
        return cursor.fetchone()[0]


def old_month_moment(day: int = 10) -> datetime:
    return datetime(OLD_MONTH.year, OLD_MONTH.month, day, 12, tzinfo=UTC)


def test_events_land_in_the_partition_of_their_month(make_event):
    event = make_event()
    assert partition_of(event) == partitions.partition_name(
        partitions.month_start(event.occurred_at.astimezone(UTC))
    )
    # A month without a partition (far back) goes to the default partition, and stays there.
    assert partition_of(event_at(datetime(2001, 5, 1, tzinfo=UTC))) == partitions.DEFAULT_PARTITION
    assert create_partition(date(2001, 5, 1)) is False
    assert partitions.DEFAULT_PARTITION in triggers.event_partitions(connection)


def test_the_partition_job_is_idempotent_and_looks_ahead(db):
    first = tasks.create_partitions.apply(kwargs={"months_ahead": 6}).get()
    after_first = triggers.event_partitions(connection)
    ahead = [partitions.partition_name(partitions.add_months(THIS_MONTH, n)) for n in range(7)]
    assert set(ahead) <= set(after_first)
    # The migration made the first three months ahead; the job made the rest.
    assert first == ahead[4:]
    assert tasks.create_partitions.apply(kwargs={"months_ahead": 6}).get() == []
    assert triggers.event_partitions(connection) == after_first


def test_months_ahead_is_bounded(db):
    with pytest.raises(DatabaseError, match="months_ahead"), transaction.atomic():
        partitions.event_partitions_create(connection, months_ahead=partitions.MAX_MONTHS_AHEAD + 1)


def test_a_new_partition_keeps_the_append_only_rule(make_event):
    assert create_partition(OLD_MONTH) is True
    assert triggers.problems(connection) == {}
    event = event_at(old_month_moment())
    name = partitions.partition_name(OLD_MONTH)
    assert partition_of(event) == name
    settle_deferred_constraints()
    for statement in (
        f"UPDATE {name} SET action = 'rewritten' WHERE id = %s",  # noqa: S608
        f"DELETE FROM {name} WHERE id = %s",  # noqa: S608
        "UPDATE audit_auditevent SET action = 'rewritten' WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [event.id])
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {name}")


def test_the_check_names_a_partition_whose_trigger_was_disabled(db):
    from audit.checks import check_append_only_triggers

    name = partitions.partition_name(THIS_MONTH)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {name} DISABLE TRIGGER audit_auditevent_append_only_delete")
        cursor.execute(f"DROP TRIGGER audit_auditevent_append_only_truncate ON {name}")
    messages = [error.msg for error in check_append_only_triggers(databases=["default"])]
    assert len(messages) == 2 and all(f"on {name} " in message for message in messages)
    triggers.install(connection)
    assert check_append_only_triggers(databases=["default"]) == []


def sealed_old_and_new(old: int, new: int) -> None:
    create_partition(OLD_MONTH)
    for n in range(old):
        event_at(old_month_moment() + timedelta(minutes=n))
    chain.events_seal()
    for _ in range(new):
        event_at(timezone.now(), action="test.new")
    chain.events_seal()


def test_detaching_a_month_no_checkpoint_covers_is_refused(db):
    sealed_old_and_new(3, 2)
    name = partitions.partition_name(OLD_MONTH)
    with pytest.raises(partitions.RetentionRefused, match="no signed checkpoint covers position 3"):
        partitions.event_partition_detach(connection, partition=name)
    # The SQL function refuses by itself, whoever calls it.
    with (
        pytest.raises(DatabaseError, match="no signed checkpoint covers position 3"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"SELECT {partitions.DETACH_FUNCTION}(%s)", [name])
    assert name in triggers.event_partitions(connection)


def test_detaching_a_month_with_unsealed_events_is_refused(db):
    sealed_old_and_new(2, 1)
    checkpoints.checkpoint_publish()
    event_at(old_month_moment(20))  # arrived late, not sealed yet
    with pytest.raises(partitions.RetentionRefused, match=r"1 events of .* are not sealed"):
        partitions.event_partition_detach(connection, partition=partitions.partition_name(OLD_MONTH))


def test_detaching_out_of_chain_order_is_refused(db):
    create_partition(OLD_MONTH)
    event_at(old_month_moment())
    chain.events_seal()
    event_at(timezone.now(), action="test.new")
    chain.events_seal()
    event_at(old_month_moment(11))  # sealed after a newer month's event: position 3 below position 2's month
    chain.events_seal()
    checkpoints.checkpoint_publish()
    with pytest.raises(partitions.RetentionRefused, match="detach the older months first"):
        partitions.event_partition_detach(connection, partition=partitions.partition_name(OLD_MONTH))


def test_the_default_partition_and_a_month_not_over_are_never_detached(db):
    event_at(timezone.now())
    chain.events_seal()
    checkpoints.checkpoint_publish()
    current = partitions.partition_name(THIS_MONTH)
    with pytest.raises(partitions.RetentionRefused, match="not a month that is over"):
        partitions.event_partition_detach(connection, partition=current)
    with (
        pytest.raises(DatabaseError, match="not a month that is over"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"SELECT {partitions.DETACH_FUNCTION}(%s)", [current])
    with pytest.raises(partitions.RetentionRefused, match="default partition"):
        partitions.event_partition_detach(connection, partition=partitions.DEFAULT_PARTITION)
    with pytest.raises(partitions.RetentionRefused, match="not a partition"):
        partitions.event_partition_detach(connection, partition="audit_auditcheckpoint")


def test_a_covered_month_is_detached_and_verification_starts_at_its_checkpoint(db, tmp_path, capsys):
    sealed_old_and_new(3, 2)
    kept = checkpoints.checkpoint_publish()  # at the head, 5: covers the old month's positions 1-3
    assert kept is not None and kept.chain_position == 5
    kept_file = tmp_path / "kept.json"
    kept_file.write_text(__import__("json").dumps(checkpoints.checkpoint_document(kept)))
    name = partitions.partition_name(OLD_MONTH)
    settle_deferred_constraints()

    covering = partitions.event_partition_detach(connection, partition=name)

    # A checkpoint was signed exactly at the month's last position, so the kept chain starts right after it.
    assert covering == 3
    assert name not in triggers.event_partitions(connection)
    assert AuditEvent.objects.count() == 2
    result = chain_verify(documents=[("file kept.json", checkpoints.checkpoint_document(kept))])
    assert result.ok and result.start_position == 3 and result.sealed == 2 and result.head_position == 5
    call_command("audit_verify", "--from-checkpoint", str(kept_file))
    out = capsys.readouterr().out
    assert "verifying from the retained checkpoint at position 3" in out
    assert "OK: 2 events sealed, 0 pending" in out and "OK: checkpoint at position 5" in out


def test_a_rewritten_first_retained_link_fails_verification(db):
    sealed_old_and_new(3, 2)
    checkpoints.checkpoint_publish()
    settle_deferred_constraints()
    partitions.event_partition_detach(connection, partition=partitions.partition_name(OLD_MONTH))
    first = AuditEvent.objects.get(chain_position=4)
    with tampering():
        AuditEvent.objects.filter(pk=first.pk).update(prev_hash="f" * 64)
    result = chain_verify()
    assert not result.ok and result.first_bad_position == 4
    assert "prev_hash is not the hash of the checkpoint at position 3" in result.problem


def test_the_application_role_creates_partitions_but_cannot_detach(db):
    """SECURITY DEFINER: a role without CREATE (like the application's) makes partitions through the
    function, owned by the trail's owner; retention stays the owner's. The role goes with the rollback."""
    probe = f"{connection.settings_dict['NAME']}_probe"
    month = partitions.add_months(THIS_MONTH, 9)
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{probe}" NOLOGIN')
        # The functions' owner: whoever migrated, or the owner role once deploy/postgres/create-roles.sh ran.
        cursor.execute(
            "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = %s", [partitions.CREATE_FUNCTION]
        )
        owner = cursor.fetchone()[0]
        cursor.execute(f'SET LOCAL ROLE "{probe}"')
        cursor.execute(f"SELECT {partitions.CREATE_FUNCTION}(%s)", [month])
        assert cursor.fetchone()[0] is True
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            cursor.execute(f"SELECT {partitions.DETACH_FUNCTION}(%s)", [partitions.partition_name(month)])
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            cursor.execute(f"CREATE TABLE {probe}_table (id int)")
        cursor.execute("RESET ROLE")
        cursor.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s",
            [partitions.partition_name(month)],
        )
        assert cursor.fetchone()[0] == owner
    assert triggers.problems(connection) == {}
