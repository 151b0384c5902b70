"""Monthly partitions of the audit events table (PostgreSQL): creating them ahead of time, and retention,
which detaches a month only when a signed checkpoint covers every event in it.

Both are SQL functions owned by the role that migrates (SECURITY DEFINER), so the application's role, which
cannot create or alter tables, can call them; the rules are enforced inside them, whoever calls. Python here
checks the same rules first to say what is wrong in plain words, and signs the covering checkpoint.
On SQLite the events table stays a plain table and these services do nothing.

This module depends on table and column names only (and on the trigger rule), never on the portal's models,
so that migrations can use it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from audit import triggers

EVENT_TABLE = triggers.EVENT_TABLE
CHECKPOINT_TABLE = triggers.CHECKPOINT_TABLE
DEFAULT_PARTITION = f"{EVENT_TABLE}_default"
PARTITION_KEY = "occurred_at"
MONTHS_AHEAD = 3
MAX_MONTHS_AHEAD = 24

CREATE_FUNCTION = "audit_event_create_partition"
CREATE_AHEAD_FUNCTION = "audit_event_create_partitions"
DETACH_FUNCTION = "audit_event_detach_partition"
# Serialises creating and detaching partitions (a transaction-level advisory lock inside the functions).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"audit.partitions").digest()[:8], "big", signed=True)


class RetentionRefused(Exception):
    """Detaching this partition would lose events no signed checkpoint vouches for, or break the chain."""


def partition_name(month: date) -> str:
    return f"{EVENT_TABLE}_p{month.year:04d}_{month.month:02d}"


def _month_of(name: str) -> date | None:
    match = re.fullmatch(rf"{EVENT_TABLE}_p(\d{{4}})_(\d\d)", name)
    return date(int(match[1]), int(match[2]), 1) if match else None


def month_start(moment: date | datetime) -> date:
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _truncate_trigger_sql() -> str:
    """The partition's own TRUNCATE trigger, exactly as audit.triggers installs and checks it."""
    trigger = triggers.Trigger(EVENT_TABLE, "TRUNCATE")
    return (
        f"EXECUTE format('CREATE TRIGGER {trigger.name} BEFORE TRUNCATE ON %I "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {trigger.function}()', part);\n"
        f"    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER {trigger.name}', part);"
    )


# A detached month leaves the trail: PostgreSQL drops the row triggers it had from the table, and its own
# TRUNCATE trigger goes too, so it is a plain table for the operator to archive (the covering checkpoint
# vouches for its content) and drop.
_DETACHED_SQL = (
    f"EXECUTE format('DROP TRIGGER IF EXISTS {triggers.Trigger(EVENT_TABLE, 'TRUNCATE').name} ON %I', "
    "partition_name);"
)


