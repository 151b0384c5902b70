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
SUBJECT_TABLE = triggers.SUBJECT_TABLE
CHECKPOINT_TABLE = triggers.CHECKPOINT_TABLE
DEFAULT_PARTITION = f"{EVENT_TABLE}_default"
SUBJECT_DEFAULT_PARTITION = f"{SUBJECT_TABLE}_default"
PARTITION_KEY = "occurred_at"
MONTHS_AHEAD = 3
MAX_MONTHS_AHEAD = 24
# Subjects of events that were no longer in the trail when subjects got their own partitions (months
# detached before that): kept here by the migration for the operator to archive with those months.
UNATTACHED_SUBJECTS = f"{SUBJECT_TABLE}_unattached"

CREATE_FUNCTION = "audit_event_create_partition"
CREATE_AHEAD_FUNCTION = "audit_event_create_partitions"
DETACH_FUNCTION = "audit_event_detach_partition"
# Serialises creating and detaching partitions (a transaction-level advisory lock inside the functions).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"audit.partitions").digest()[:8], "big", signed=True)


class RetentionRefused(Exception):
    """Detaching this partition would lose events no signed checkpoint vouches for, or break the chain."""


def partition_name(month: date) -> str:
    return f"{EVENT_TABLE}_p{month.year:04d}_{month.month:02d}"


def subject_partition_name(month: date) -> str:
    """The subjects' partition of a month: detached together with the events' one."""
    return f"{SUBJECT_TABLE}_p{month.year:04d}_{month.month:02d}"


def subject_partition_of(event_partition: str) -> str | None:
    """The subjects' partition of the same month as an events' partition (None for the default one)."""
    month = _month_of(event_partition)
    return None if month is None else subject_partition_name(month)


def _month_of(name: str) -> date | None:
    match = re.fullmatch(rf"{EVENT_TABLE}_p(\d{{4}})_(\d\d)", name)
    return date(int(match[1]), int(match[2]), 1) if match else None


def month_start(moment: date | datetime) -> date:
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _truncate_trigger_sql(table: str, variable: str) -> str:
    """A partition's own TRUNCATE trigger (the partition's name in `variable`), exactly as audit.triggers
    installs and checks it."""
    trigger = triggers.Trigger(table, "TRUNCATE")
    return (
        f"EXECUTE format('CREATE TRIGGER {trigger.name} BEFORE TRUNCATE ON %I "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {trigger.function}()', {variable});\n"
        f"    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER {trigger.name}', {variable});"
    )


def _detached_sql(table: str, variable: str) -> str:
    """A detached month leaves the trail: PostgreSQL drops the row triggers it had from the table, and its
    own TRUNCATE trigger goes too, so it is a plain table for the operator to archive (the covering
    checkpoint vouches for its content) and drop."""
    return (
        f"EXECUTE format('DROP TRIGGER IF EXISTS {triggers.Trigger(table, 'TRUNCATE').name} ON %I', "
        f"{variable});"
    )


# Months are UTC calendar months. Bounds are built with make_timestamptz(..., 'UTC') and passed to EXECUTE
# as literals with an offset, so the session's TimeZone changes nothing.
_CREATE_HEAD = f"""
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
    subject_part text := '{SUBJECT_TABLE}_p' || to_char(first, 'YYYY_MM');
    held boolean;
    created boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});"""

_CREATE_EVENTS = f"""
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
    {_truncate_trigger_sql(EVENT_TABLE, "part")}"""  # noqa: S608 - names are this module's constants

# Before subjects were partitioned (migration 0004): the events' partition only.
_CREATE_EVENTS_ONLY = f"""{_CREATE_HEAD}
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;{_CREATE_EVENTS}
    RETURN true;
END
$audit$"""

