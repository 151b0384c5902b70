"""Monthly partitions of the audit trail (PostgreSQL): where events and their subjects land, the job that
creates partitions ahead, the triggers on every partition, retention that detaches only what a checkpoint
covers (a month's subjects with its events), and the access log that reads one month's partition per row."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import chain, checkpoints, partitions, selectors, tasks, triggers
from audit.models import AuditCheckpoint, AuditEvent, AuditSubject
from audit.verify import chain_verify
from tests.audit.conftest import settle_deferred_constraints, tampering

pytestmark = pytest.mark.postgres

THIS_MONTH = partitions.month_start(datetime.now(UTC))
OLD_MONTH = partitions.add_months(THIS_MONTH, -6)


def event_at(moment: datetime, action: str = "test.old", subjects: tuple[str, ...] = ()) -> AuditEvent:
    # Written as the recorder writes (unsealed, subjects with the event's time), at a chosen time: the trail
    # of a month long gone.
    event = AuditEvent.objects.create(occurred_at=moment, action=action, outcome=AuditEvent.Outcome.ALLOWED)
    AuditSubject.objects.bulk_create(
        [
            AuditSubject(event=event, occurred_at=event.occurred_at, public_id=public_id)
            for public_id in subjects
        ]
    )
    return event


def partition_of(event: AuditEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_auditevent WHERE id = %s", [event.id])
        return cursor.fetchone()[0]


def subject_partitions_of(event: AuditEvent) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM audit_auditsubject WHERE event_id = %s", [event.id]
        )
        return {row[0] for row in cursor.fetchall()}


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


def test_subjects_land_in_the_partition_of_their_events_month(make_event):
    event = make_event(subjects=["C1", "C2"])
    month = partitions.month_start(event.occurred_at.astimezone(UTC))
    assert subject_partitions_of(event) == {partitions.subject_partition_name(month)}
    assert set(AuditSubject.objects.filter(event=event).values_list("occurred_at", flat=True)) == {
        event.occurred_at
    }
    # An older month made now gets both tables' partitions; its events' subjects follow them there.
    assert create_partition(OLD_MONTH) is True
    old = event_at(old_month_moment(), subjects=("C3",))
    assert partition_of(old) == partitions.partition_name(OLD_MONTH)
    assert subject_partitions_of(old) == {partitions.subject_partition_name(OLD_MONTH)}
    # A month without partitions: both wait in their default partitions.
    far = event_at(datetime(2001, 5, 1, tzinfo=UTC), subjects=("C4",))
    assert subject_partitions_of(far) == {partitions.SUBJECT_DEFAULT_PARTITION}
    # Every month of the events has its subjects' partition, and no other.
    months = {name.removeprefix("audit_auditevent") for name in triggers.event_partitions(connection)}
    assert months == {
        name.removeprefix("audit_auditsubject") for name in triggers.subject_partitions(connection)
    }


def test_the_partition_job_is_idempotent_and_looks_ahead(db):
    first = tasks.create_partitions.apply(kwargs={"months_ahead": 6}).get()
    after_first = triggers.event_partitions(connection)
    ahead = [partitions.partition_name(partitions.add_months(THIS_MONTH, n)) for n in range(7)]
    assert set(ahead) <= set(after_first)
    # The migration made the first three months ahead; the job made the rest, with their subjects' ones.
    assert first == ahead[4:]
    subjects_ahead = [
        partitions.subject_partition_name(partitions.add_months(THIS_MONTH, n)) for n in range(7)
    ]
    assert set(subjects_ahead) <= set(triggers.subject_partitions(connection))
    assert tasks.create_partitions.apply(kwargs={"months_ahead": 6}).get() == []
    assert triggers.event_partitions(connection) == after_first


def test_months_ahead_is_bounded(db):
    with pytest.raises(DatabaseError, match="months_ahead"), transaction.atomic():
        partitions.event_partitions_create(connection, months_ahead=partitions.MAX_MONTHS_AHEAD + 1)


def test_a_new_partition_keeps_the_append_only_rule(make_event):
    assert create_partition(OLD_MONTH) is True
    assert triggers.problems(connection) == {}
    event = event_at(old_month_moment(), subjects=("C1",))
    name = partitions.partition_name(OLD_MONTH)
    subject_name = partitions.subject_partition_name(OLD_MONTH)
    assert partition_of(event) == name
    settle_deferred_constraints()
    for statement in (
        f"UPDATE {name} SET action = 'rewritten' WHERE id = %s",  # noqa: S608
        f"DELETE FROM {name} WHERE id = %s",  # noqa: S608
        "UPDATE audit_auditevent SET action = 'rewritten' WHERE id = %s",
        f"UPDATE {subject_name} SET public_id = 'C2' WHERE event_id = %s",  # noqa: S608
        f"DELETE FROM {subject_name} WHERE event_id = %s",  # noqa: S608
        "UPDATE audit_auditsubject SET public_id = 'C2' WHERE event_id = %s",
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
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {subject_name}")
    assert AuditSubject.objects.filter(event=event).count() == 1


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


def test_the_check_names_a_subject_partition_whose_trigger_was_disabled(db):
    from audit.checks import check_append_only_triggers

    name = partitions.subject_partition_name(THIS_MONTH)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {name} DISABLE TRIGGER audit_auditsubject_append_only_update")
        cursor.execute(f"DROP TRIGGER audit_auditsubject_append_only_truncate ON {name}")
    messages = [error.msg for error in check_append_only_triggers(databases=["default"])]
    assert len(messages) == 2 and all(f"on {name} " in message for message in messages)
    assert any("disabled" in message for message in messages)
    assert any("missing" in message for message in messages)
    triggers.install(connection)
    assert check_append_only_triggers(databases=["default"]) == []


def sealed_old_and_new(old: int, new: int) -> None:
    create_partition(OLD_MONTH)
    for n in range(old):
        event_at(old_month_moment() + timedelta(minutes=n), subjects=(f"C{n}", "CALL"))
    chain.events_seal()
    for _ in range(new):
        event_at(timezone.now(), action="test.new", subjects=("CALL",))
    chain.events_seal()


def rows_of(table: str, order: str) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY {order}")  # noqa: S608
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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
    # The month's subjects left with it: what stays names only the retained events' consumers.
    subject_name = partitions.subject_partition_name(OLD_MONTH)
    assert subject_name not in triggers.subject_partitions(connection)
    assert sorted(AuditSubject.objects.values_list("public_id", flat=True)) == ["CALL", "CALL"]
    assert selectors.consumer_access_log(public_id="C0").count() == 0
    # The detached pair is the month's whole archive: plain tables, no trigger left, and its hashes re-verify
    # from the two tables alone, up to the signed checkpoint at its last position.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid IN (%s::regclass, %s::regclass)",
            [name, subject_name],
        )
        assert cursor.fetchone()[0] == 0
    archived: dict[int, list[str]] = {}
    for row in rows_of(subject_name, "id"):
        archived.setdefault(row["event_id"], []).append(row["public_id"])
    assert sorted(map(sorted, archived.values())) == [["C0", "CALL"], ["C1", "CALL"], ["C2", "CALL"]]
    link = chain.GENESIS_HASH
    for row in rows_of(name, "chain_position"):
        event = {**row, "query": json.loads(row["query"]) if isinstance(row["query"], str) else row["query"]}
        link = chain.link_hash(link, chain.canonical_bytes(event, archived.get(row["id"], ())))
        assert link == row["hash"]
    assert link == AuditCheckpoint.objects.get(chain_position=3).head_hash
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
    function, owned by the trail's owner, once it was granted EXECUTE (PUBLIC may not: only the roles that
    run the job); retention stays the owner's. The role goes with the rollback."""
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
        for function, argument in (
            (partitions.CREATE_FUNCTION, month),
            (partitions.CREATE_AHEAD_FUNCTION, 3),
        ):
            with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
                cursor.execute(f"SELECT {function}(%s)", [argument])
        cursor.execute("RESET ROLE")
        cursor.execute(f'GRANT EXECUTE ON FUNCTION {partitions.CREATE_FUNCTION}(date) TO "{probe}"')
        cursor.execute(f'SET LOCAL ROLE "{probe}"')
        cursor.execute(f"SELECT {partitions.CREATE_FUNCTION}(%s)", [month])
        assert cursor.fetchone()[0] is True
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            cursor.execute(f"SELECT {partitions.DETACH_FUNCTION}(%s)", [partitions.partition_name(month)])
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            cursor.execute(f"CREATE TABLE {probe}_table (id int)")
        cursor.execute("RESET ROLE")
        for name in (partitions.partition_name(month), partitions.subject_partition_name(month)):
            cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s", [name])
            assert cursor.fetchone()[0] == owner
    assert triggers.problems(connection) == {}


