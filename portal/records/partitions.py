"""Monthly partitions of the transactions table (PostgreSQL), by month of occurred_at.

Partitions are made by SQL functions owned by the role that migrates (SECURITY DEFINER), so the
application's role, which cannot create tables, can call them from the periodic task. A default partition
takes rows of months that have no partition yet (history loaded in bulk, a clock far off); creating that
month's partition moves them into it, and the periodic task does so for every month the default holds.
On SQLite the table stays a plain table and these services do nothing.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

TABLE = "records_transaction"
DEFAULT_PARTITION = f"{TABLE}_default"
PARTITION_KEY = "occurred_at"
MONTHS_AHEAD = 3
MAX_MONTHS_AHEAD = 24
# History the migration makes partitions for even when the table is empty (the loader brings two years).
MONTHS_BACK = 24

CREATE_FUNCTION = "records_transaction_create_partition"
CREATE_AHEAD_FUNCTION = "records_transaction_create_partitions"
LOCK_KEY = int.from_bytes(hashlib.sha256(b"records.partitions").digest()[:8], "big", signed=True)


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


def month_start(moment: date | datetime) -> date:
    return date(moment.year, moment.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


# Months are UTC calendar months; bounds go to EXECUTE as literals with an offset, whatever the TimeZone.
_FUNCTIONS_SQL = [
    f"""
CREATE OR REPLACE FUNCTION {CREATE_FUNCTION}(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $records$
DECLARE
    first date := date_trunc('month', month)::date;
    lo timestamptz := make_timestamptz(extract(year FROM first)::int, extract(month FROM first)::int, 1,
                                       0, 0, 0, 'UTC');
    following date := (first + interval '1 month')::date;
    hi timestamptz := make_timestamptz(extract(year FROM following)::int,
                                       extract(month FROM following)::int, 1, 0, 0, 0, 'UTC');
    part text := '{TABLE}_p' || to_char(first, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- The month's rows leave the default partition first (PostgreSQL refuses a partition whose rows the
    -- default holds); the partition is then made from the parent itself (PARTITION OF), so it carries
    -- exactly the parent's columns, checks, keys and indexes, inherited and under the parent's names, as
    -- Citus expects of a partition when it creates the shards (deploy/SCALING.md §3.1).
    EXECUTE format('CREATE TEMPORARY TABLE pg_temp.records_moving ON COMMIT DROP AS WITH moved AS ('
                   'DELETE FROM {DEFAULT_PARTITION} WHERE {PARTITION_KEY} >= %L AND {PARTITION_KEY} < %L '
                   'RETURNING *) SELECT * FROM moved', lo, hi);
    EXECUTE format('CREATE TABLE %I PARTITION OF {TABLE} FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    EXECUTE 'INSERT INTO {TABLE} SELECT * FROM pg_temp.records_moving';
    EXECUTE 'DROP TABLE pg_temp.records_moving';
    RETURN true;
END
$records$""",  # noqa: S608 - names are this module's constants
    f"""
CREATE OR REPLACE FUNCTION {CREATE_AHEAD_FUNCTION}(months_ahead integer DEFAULT {MONTHS_AHEAD})
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}}, pg_temp AS $records$
DECLARE
    current date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > {MAX_MONTHS_AHEAD} THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and {MAX_MONTHS_AHEAD}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Months that arrived before their partition first, then the months ahead.
    FOR month IN
        SELECT DISTINCT date_trunc('month', {PARTITION_KEY} AT TIME ZONE 'UTC')::date FROM {DEFAULT_PARTITION}
        UNION
        SELECT (current + make_interval(months => step))::date FROM generate_series(0, months_ahead) AS step
        ORDER BY 1
    LOOP
        IF {CREATE_FUNCTION}(month) THEN
            RETURN NEXT '{TABLE}_p' || to_char(month, 'YYYY_MM');
        END IF;
    END LOOP;
