"""The database's own refusal to rewrite the audit trail: trigger SQL for PostgreSQL and SQLite, installed by
migration 0003, re-installed after every migrate, and inspected by the system check audit.E001.

The rule on every audit table (events, subjects, checkpoints, Merkle tree nodes, witness cosignatures), and
on every monthly partition of the events and subjects tables (PostgreSQL):
no UPDATE, no DELETE, no TRUNCATE. One exception: the sealer may fill the chain columns of an event once (from
NULL/'' to values) while every other column stays identical. And since that is the only way into the chain, an
event cannot be inserted with its chain columns already filled.

This module depends on table and column names only, never on the models, so that migrations can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

EVENT_TABLE = "audit_auditevent"
SUBJECT_TABLE = "audit_auditsubject"
CHECKPOINT_TABLE = "audit_auditcheckpoint"
MERKLE_TABLE = "audit_auditmerklenode"
COSIGNATURE_TABLE = "audit_auditcosignature"
TABLES = (EVENT_TABLE, SUBJECT_TABLE, CHECKPOINT_TABLE, MERKLE_TABLE, COSIGNATURE_TABLE)
# The tables of migration 0003; the others come with later migrations, and their rule applies once they exist
# (each later migration installs it).
FIRST_TABLES = TABLES[:3]
# Partitioned by month of occurred_at on PostgreSQL (a subject carries its event's time).
PARTITIONED_TABLES = (EVENT_TABLE, SUBJECT_TABLE)
CHAIN_COLUMNS = ("chain_position", "prev_hash", "hash", "sealed_at")
MESSAGE = "audit trail is append-only"

# The migration that first installs the triggers: before it is applied there is nothing to install or check.
MIGRATION = ("audit", "0003_append_only")

# PostgreSQL functions the triggers call. Bodies are compared with the catalogue by the system check, so a
# function quietly replaced by one that lets everything through is reported like a missing trigger.
REFUSE_FUNCTION = "audit_refuse_change"
SEAL_ONLY_FUNCTION = "audit_event_seal_only"
UNSEALED_FUNCTION = "audit_event_arrives_unsealed"
_REFUSE_BODY = f"""
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
"""
# Compared as JSON documents minus the chain columns, so a column added later is covered without a new
# function (on SQLite the column list is spelled out, and re-derived whenever the trigger is re-created).
_SEAL_ONLY_BODY = f"""
BEGIN
    IF OLD.chain_position IS NULL AND OLD.prev_hash = '' AND OLD.hash = '' AND OLD.sealed_at IS NULL
        AND NEW.chain_position IS NOT NULL AND length(NEW.prev_hash) = 64 AND length(NEW.hash) = 64
        AND NEW.sealed_at IS NOT NULL
        AND to_jsonb(NEW) - ARRAY['chain_position', 'prev_hash', 'hash', 'sealed_at']
            = to_jsonb(OLD) - ARRAY['chain_position', 'prev_hash', 'hash', 'sealed_at']
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '{MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
"""
_UNSEALED_BODY = f"""
BEGIN
    IF NEW.chain_position IS NULL AND NEW.prev_hash = '' AND NEW.hash = '' AND NEW.sealed_at IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '{MESSAGE}: an event arrives unsealed, only the sealer fills its chain columns'
        USING ERRCODE = 'restrict_violation';
END
"""
_FUNCTIONS = {
    REFUSE_FUNCTION: _REFUSE_BODY,
    SEAL_ONLY_FUNCTION: _SEAL_ONLY_BODY,
    UNSEALED_FUNCTION: _UNSEALED_BODY,
}

# pg_trigger.tgtype bits.
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 4, 8, 16, 32
_OPERATION_BITS = {"INSERT": _INSERT, "UPDATE": _UPDATE, "DELETE": _DELETE, "TRUNCATE": _TRUNCATE}


@dataclass(frozen=True)
class Trigger:
    table: str  # the audit table whose rule this is
    operation: str  # INSERT (events only), UPDATE, DELETE or TRUNCATE
    # The monthly partition of the table that holds this trigger ("" for the table itself). Row
    # triggers there are PostgreSQL's clones of the table's own; TRUNCATE triggers are statement-level and
    # never cloned, so each partition carries its own (a TRUNCATE naming the partition skips the parent's).
    partition: str = ""

    @property
    def name(self) -> str:
        # SQLite trigger names are global to the database, so the table is part of the name; a partition's
        # trigger has its table's name (PostgreSQL names triggers per relation).
        return f"{self.table}_append_only_{self.operation.lower()}"

    @property
    def relation(self) -> str:
        return self.partition or self.table

    @property
    def cloned(self) -> bool:
        """A row trigger of a partition: PostgreSQL keeps it a copy of the table's, and drops it with it."""
        return bool(self.partition) and self.operation != "TRUNCATE"

    def __str__(self) -> str:
        return f"{self.name} on {self.relation}"

    @property
    def function(self) -> str:
        if self.table == EVENT_TABLE and self.operation == "UPDATE":
            return SEAL_ONLY_FUNCTION
        if self.operation == "INSERT":
            return UNSEALED_FUNCTION
        return REFUSE_FUNCTION

    @property
    def tgtype(self) -> int:
        level = 0 if self.operation == "TRUNCATE" else _ROW
        return level | _BEFORE | _OPERATION_BITS[self.operation]


