"""manage.py citus_distribute: place every table on a Citus cluster as deploy/SCALING.md §3.1 says.

Run on the coordinator of a migrated database whose `citus` extension is created and whose workers are
added (citus_add_node). Idempotent: tables already placed are skipped (pg_dist_partition), and a placement
that differs from the plan stops it. Foreign keys between the tables it places are dropped first and
re-created last, so that placing one table never drags its neighbours into Citus's metadata as "Citus
local tables"; their definitions are kept in a table of their own until re-created, so an interrupted run
re-creates them on the next. Elsewhere (SQLite, PostgreSQL without Citus, no workers) it refuses, exit 1.
`--plan` prints the statements without touching the database.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from portal import citus

KEPT_KEYS = "citus_distribute_foreign_key"


class Command(BaseCommand):
    help = "Place every table on the Citus cluster (reference, distributed and co-located, or local)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--plan", action="store_true", help="Print the statements only.")
        parser.add_argument(
            "--shard-count",
            type=int,
            default=None,
            help="citus.shard_count for the consumer's co-location group (deploy/SCALING.md §2: 512).",
        )

    def handle(self, *args: Any, plan: bool, shard_count: int | None, **options: Any) -> None:
        placements = citus.placement_plan(citus.model_tables())
        if plan:
            for placement in placements:
                self.stdout.write(placement.statement() or f"-- {placement.table}: stays local")
            return
        self._refuse_unless_citus()
        with connection.cursor() as cursor:
            tables = _catalog_tables(cursor)
            foreign_keys = _catalog_foreign_keys(cursor)
            unique_keys = _catalog_unique_keys(cursor)
            placed = _placed(cursor)
        known = {placement.table for placement in placements}
        placements += [citus.Placement(table, citus.LOCAL) for table in sorted(tables - known)]
        missing = known - tables
        if missing:
            raise CommandError(f"tables of the models are missing from the database: {sorted(missing)}")
        problems = citus.foreign_key_problems(placements, foreign_keys) + citus.unique_key_problems(
            placements, unique_keys
        )
        if problems:
            raise CommandError("Citus would refuse this schema:\n" + "\n".join(problems))
        for placement in placements:
            have = placed.get(placement.table)
            if have is not None and have != (placement.kind, placement.column):
                raise CommandError(
                    f"{placement.table} is already a {have[0]} table "
                    f"({have[1] or 'no'} distribution column); "
                    f"the plan says {placement.kind} ({placement.column or 'no'} distribution column). "
                    f"Undo it first (SELECT undistribute_table('{placement.table}'))."
                )
        todo = [p for p in placements if p.kind != citus.LOCAL and p.table not in placed]
        self._keep_foreign_keys(foreign_keys, {p.table for p in todo})
        if shard_count is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('citus.shard_count', %s, false)", [str(shard_count)])
        for placement in placements:
            statement = placement.statement()
            if statement is None:
                self.stdout.write(f"local        {placement.table}")
            elif placement.table in placed:
                self.stdout.write(f"already      {placement.table}")
            else:
                with connection.cursor() as cursor:
                    cursor.execute(statement)
                self.stdout.write(f"placed       {statement}")
        self._restore_foreign_keys()
        self.stdout.write(self.style.SUCCESS(f"{len(todo)} table(s) placed, {len(placed)} already placed."))

    def _refuse_unless_citus(self) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"citus_distribute needs PostgreSQL with Citus; this database is {connection.vendor}."
            )
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError("the database is not fully migrated: run `manage.py migrate` first.")
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
            if cursor.fetchone() is None:
                raise CommandError(
                    "the citus extension is not installed in this database: this is plain PostgreSQL. "
                    "Run it on a Citus coordinator (CREATE EXTENSION citus; SELECT citus_add_node(...))."
                )
            cursor.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'")
            if cursor.fetchone()[0] == 0:
                raise CommandError("the coordinator has no workers: add them with citus_add_node first.")

    def _keep_foreign_keys(self, foreign_keys: list[citus.ForeignKey], todo: set[str]) -> None:
        """Save, then drop, the foreign keys touching a table still to be placed."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {KEPT_KEYS} (table_name text, name text, definition text, "
                "PRIMARY KEY (table_name, name))"
            )
            for key in foreign_keys:
                if key.table not in todo and key.referenced not in todo:
                    continue
                cursor.execute(
                    f"INSERT INTO {KEPT_KEYS} SELECT %s, %s, pg_get_constraintdef(oid) FROM pg_constraint "  # noqa: S608
                    "WHERE conrelid = %s::regclass AND conname = %s ON CONFLICT DO NOTHING",
                    [key.table, key.name, key.table, key.name],
                )
                cursor.execute(f'ALTER TABLE "{key.table}" DROP CONSTRAINT IF EXISTS "{key.name}"')
                self.stdout.write(f"dropped      {key.table}.{key.name} (re-created after placement)")

    def _restore_foreign_keys(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT table_name, name, definition FROM {KEPT_KEYS} ORDER BY 1, 2")  # noqa: S608
            for table, name, definition in cursor.fetchall():
                cursor.execute(
                    "SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
                    [table, name],
                )
                if cursor.fetchone() is None:
                    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
                    self.stdout.write(f"re-created   {table}.{name}: {definition}")
            cursor.execute(f"DROP TABLE {KEPT_KEYS}")


# --- The catalog ------------------------------------------------------------------------------------------
def _catalog_tables(cursor) -> set[str]:
    """Tables of the current schema, partitions excepted (Citus places them with their parent)."""
    cursor.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> %s",
        [KEPT_KEYS],
    )
    return {row[0] for row in cursor.fetchall()}