# The events' and the subjects' partition of a month, made together (whichever is missing: the migration
# that partitioned subjects adds them to months that already had events' partitions). A month whose events'
# table exists but is no partition was detached, and waits for the operator: it is never made again.
_CREATE_WITH_SUBJECTS = f"""{_CREATE_HEAD}
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM {SUBJECT_DEFAULT_PARTITION} WHERE {PARTITION_KEY} >= %L '
                       'AND {PARTITION_KEY} < %L)', lo, hi) INTO held;
        IF held THEN
            RAISE WARNING 'audit partition % not created: the default partition holds subjects of that month',
                part;
            RETURN false;
        END IF;{_CREATE_EVENTS.replace(chr(10) + "    ", chr(10) + "        ")}
        created := true;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(part)
                      AND inhparent = '{EVENT_TABLE}'::regclass) THEN
        RETURN false;
    END IF;
    IF to_regclass(subject_part) IS NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM {SUBJECT_DEFAULT_PARTITION} WHERE {PARTITION_KEY} >= %L '
                       'AND {PARTITION_KEY} < %L)', lo, hi) INTO held;
        IF held THEN
            RAISE WARNING 'audit partition % not created: the default partition holds subjects of that month',
                subject_part;
            RETURN created;
        END IF;
        EXECUTE format('CREATE TABLE %I (LIKE {SUBJECT_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       subject_part);
        EXECUTE format('ALTER TABLE {SUBJECT_TABLE} ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       subject_part, lo, hi);
        {_truncate_trigger_sql(SUBJECT_TABLE, "subject_part")}
        created := true;
    END IF;
    RETURN created;
END
$audit$"""  # noqa: S608 - names are this module's constants

_CREATE_AHEAD = f"""
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
$audit$"""

# The rules, whoever calls: the month is over, every event in it is sealed, no retained event sits below its
# positions, and a signed checkpoint covers its last one. `{{subjects_lock}}` and `{{subjects_detach}}` take
# the month's subjects along (nothing before subjects were partitioned).
_DETACH = f"""
CREATE OR REPLACE FUNCTION {DETACH_FUNCTION}(partition_name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $audit$
DECLARE
    part regclass;
    subject_part text := '{SUBJECT_TABLE}_p' || right(partition_name, 7);
    subjects_attached boolean;
    unsealed bigint;
    top bigint;
    earlier bigint;
    covering bigint := 0;
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
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', partition_name);{{subjects_lock}}
    EXECUTE format('SELECT count(*) FILTER (WHERE chain_position IS NULL), max(chain_position) FROM %I',
                   partition_name) INTO unsealed, top;
    IF unsealed > 0 THEN
        RAISE EXCEPTION 'audit retention: % events of % are not sealed into the chain yet', unsealed,
            partition_name USING ERRCODE = 'restrict_violation';
    END IF;
    IF top IS NOT NULL THEN
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
    END IF;
    EXECUTE format('ALTER TABLE {EVENT_TABLE} DETACH PARTITION %I', partition_name);
    {_detached_sql(EVENT_TABLE, "partition_name")}{{subjects_detach}}
    RETURN covering;
END
$audit$"""  # noqa: S608 - names are this module's constants

_SUBJECTS_LOCK = f"""
    subjects_attached := EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(subject_part)
                                 AND inhparent = '{SUBJECT_TABLE}'::regclass);
    IF subjects_attached THEN
        EXECUTE format('LOCK TABLE %I IN SHARE MODE', subject_part);
    END IF;"""  # noqa: S608 - names are this module's constants
_SUBJECTS_DETACH = f"""
    -- The month's subjects leave with its events: the detached pair is the month's whole archive, which
    -- the chain's hashes (they cover each event's subjects) re-verify on their own.
    IF subjects_attached THEN
        EXECUTE format('ALTER TABLE {SUBJECT_TABLE} DETACH PARTITION %I', subject_part);
        {_detached_sql(SUBJECT_TABLE, "subject_part")}
    END IF;"""


def _function_definitions(*, subjects: bool) -> list[str]:
    create = _CREATE_WITH_SUBJECTS if subjects else _CREATE_EVENTS_ONLY
    detach = _DETACH.replace("{subjects_lock}", _SUBJECTS_LOCK if subjects else "").replace(
        "{subjects_detach}", _SUBJECTS_DETACH if subjects else ""
    )
    return [create, _CREATE_AHEAD, detach]


# Creating partitions ahead is for the roles that run the periodic job (deploy/postgres/create-roles.sh
# grants EXECUTE to the application's and the sealer's roles), not for anyone who can log in; retention is
# the operator's, under the role that owns the trail. Before subjects were partitioned (migration 0004) only
# retention was revoked from PUBLIC; reverting migration 0005 grants creating back to PUBLIC.
_PRIVATE_FUNCTIONS = (f"{CREATE_FUNCTION}(date)", f"{CREATE_AHEAD_FUNCTION}(integer)")
_PRIVILEGES_SQL = [f"REVOKE ALL ON FUNCTION {DETACH_FUNCTION}(text) FROM PUBLIC"]
PRIVATE_CREATE_SQL = [f"REVOKE ALL ON FUNCTION {name} FROM PUBLIC" for name in _PRIVATE_FUNCTIONS]
PUBLIC_CREATE_SQL = [f"GRANT EXECUTE ON FUNCTION {name} TO PUBLIC" for name in _PRIVATE_FUNCTIONS]