def triggers(
    vendor: str, partitions: Iterable[tuple[str, str]] = (), tables: Iterable[str] = TABLES
) -> list[Trigger]:
    """The triggers the rule needs on this database (SQLite has no TRUNCATE: DELETE covers it), given the
    partitions of the events and subjects tables as (table, partition) pairs (PostgreSQL) and the audit
    tables that exist."""
    operations = ("UPDATE", "DELETE", "TRUNCATE") if vendor == "postgresql" else ("UPDATE", "DELETE")
    rule = [Trigger(EVENT_TABLE, "INSERT")] + [
        Trigger(table, operation) for table in TABLES if table in tables for operation in operations
    ]
    return rule + [
        Trigger(table, operation, partition)
        for table, partition in partitions
        for operation in (("INSERT", *operations) if table == EVENT_TABLE else operations)
    ]


_PG_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname
"""


def table_partitions(connection: Any, table: str) -> list[str]:
    """The partitions of one audit table (PostgreSQL; none while it is a plain table, or on SQLite)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(_PG_PARTITIONS, [table])
        return [row[0] for row in cursor.fetchall()]


def event_partitions(connection: Any) -> list[str]:
    """The partitions of the events table."""
    return table_partitions(connection, EVENT_TABLE)


def subject_partitions(connection: Any) -> list[str]:
    """The partitions of the subjects table (the same months as the events')."""
    return table_partitions(connection, SUBJECT_TABLE)


def all_partitions(connection: Any) -> list[tuple[str, str]]:
    """Every partition of the partitioned audit tables, as (table, partition) pairs."""
    return [(table, name) for table in PARTITIONED_TABLES for name in table_partitions(connection, table)]


def present_tables(connection: Any) -> list[str]:
    """The audit tables this database has (a later table is absent until its migration ran)."""
    with connection.cursor() as cursor:
        present = set(connection.introspection.table_names(cursor))
    return [table for table in TABLES if table in present]


def _quote(connection: Any, name: str) -> str:
    return connection.ops.quote_name(name)


def _execute(connection: Any, statements: Iterable[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            # No parameters: PL/pgSQL format strings use %, which a parameterised execute would interpolate.
            cursor.execute(statement, None)


def _normalised(sql: str) -> str:
    return " ".join(sql.split())


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _pg_function_sql(name: str) -> str:
    body = _FUNCTIONS[name]
    return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $audit${body}$audit$"


def _pg_trigger_sql(connection: Any, trigger: Trigger) -> list[str]:
    table, name = _quote(connection, trigger.relation), _quote(connection, trigger.name)
    if trigger.cloned:
        # Created (and dropped) with the table's own trigger; only its enabled state is the partition's.
        return [f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"]
    level = "STATEMENT" if trigger.operation == "TRUNCATE" else "ROW"
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} BEFORE {trigger.operation} ON {table} "
        f"FOR EACH {level} EXECUTE FUNCTION {trigger.function}()",
        # ALWAYS: a session in replica mode (session_replication_role) does not slip past the rule either.
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}",
    ]


_PG_INSPECT = """
SELECT c.relname, t.tgname, t.tgtype, t.tgenabled,
       t.tgqual IS NULL AND cardinality(t.tgattr::int2[]) = 0, p.proname, p.prosrc
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
"""


def _pg_problems(connection: Any) -> dict[Trigger, str]:
    partitions = all_partitions(connection)
    with connection.cursor() as cursor:
        cursor.execute(_PG_INSPECT, [[*TABLES, *(name for _, name in partitions)]])
        found = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
    problems: dict[Trigger, str] = {}
    for trigger in triggers("postgresql", partitions, present_tables(connection)):
        state = found.get((trigger.relation, trigger.name))
        if state is None:
            problems[trigger] = "missing"
            continue
        tgtype, enabled, unconditional, function, source = state
        if tgtype != trigger.tgtype or not unconditional:
            problems[trigger] = "altered (fires on the wrong events or conditionally)"
        elif function != trigger.function or _normalised(source) != _normalised(_FUNCTIONS[trigger.function]):
            problems[trigger] = f"altered (calls a function other than the audit's {trigger.function})"
        elif enabled != "A":
            problems[trigger] = "disabled" if enabled == "D" else f"not enabled ALWAYS (state {enabled})"
    # A table's row trigger that is missing takes its partitions' copies with it: one report says it all.
    return {
        trigger: problem
        for trigger, problem in problems.items()
        if not (trigger.cloned and problems.get(Trigger(trigger.table, trigger.operation)) == "missing")
    }


# --- SQLite -------------------------------------------------------------------------------------------------


def _sqlite_columns(connection: Any, table: str) -> list[str]:
    with connection.cursor() as cursor:
        return [column.name for column in connection.introspection.get_table_description(cursor, table)]