END
$records$""",  # noqa: S608 - names are this module's constants
]
DROP_FUNCTIONS_SQL = [
    f"DROP FUNCTION IF EXISTS {CREATE_AHEAD_FUNCTION}(integer)",
    f"DROP FUNCTION IF EXISTS {CREATE_FUNCTION}(date)",
]


# Only the roles that run the periodic job may call them (deploy/postgres/create-roles.sh grants EXECUTE to
# the application's role), not anyone who can log in: migration 0007 revoked them from PUBLIC.
_FUNCTION_SIGNATURES = (f"{CREATE_FUNCTION}(date)", f"{CREATE_AHEAD_FUNCTION}(integer)")
PRIVATE_SQL = [f"REVOKE ALL ON FUNCTION {name} FROM PUBLIC" for name in _FUNCTION_SIGNATURES]
PUBLIC_SQL = [f"GRANT EXECUTE ON FUNCTION {name} TO PUBLIC" for name in _FUNCTION_SIGNATURES]


def functions_sql(schema: str) -> list[str]:
    """The functions' definitions, bound to the table's schema (pg_catalog first, pg_temp last), executable
    only by the roles granted it."""
    return [sql.replace("{schema}", schema) for sql in _FUNCTIONS_SQL] + PRIVATE_SQL


def functions_private(connection: Any) -> None:
    """Take EXECUTE on the partition functions away from PUBLIC (nothing while the table is plain)."""
    if partitioned(connection):
        _execute(connection, PRIVATE_SQL)


def functions_public(connection: Any) -> None:
    if partitioned(connection):
        _execute(connection, PUBLIC_SQL)


def _execute(connection: Any, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, None)


def partitioned(connection: Any) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row and row[0])


def transaction_partitions(connection: Any) -> list[str]:
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [TABLE],
        )
        return [row[0] for row in cursor.fetchall()]


def transaction_partitions_create(connection: Any, *, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of this month to `months_ahead` months on, and of every month the default
    partition holds rows of (moving them in); idempotent. The names created now; nothing on SQLite."""
    if not partitioned(connection):
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {CREATE_AHEAD_FUNCTION}(%s)", [months_ahead])  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


# --- Migration: from a plain table to a partitioned one -----------------------------------------------------


def _table_facts(
    cursor: Any, table: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]], str, str]:
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS ("
        "  SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('u', 'x'))",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('c', 'f', 'p', 'u') AND coninhcount = 0 "
        "ORDER BY conname",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = %s::regclass", [table])
    schema = cursor.fetchone()[0]
    return indexes, constraints, sequence, schema


def _rebuild(connection: Any, *, partitioned_by: str | None, months: list[date]) -> None:
    """Re-create the table (partitioned by `partitioned_by`, or plain) with the same columns, identity
    sequence position, checks, foreign keys and indexes, and copy every row across."""
    suffix = "unpartitioned" if partitioned_by else "partitioned"
    old = f"{TABLE}_{suffix}"
    with connection.cursor() as cursor:
        indexes, constraints, sequence, schema = _table_facts(cursor, TABLE)
    primary = next(name for name, kind, _ in constraints if kind == "p")
    key = f"(id, {partitioned_by})" if partitioned_by else "(id)"
    layout = f" PARTITION BY RANGE ({partitioned_by})" if partitioned_by else ""
    statements = [
        *([] if partitioned_by else DROP_FUNCTIONS_SQL),
        f"ALTER TABLE {TABLE} RENAME TO {old}",
        # The identity sequence stays with the old table, so that the new one's takes the usual name.
        f"ALTER SEQUENCE {sequence} RENAME TO {old}_id_seq",
        *(f"DROP INDEX {name}" for name, _ in indexes),
        *(f"ALTER TABLE {old} DROP CONSTRAINT {name}" for name, kind, _ in constraints if kind != "p"),
        f"ALTER TABLE {old} RENAME CONSTRAINT {primary} TO {old}_pkey",
        f"CREATE TABLE {TABLE} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY){layout}",
        f"ALTER TABLE {TABLE} ADD CONSTRAINT {primary} PRIMARY KEY {key}",
        # Where the old sequence stopped, not at the highest id: ids once handed out are never reused.
        f"SELECT setval('{sequence}', last_value, is_called) FROM {old}_id_seq",  # noqa: S608
        # Checks before the partitions, which copy them; foreign keys after the copy (one pass each).
        *(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}"
            for name, kind, definition in constraints
            if kind == "c"
        ),
    ]
    if partitioned_by:
        statements += [
            f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT",
            *functions_sql(schema),
            *(f"SELECT {CREATE_FUNCTION}('{month.isoformat()}')" for month in months),
        ]
    statements += [
        f"INSERT INTO {TABLE} SELECT * FROM {old}",  # noqa: S608
        *(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}"
            for name, kind, definition in constraints
            if kind == "f"
        ),
        *(definition for _, definition in indexes),
        f"DROP TABLE {old} CASCADE",
    ]
    _execute(connection, statements)


def convert_to_partitioned(connection: Any) -> None:
    """Partition the plain transactions table by month: partitions from the oldest row's month (or
    MONTHS_BACK months ago) to MONTHS_AHEAD months on, and a default one; the primary key becomes
    (id, occurred_at) in SQL while Django keeps addressing rows by id."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min({PARTITION_KEY}) FROM {TABLE}")  # noqa: S608
        oldest = cursor.fetchone()[0]
    current = month_start(datetime.now(UTC))
    first = add_months(current, -MONTHS_BACK)
    if oldest is not None:
        first = min(first, month_start(oldest.astimezone(UTC)))
    months = []
    month = first
    while month <= add_months(current, MONTHS_AHEAD):
        months.append(month)
        month = add_months(month, 1)
    _rebuild(connection, partitioned_by=PARTITION_KEY, months=months)


def revert_to_plain(connection: Any) -> None:
    _rebuild(connection, partitioned_by=None, months=[])