def functions_sql(schema: str, *, subjects: bool) -> list[str]:
    """The functions' definitions, run in the events table's schema (also where they create partitions;
    pg_catalog is searched first, and pg_temp last, so no object of the caller's can stand in for one).
    `subjects`: whether the subjects table is partitioned too (migration 0005), so that they make and detach
    its partitions with the events'; the versions of migration 0004 otherwise."""
    statements = [sql.replace("{schema}", schema) for sql in _function_definitions(subjects=subjects)]
    return statements + _PRIVILEGES_SQL + (PRIVATE_CREATE_SQL if subjects else [])


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


def _is_partitioned(connection: Any, table: str) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0])


def partitioned(connection: Any) -> bool:
    return _is_partitioned(connection, EVENT_TABLE)


def subjects_partitioned(connection: Any) -> bool:
    return _is_partitioned(connection, SUBJECT_TABLE)


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
    indexes, constraints, sequence, schema = _table_facts(connection, EVENT_TABLE, "contype <> 'n'")
    with connection.cursor() as cursor:
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
        *functions_sql(schema, subjects=subjects_partitioned(connection)),
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


# --- Migration: subjects partitioned by the same months (after the events) ----------------------------------


def subjects_fill_time(connection: Any) -> int:
    """Give every subject its event's time (the new, still nullable occurred_at column), with the
    append-only rule lifted for the statement; subjects whose event is no longer in the trail (a month
    detached before subjects had partitions) move to UNATTACHED_SUBJECTS. Returns how many moved.

    Runs inside the migration's transaction: nobody sees the rule lifted."""
    subject = connection.ops.quote_name(SUBJECT_TABLE)
    event = connection.ops.quote_name(EVENT_TABLE)
    lifted = [
        f"DROP TRIGGER IF EXISTS {connection.ops.quote_name(trigger.name)}"
        + (f" ON {subject}" if connection.vendor == "postgresql" else "")
        for trigger in (triggers.Trigger(SUBJECT_TABLE, "UPDATE"), triggers.Trigger(SUBJECT_TABLE, "DELETE"))
    ]
    _execute(connection, lifted)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {subject} AS s SET {PARTITION_KEY} = e.{PARTITION_KEY} "  # noqa: S608
                f"FROM {event} AS e WHERE e.id = s.event_id"
            )
        else:
            cursor.execute(
                f"UPDATE {subject} SET {PARTITION_KEY} = (SELECT e.{PARTITION_KEY} FROM {event} AS e "  # noqa: S608
                f"WHERE e.id = {subject}.event_id)"
            )
        cursor.execute(f"SELECT count(*) FROM {subject} WHERE {PARTITION_KEY} IS NULL")  # noqa: S608
        unattached = cursor.fetchone()[0]
        if unattached:
            columns = f"id, event_id, public_id FROM {subject} WHERE {PARTITION_KEY} IS NULL"
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {UNATTACHED_SUBJECTS} AS SELECT {columns} AND 1 = 0")
            cursor.execute(f"INSERT INTO {UNATTACHED_SUBJECTS} SELECT {columns}")
            cursor.execute(f"DELETE FROM {subject} WHERE {PARTITION_KEY} IS NULL")  # noqa: S608
    triggers.install(connection)
    return int(unattached)


def _unique_columns(cursor: Any, table: str) -> dict[str, list[str]]:
    cursor.execute(
        "SELECT c.conname, array_agg(a.attname::text ORDER BY k.ordinality) FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ordinality) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND c.coninhcount = 0 GROUP BY c.conname",
        [table],
    )
    return {name: list(columns) for name, columns in cursor.fetchall()}