# Months are UTC calendar months. Bounds are built with make_timestamptz(..., 'UTC') and passed to EXECUTE
# as literals with an offset, so the session's TimeZone changes nothing.
_FUNCTIONS_SQL = [
    f"""
CREATE OR REPLACE FUNCTION {CREATE_FUNCTION}(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $audit$
DECLARE
    first date := date_trunc('month', month)::date;
    lo timestamptz := make_timestamptz(extract(year FROM first)::int, extract(month FROM first)::int, 1,
                                       0, 0, 0, 'UTC');
    following date := (first + interval '1 month')::date;
    hi timestamptz := make_timestamptz(extract(year FROM following)::int,
                                       extract(month FROM following)::int, 1, 0, 0, 0, 'UTC');
    part text := '{EVENT_TABLE}_p' || to_char(first, 'YYYY_MM');
    held boolean;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Events already in the default partition cannot move (the trail is append-only): leave that month to
    -- the default partition, which is checked and retained like any other.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {PARTITION_KEY} >= %L '
                   'AND {PARTITION_KEY} < %L)', lo, hi) INTO held;
    IF held THEN
        RAISE WARNING 'audit partition % not created: the default partition holds events of that month', part;
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE {EVENT_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    -- A chain position is unique: PostgreSQL cannot enforce that across partitions (a unique index of a
    -- partitioned table must hold the partition key), so each partition enforces it for its own rows, the
    -- sealer's lock for new ones, and audit_verify counts positions against the head.
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (chain_position)', part || '_chain_position', part);
    EXECUTE format('ALTER TABLE {EVENT_TABLE} ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    {_truncate_trigger_sql()}
    RETURN true;
END
$audit$""",  # noqa: S608 - names are this module's constants
    f"""
CREATE OR REPLACE FUNCTION {CREATE_AHEAD_FUNCTION}(months_ahead integer DEFAULT {MONTHS_AHEAD})
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $audit$
DECLARE
    current date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > {MAX_MONTHS_AHEAD} THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and {MAX_MONTHS_AHEAD}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR step IN 0 .. months_ahead LOOP
        month := (current + make_interval(months => step))::date;
        IF {CREATE_FUNCTION}(month) THEN
            RETURN NEXT '{EVENT_TABLE}_p' || to_char(month, 'YYYY_MM');
        END IF;
    END LOOP;
END
$audit$""",
    f"""
CREATE OR REPLACE FUNCTION {DETACH_FUNCTION}(partition_name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $audit$
DECLARE
    part regclass;
    unsealed bigint;
    top bigint;
    earlier bigint;
    covering bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    SELECT c.oid INTO part FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = '{EVENT_TABLE}'::regclass AND c.relname = partition_name;
    IF part IS NULL THEN
        RAISE EXCEPTION 'audit retention: % is not a partition of {EVENT_TABLE}', partition_name
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF partition_name = '{DEFAULT_PARTITION}' THEN
        RAISE EXCEPTION 'audit retention: the default partition is never detached'
            USING ERRCODE = 'restrict_violation';
    END IF;
    -- Only a month that is over: events of the current one are still arriving.
    IF partition_name !~ '^{EVENT_TABLE}_p[0-9]{{4}}_[0-9]{{2}}$' OR
        to_date(right(partition_name, 7), 'YYYY_MM') + interval '1 month' > (now() AT TIME ZONE 'UTC') THEN
        RAISE EXCEPTION 'audit retention: % is not a month that is over', partition_name
            USING ERRCODE = 'restrict_violation';
    END IF;
    -- The partition is locked against new rows before it is counted.
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', partition_name);
    EXECUTE format('SELECT count(*) FILTER (WHERE chain_position IS NULL), max(chain_position) FROM %I',
                   partition_name) INTO unsealed, top;
    IF unsealed > 0 THEN
        RAISE EXCEPTION 'audit retention: % events of % are not sealed into the chain yet', unsealed,
            partition_name USING ERRCODE = 'restrict_violation';
    END IF;
    IF top IS NULL THEN
        EXECUTE format('ALTER TABLE {EVENT_TABLE} DETACH PARTITION %I', partition_name);
        {_DETACHED_SQL}
        RETURN 0;
    END IF;
    -- What stays must be the chain from some position on: no retained event may sit below this month's.
    SELECT max(chain_position) INTO earlier FROM {EVENT_TABLE}
    WHERE tableoid <> part AND chain_position <= top;
    IF earlier IS NOT NULL THEN
        RAISE EXCEPTION 'audit retention: position % (outside %) is at or below its last position %: '
            'detach the older months first', earlier, partition_name, top
            USING ERRCODE = 'restrict_violation';
    END IF;
    SELECT min(chain_position) INTO covering FROM {CHECKPOINT_TABLE} WHERE chain_position >= top;
    IF covering IS NULL THEN
        RAISE EXCEPTION 'audit retention: no signed checkpoint covers position % (the last of %)', top,
            partition_name USING ERRCODE = 'restrict_violation';
    END IF;
    EXECUTE format('ALTER TABLE {EVENT_TABLE} DETACH PARTITION %I', partition_name);
    {_DETACHED_SQL}
    RETURN covering;
END
$audit$""",  # noqa: S608 - names are this module's constants
]

# Creating partitions ahead is for anyone who may write events (the application's role calls it); retention
# is the operator's, under the role that owns the trail.
_PRIVILEGES_SQL = [f"REVOKE ALL ON FUNCTION {DETACH_FUNCTION}(text) FROM PUBLIC"]


def functions_sql(schema: str) -> list[str]:
    """The functions' definitions, run in the events table's schema (also where they create partitions;
    pg_catalog is searched first, and pg_temp last, so no object of the caller's can stand in for one)."""
    return [sql.replace("{schema}", schema) for sql in _FUNCTIONS_SQL] + _PRIVILEGES_SQL


DROP_FUNCTIONS_SQL = [
    f"DROP FUNCTION IF EXISTS {DETACH_FUNCTION}(text)",
    f"DROP FUNCTION IF EXISTS {CREATE_AHEAD_FUNCTION}(integer)",
    f"DROP FUNCTION IF EXISTS {CREATE_FUNCTION}(date)",
]


def _execute(connection: Any, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, None)


# --- Services -----------------------------------------------------------------------------------------------


def partitioned(connection: Any) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [EVENT_TABLE])
        row = cursor.fetchone()
    return bool(row and row[0])