def _sqlite_trigger_sql(connection: Any, trigger: Trigger) -> str:
    """The CREATE TRIGGER statement, as SQLite stores it in sqlite_master (without IF NOT EXISTS)."""
    table, name = _quote(connection, trigger.table), _quote(connection, trigger.name)
    refuse = f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {trigger.operation} on {trigger.table} refused'); END"
    if trigger.function == UNSEALED_FUNCTION:
        refuse = (
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: an event arrives unsealed, "
            "only the sealer fills its chain columns'); END"
        )
        unsealed = (
            "NEW.chain_position IS NULL AND NEW.prev_hash = '' AND NEW.hash = '' AND NEW.sealed_at IS NULL"
        )
        return f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW WHEN NOT ({unsealed}) {refuse}"
    if trigger.function != SEAL_ONLY_FUNCTION:
        return f"CREATE TRIGGER {name} BEFORE {trigger.operation} ON {table} FOR EACH ROW {refuse}"
    # SQLite has no row-to-JSON: every column but the chain columns is listed, as the table has it now.
    unchanged = " AND ".join(
        f"NEW.{_quote(connection, column)} IS OLD.{_quote(connection, column)}"
        for column in _sqlite_columns(connection, trigger.table)
        if column not in CHAIN_COLUMNS
    )
    allowed = (
        "OLD.chain_position IS NULL AND OLD.prev_hash = '' AND OLD.hash = '' AND OLD.sealed_at IS NULL "
        "AND NEW.chain_position IS NOT NULL AND length(NEW.prev_hash) = 64 AND length(NEW.hash) = 64 "
        f"AND NEW.sealed_at IS NOT NULL AND {unchanged}"
    )
    return f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW WHEN NOT ({allowed}) {refuse}"


def _sqlite_problems(connection: Any) -> dict[Trigger, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master "  # noqa: S608 (placeholders only)
            f"WHERE type = 'trigger' AND tbl_name IN ({', '.join(['%s'] * len(TABLES))})",
            list(TABLES),
        )
        found = {(row[1], row[0]): row[2] for row in cursor.fetchall()}
    problems: dict[Trigger, str] = {}
    for trigger in triggers("sqlite", tables=present_tables(connection)):
        sql = found.get((trigger.table, trigger.name))
        if sql is None:
            problems[trigger] = "missing"
        elif _normalised(sql) != _normalised(_sqlite_trigger_sql(connection, trigger)):
            # Also the case after a column was added without a table rebuild: the rule would not cover it.
            problems[trigger] = "out of date or altered (does not match the rule for the table's columns)"
    return problems


# --- Both ---------------------------------------------------------------------------------------------------


def problems(connection: Any) -> dict[Trigger, str]:
    """Every trigger of the rule that is missing, disabled or altered here, with what is wrong with it."""
    if connection.vendor == "postgresql":
        return _pg_problems(connection)
    if connection.vendor == "sqlite":
        return _sqlite_problems(connection)
    return {}


def tables_exist(connection: Any) -> bool:
    with connection.cursor() as cursor:
        present = set(connection.introspection.table_names(cursor))
    return all(table in present for table in FIRST_TABLES)


def install(connection: Any) -> list[Trigger]:
    """Create whatever of the rule is missing or altered (idempotent); returns the triggers it (re)created.

    Only what is wrong is touched, so a routine `migrate` takes no lock on a healthy audit table.
    """
    if connection.vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"no append-only triggers for {connection.vendor}")
    statements: list[str] = []
    if connection.vendor == "postgresql":
        # Cheap and lock-free on the tables: keeps the function bodies current.
        statements.extend(_pg_function_sql(name) for name in _FUNCTIONS)
    found = problems(connection)
    broken = list(found)
    if connection.vendor == "postgresql":
        # A partition's row trigger that is missing or altered is repaired by re-creating the table's own,
        # which PostgreSQL clones to every partition; one that is only disabled is enabled where it is.
        renewed = [t for t in broken if not t.cloned]
        for trigger in broken:
            own = Trigger(trigger.table, trigger.operation)
            if trigger.cloned and found[trigger] != "disabled" and own not in renewed:
                renewed.append(own)
        for trigger in renewed + [t for t in broken if t.cloned]:
            statements.extend(_pg_trigger_sql(connection, trigger))
    else:
        for trigger in broken:
            statements.append(f"DROP TRIGGER IF EXISTS {_quote(connection, trigger.name)}")
            statements.append(
                _sqlite_trigger_sql(connection, trigger).replace(
                    "CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1
                )
            )
    _execute(connection, statements)
    return broken


def uninstall(connection: Any) -> None:
    """Drop the rule: for reversing the migration and for the test suite's flush (the product never does)."""
    # A partition's row triggers go with the table's own; its TRUNCATE trigger is its own.
    statements = [
        f"DROP TRIGGER IF EXISTS {_quote(connection, t.name)}"
        + (f" ON {_quote(connection, t.relation)}" if connection.vendor == "postgresql" else "")
        for t in triggers(connection.vendor, all_partitions(connection), present_tables(connection))
        if not t.cloned
    ]
    if connection.vendor == "postgresql":
        statements.extend(f"DROP FUNCTION IF EXISTS {name}()" for name in _FUNCTIONS)
    _execute(connection, statements)