def _table_facts(
    connection: Any, table: str, constraint_filter: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]], str, str]:
    """What converting `table` to or from partitions must carry over: its plain indexes (not those behind
    a constraint), the constraints `constraint_filter` selects, its id sequence and its schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS ("
            "  SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('u', 'x'))",
            [table],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "  # noqa: S608
            f"WHERE conrelid = %s::regclass AND {constraint_filter} ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        cursor.execute(
            "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = %s::regclass", [table]
        )
        schema = cursor.fetchone()[0]
    return indexes, constraints, sequence, schema


def _subject_facts(connection: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]], str, str]:
    # Own constraints only: a partitioned table's children inherit theirs (coninhcount > 0).
    return _table_facts(connection, SUBJECT_TABLE, "contype IN ('c', 'p', 'u') AND coninhcount = 0")


def convert_subjects_to_partitioned(connection: Any) -> None:
    """Partition the subjects table (its occurred_at filled and NOT NULL) by the events' months: a partition
    for every month the events table has one, and a default one. The primary key becomes (id, occurred_at)
    and each unique constraint gains occurred_at, as a partitioned table requires (a subject's time is its
    event's, so they still mean what they say). The functions are re-created to make and detach both tables'
    partitions of a month together, and no longer PUBLIC to execute. Triggers are installed by the caller."""
    old = f"{SUBJECT_TABLE}_unpartitioned"
    indexes, constraints, sequence, schema = _subject_facts(connection)
    with connection.cursor() as cursor:
        uniques = _unique_columns(cursor, SUBJECT_TABLE)
    months = sorted(
        month for month in (_month_of(name) for name in triggers.event_partitions(connection)) if month
    )
    primary = next(name for name, kind, _ in constraints if kind == "p")
    _execute(
        connection,
        [
            f"ALTER TABLE {SUBJECT_TABLE} RENAME TO {old}",
            *_keep_sequence_statements(sequence, old),
            *(f"DROP INDEX {name}" for name, _ in indexes),
            *(f"ALTER TABLE {old} DROP CONSTRAINT {name}" for name, kind, _ in constraints if kind != "p"),
            f"ALTER TABLE {old} RENAME CONSTRAINT {primary} TO {old}_pkey",
            f"CREATE TABLE {SUBJECT_TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY) "
            f"PARTITION BY RANGE ({PARTITION_KEY})",
            f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {primary} PRIMARY KEY (id, {PARTITION_KEY})",
            *(
                f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {name} "
                f"UNIQUE ({', '.join(columns)}, {PARTITION_KEY})"
                for name, columns in sorted(uniques.items())
            ),
            _continue_sequence_statement(sequence, old),
            *(
                f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {name} {definition}"
                for name, kind, definition in constraints
                if kind == "c"
            ),
            f"CREATE TABLE {SUBJECT_DEFAULT_PARTITION} PARTITION OF {SUBJECT_TABLE} DEFAULT",
            # Replaced, not dropped: the grants of deploy/postgres/create-roles.sh stay.
            *functions_sql(schema, subjects=True),
            *(f"SELECT {CREATE_FUNCTION}('{month.isoformat()}')" for month in months),
            f"INSERT INTO {SUBJECT_TABLE} SELECT * FROM {old}",  # noqa: S608
            *(definition for _, definition in indexes),
            f"DROP TABLE {old}",
        ],
    )


def revert_subjects_to_plain(connection: Any) -> None:
    """The way back: one plain subjects table with its single-column key and (event, public_id) unique, and
    the functions as migration 0004 made them (events' partitions only, creating open to PUBLIC)."""
    old = f"{SUBJECT_TABLE}_partitioned"
    indexes, constraints, sequence, schema = _subject_facts(connection)
    with connection.cursor() as cursor:
        uniques = _unique_columns(cursor, SUBJECT_TABLE)
    primary = next(name for name, kind, _ in constraints if kind == "p")
    _execute(
        connection,
        [
            *functions_sql(schema, subjects=False),
            *PUBLIC_CREATE_SQL,
            f"ALTER TABLE {SUBJECT_TABLE} RENAME TO {old}",
            *_keep_sequence_statements(sequence, old),
            *(f"DROP INDEX {name}" for name, _ in indexes),
            *(f"ALTER TABLE {old} DROP CONSTRAINT {name}" for name, kind, _ in constraints if kind != "p"),
            f"ALTER TABLE {old} RENAME CONSTRAINT {primary} TO {old}_pkey",
            f"CREATE TABLE {SUBJECT_TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY)",
            f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {primary} PRIMARY KEY (id)",
            *(
                f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {name} UNIQUE "
                f"({', '.join(c for c in columns if c != PARTITION_KEY)})"
                for name, columns in sorted(uniques.items())
            ),
            _continue_sequence_statement(sequence, old),
            f"INSERT INTO {SUBJECT_TABLE} SELECT * FROM {old}",  # noqa: S608
            *(
                f"ALTER TABLE {SUBJECT_TABLE} ADD CONSTRAINT {name} {definition}"
                for name, kind, definition in constraints
                if kind == "c"
            ),
            *(definition for _, definition in indexes),
            f"DROP TABLE {old} CASCADE",
        ],
    )