def plan_nodes(sql: str, params: Any) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return nodes


def test_the_access_log_reads_only_the_event_partitions_of_its_months(db):
    """Each subject row is joined to its event on (id, occurred_at): by an index of the events, in the one
    month's partition only (pruned at run time), not in every monthly partition of the trail per subject."""
    create_partition(OLD_MONTH)
    seen = [event_at(old_month_moment(), subjects=("CSEEN", "COTHER"))]
    seen += [event_at(timezone.now() - timedelta(seconds=n), subjects=("CSEEN",)) for n in range(3)]
    # Other consumers' events in the same months, as many as make reading whole partitions not worth it.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (occurred_at, actor_username, actor_organisation, actor_role, "
            "action, outcome, method, path, query, request_id, user_agent, purpose, resource_kind, "
            "requested_id, row_count, search_hash, export_sha256, prev_hash, hash) "
            "SELECT moment - n * interval '1 second', '', '', '', 'test.other', 'allowed', '', '', '{}', "
            "'', '', '', '', '', 0, '', '', '', '' "
            "FROM generate_series(1, 20000) AS n, unnest(%s::timestamptz[]) AS moment",
            [[old_month_moment(20), timezone.now()]],
        )
        cursor.execute(
            "INSERT INTO audit_auditsubject (event_id, occurred_at, public_id) SELECT id, occurred_at, "
            "'C' || (id % 5000) FROM audit_auditevent WHERE action = 'test.other'",
            None,
        )
        cursor.execute("ANALYZE audit_auditevent")
        cursor.execute("ANALYZE audit_auditsubject")
    log = selectors.consumer_access_log(public_id="CSEEN")[:25]  # callers page it
    assert [event.pk for event in log] == [
        event.pk for event in sorted(seen, key=lambda e: e.occurred_at, reverse=True)
    ]
    sql, params = log.query.sql_with_params()
    nodes = plan_nodes(sql, params)
    every = set(triggers.event_partitions(connection))
    assert len(every) > 4
    probes = [n for n in nodes if n.get("Relation Name") in every and n.get("Actual Loops", 0) > 0]
    assert {n["Relation Name"] for n in probes} == {
        partitions.partition_name(OLD_MONTH),
        partitions.partition_name(THIS_MONTH),
    }
    # One index probe per subject row in all, on the event's time and id.
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in probes)
    assert all("occurred_at = audit_auditsubject.occurred_at" in n["Index Cond"] for n in probes)
    assert sum(n["Actual Loops"] for n in probes) == len(seen)
    # The consumer's subjects come from the (public_id, occurred_at, event) index.
    assert any(
        n.get("Relation Name", "").startswith("audit_auditsubject_p") and n["Actual Rows"] for n in nodes
    )
    assert any("public_id" in n.get("Index Cond", "") for n in nodes)


def test_the_command_detaches_a_month_with_its_subjects(db, capsys):
    sealed_old_and_new(2, 1)
    checkpoints.checkpoint_publish()
    settle_deferred_constraints()
    name = partitions.partition_name(OLD_MONTH)
    call_command("audit_partitions", "--detach", name)
    out = capsys.readouterr().out
    subject_name = partitions.subject_partition_name(OLD_MONTH)
    assert f"detached {name} and {subject_name} (covered by the checkpoint at position 2)" in out
    assert name not in triggers.event_partitions(connection)
    assert subject_name not in triggers.subject_partitions(connection)
    assert sorted(AuditSubject.objects.values_list("public_id", flat=True)) == ["CALL"]