def _columns(cursor, sql: str) -> list[tuple]:
    cursor.execute(sql)
    return cursor.fetchall()


def _catalog_foreign_keys(cursor) -> list[citus.ForeignKey]:
    """Foreign keys of the schema's tables (a partition's copies of its parent's excepted). Those an
    interrupted run dropped are not among them: they were checked by that run and are re-created from
    citus_distribute_foreign_key."""
    rows = _columns(
        cursor,
        "SELECT c.conrelid::regclass::text, c.conname, c.confrelid::regclass::text, "
        "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), "
        "ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "WHERE c.contype = 'f' AND c.conparentid = 0 AND NOT t.relispartition "
        "AND t.relnamespace = current_schema()::regnamespace",
    )
    return [
        citus.ForeignKey(table, tuple(columns), referenced, tuple(referenced_columns), name)
        for table, name, referenced, columns, referenced_columns in rows
    ]


def _catalog_unique_keys(cursor) -> list[citus.UniqueKey]:
    rows = _columns(
        cursor,
        "SELECT c.conrelid::regclass::text, c.conname, ARRAY(SELECT a.attname FROM pg_attribute a "
        "WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "WHERE c.contype IN ('p', 'u', 'x') AND NOT t.relispartition "
        "AND t.relnamespace = current_schema()::regnamespace",
    )
    return [citus.UniqueKey(table, tuple(cols), name) for table, name, cols in rows]


def _placed(cursor) -> dict[str, tuple[str, str | None]]:
    """Tables Citus already holds: (kind, distribution column). Hash-distributed tables have partmethod
    'h'; reference tables 'n' with replication model 't'; a Citus local table (what a foreign key to a
    reference table turns a local table into) 'n' with 's', which the plan never wants."""
    rows = _columns(
        cursor,
        "SELECT logicalrelid::regclass::text, CASE WHEN partmethod = 'h' THEN 'distributed' "
        "WHEN repmodel = 't' THEN 'reference' ELSE 'citus local' END, "
        "CASE WHEN partmethod = 'h' THEN column_to_column_name(logicalrelid, partkey) END "
        "FROM pg_dist_partition",
    )
    return {table: (kind, column) for table, kind, column in rows}