def event_partitions_create(connection: Any, *, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the monthly partitions from this month to `months_ahead` months on (idempotent): the names of
    those created now. Nothing on SQLite."""
    if not partitioned(connection):
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {CREATE_AHEAD_FUNCTION}(%s)", [months_ahead])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class PartitionState:
    name: str
    events: int
    unsealed: int
    first_position: int | None
    last_position: int | None


def partition_state(connection: Any, name: str) -> PartitionState:
    if name not in triggers.event_partitions(connection):
        raise RetentionRefused(f"{name} is not a partition of {EVENT_TABLE}")
    table = connection.ops.quote_name(name)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE chain_position IS NULL), "  # noqa: S608
            f"min(chain_position), max(chain_position) FROM {table}"
        )
        events, unsealed, first, last = cursor.fetchone()
    return PartitionState(name, events, unsealed, first, last)


def event_partition_detach(connection: Any, *, partition: str) -> int:
    """Detach one monthly partition of the trail; returns the position of the checkpoint that covers it (0
    for an empty partition). Refuses (RetentionRefused) unless every event in it is sealed, nothing older
    stays attached, and a checkpoint signed under this installation's key covers its last position; then
    signs one exactly at that position if there is none, so that the retained chain starts right after a
    checkpoint. The detached table stays in the database for the operator to archive and drop."""
    from django.db import DatabaseError, transaction

    from audit import chain, checkpoints, verify
    from audit.models import AuditCheckpoint

    if not partitioned(connection):
        raise RetentionRefused("the audit trail is not partitioned on this database")
    state = partition_state(connection, partition)
    if partition == DEFAULT_PARTITION:
        raise RetentionRefused("the default partition is never detached")
    month = _month_of(partition)
    if month is None or add_months(month, 1) > datetime.now(UTC).date():
        raise RetentionRefused(f"{partition} is not a month that is over")
    if state.unsealed:
        raise RetentionRefused(f"{state.unsealed} events of {partition} are not sealed into the chain yet")
    if state.last_position is not None:
        covering = (
            AuditCheckpoint.objects.filter(chain_position__gte=state.last_position)
            .order_by("chain_position")
            .first()
        )
        if covering is None:
            raise RetentionRefused(
                f"no signed checkpoint covers position {state.last_position} (the last of {partition})"
            )
        try:
            checkpoints.verify_checkpoint(checkpoints.checkpoint_document(covering), checkpoints.public_key())
        except checkpoints.CheckpointInvalid as exc:
            raise RetentionRefused(
                f"the checkpoint at {covering.chain_position} does not hold: {exc}"
            ) from None
        # From the last signed checkpoint before it (the publisher verified everything up to that one),
        # so that a month of events is not recomputed from the start of the retained chain.
        start = verify.retained_start().head
        prior = (
            AuditCheckpoint.objects.filter(
                chain_position__lt=covering.chain_position, chain_position__gte=start.position
            )
            .order_by("-chain_position")
            .first()
        )
        if prior is not None:
            try:
                checkpoints.verify_checkpoint(
                    checkpoints.checkpoint_document(prior), checkpoints.public_key()
                )
                start = chain.Head(prior.chain_position, prior.head_hash)
            except checkpoints.CheckpointInvalid:
                pass  # recompute from the retained start instead
        reached, problem = verify.segment_verify(start=start, until_position=covering.chain_position)
        if problem is not None or reached.hash != covering.head_hash:
            raise RetentionRefused(
                f"the chain does not verify up to the checkpoint at {covering.chain_position}: "
                f"{problem or 'its hash differs'}"
            )
        if covering.chain_position != state.last_position:
            checkpoints.checkpoint_publish(at_position=state.last_position)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT {DETACH_FUNCTION}(%s)", [partition])
            return int(cursor.fetchone()[0])
    except DatabaseError as exc:
        raise RetentionRefused(str(exc).strip().splitlines()[0]) from exc


# --- Migration: from a plain table to a partitioned one -----------------------------------------------------


def _keep_sequence_statements(sequence: str, old: str) -> list[str]:
    """The id column is an identity column: its sequence stays with the old table under the old table's name,
    so that the new table's identity sequence takes the usual name."""
    return [f"ALTER SEQUENCE {sequence} RENAME TO {old}_id_seq"]


def _continue_sequence_statement(sequence: str, old: str) -> str:
    """The new identity sequence goes on where the old one stopped (not at the highest id: ids handed out
    and rolled back are never handed out again)."""
    return f"SELECT setval('{sequence}', last_value, is_called) FROM {old}_id_seq"  # noqa: S608


def convert_to_partitioned(connection: Any) -> None:
    """Turn the plain events table into one partitioned by month of occurred_at, keeping every row, index,
    check constraint and the id sequence; the primary key becomes (id, occurred_at). Triggers are installed
    afterwards by the caller (the copy must not meet the rule that events arrive unsealed)."""
    old = f"{EVENT_TABLE}_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS ("
            "  SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('u', 'x'))",
            [EVENT_TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype <> 'n' ORDER BY conname",
            [EVENT_TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [EVENT_TABLE])
        sequence = cursor.fetchone()[0]
        cursor.execute(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = %s::regclass", [EVENT_TABLE]
        )
        schema = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT min({PARTITION_KEY}) FROM {EVENT_TABLE}"  # noqa: S608
        )
        oldest = cursor.fetchone()[0]
    first = month_start((oldest or datetime.now(UTC)).astimezone(UTC))
    last = add_months(month_start(datetime.now(UTC)), MONTHS_AHEAD)
    primary = next(name for name, kind, _ in constraints if kind == "p")
    statements = [
        f"ALTER TABLE {EVENT_TABLE} RENAME TO {old}",
        *_keep_sequence_statements(sequence, old),
    ]
    statements += [f"DROP INDEX {name}" for name, _ in indexes]
    statements += [
        f"ALTER TABLE {old} DROP CONSTRAINT {name}" for name, kind, _ in constraints if kind != "p"
    ]
    statements += [
        f"ALTER TABLE {old} RENAME CONSTRAINT {primary} TO {old}_pkey",
        f"CREATE TABLE {EVENT_TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY) "
        f"PARTITION BY RANGE ({PARTITION_KEY})",
        f"ALTER TABLE {EVENT_TABLE} ADD CONSTRAINT {primary} PRIMARY KEY (id, {PARTITION_KEY})",
        _continue_sequence_statement(sequence, old),
        # Checks (and any foreign key) first, so that partitions created below inherit them.
        *(
            f"ALTER TABLE {EVENT_TABLE} ADD CONSTRAINT {name} {definition}"
            for name, kind, definition in constraints
            if kind in ("c", "f")
        ),
        f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {EVENT_TABLE} DEFAULT",
        f"CREATE UNIQUE INDEX {DEFAULT_PARTITION}_chain_position ON {DEFAULT_PARTITION} (chain_position)",
        *functions_sql(schema),
    ]
    month = first
    while month <= last:
        statements.append(f"SELECT {CREATE_FUNCTION}('{month.isoformat()}')")
        month = add_months(month, 1)
    statements += [
        f"INSERT INTO {EVENT_TABLE} SELECT * FROM {old}",  # noqa: S608
        *(definition for _, definition in indexes),
        f"DROP TABLE {old}",
    ]
    _execute(connection, statements)


def revert_to_plain(connection: Any) -> None:
    """The way back: one plain table with the single-column primary key and unique chain positions."""
    old = f"{EVENT_TABLE}_partitioned"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [EVENT_TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('c', 'f', 'p') AND coninhcount = 0",
            [EVENT_TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [EVENT_TABLE])
        sequence = cursor.fetchone()[0]
    primary = next(name for name, kind, _ in constraints if kind == "p")
    statements = [
        *DROP_FUNCTIONS_SQL,
        f"ALTER TABLE {EVENT_TABLE} RENAME TO {old}",
        *_keep_sequence_statements(sequence, old),
    ]
    statements += [f"DROP INDEX {name}" for name, _ in indexes]
    statements += [
        f"ALTER TABLE {old} DROP CONSTRAINT {name}" for name, kind, _ in constraints if kind != "p"
    ]
    statements += [
        f"ALTER TABLE {old} RENAME CONSTRAINT {primary} TO {old}_pkey",
        f"CREATE TABLE {EVENT_TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY)",
        f"ALTER TABLE {EVENT_TABLE} ADD CONSTRAINT {primary} PRIMARY KEY (id)",
        f"ALTER TABLE {EVENT_TABLE} ADD CONSTRAINT {EVENT_TABLE}_chain_position_key UNIQUE (chain_position)",
        _continue_sequence_statement(sequence, old),
        f"INSERT INTO {EVENT_TABLE} SELECT * FROM {old}",  # noqa: S608
        *(
            f"ALTER TABLE {EVENT_TABLE} ADD CONSTRAINT {name} {definition}"
            for name, kind, definition in constraints
            if kind in ("c", "f")
        ),
        *(definition for _, definition in indexes),
        f"DROP TABLE {old} CASCADE",
    ]
    _execute(connection, statements)
