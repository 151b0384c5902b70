"""Where each table goes on a Citus cluster (deploy/SCALING.md §3.1), as data: the placement of every table
the models make, the statements that place them, and the checks of Citus's documented rules a placement
must meet (foreign keys, unique keys). `manage.py citus_distribute` executes the statements.

Hand-written: Citus places tables with its own functions (create_reference_table, create_distributed_table)
but ships nothing that derives a placement from an application's models, nor a checker of its rules. The
rules come from Citus's documentation, "Creating and Modifying Distributed Objects (DDL)"
(https://docs.citusdata.com/en/stable/develop/reference_ddl.html), sections on constraints and foreign keys:
- a unique or primary key of a distributed table must include the distribution column;
- foreign keys are supported between two local tables, between two reference tables, from a distributed
  table to a reference table, and between two co-located distributed tables when the key includes the
  distribution column of both (referencing column to referenced column); not from a reference table to a
  distributed one. A foreign key between a local table and a reference table makes Citus convert the local
  table into a "Citus local table" (citus.enable_local_reference_table_foreign_keys), which the plan avoids:
  the tables it leaves local (the audit trail, sessions, lockout records) keep plain PostgreSQL semantics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

REFERENCE, DISTRIBUTED, LOCAL = "reference", "distributed", "local"

# The consumer's rows, distributed by consumer and co-located with records_consumer, so that a consumer's
# joins and a refresh chunk's statement stay on one worker (a shard and its co-located shards).
ANCHOR = "records_consumer"
BY_CONSUMER = {
    "records_consumer": "id",
    "records_account": "consumer_id",
    "records_transaction": "consumer_id",
    "records_segmentmembership": "consumer_id",
    "scoring_creditscore": "consumer_id",
}
# Distributed by a key of their own, each in a co-location group of its own (colocate_with 'none'): the
# key tables by their identifier (a lookup by identifier reads one shard and their primary keys stay
# globally unique), and the refresh chunks' lists of consumers by chunk.
BY_IDENTIFIER = {
    "records_consumerpublicid": "public_id",
    "records_consumerresidentid": "resident_id_hmac",
    "records_consumerphone": "phone_hmac",
    # The consumers each refresh chunk names (one id per consumer per run): spread over the workers by
    # chunk, read and deleted by chunk id, rather than copied to every worker with the chunk rows.
    "scoring_chunkconsumers": "chunk_id",
}
# Left on the coordinator as plain PostgreSQL tables: the audit trail (one sealer, one chain, its triggers
# and monthly partitions; events and subjects committed together), sessions and login-lockout records
# (written on every login, read by the coordinator only). None has a foreign key to a table Citus holds.
LOCAL_PREFIXES = ("audit_", "axes_")
LOCAL_TABLES = frozenset({"django_session"})


@dataclass(frozen=True)
class Placement:
    table: str
    kind: str  # REFERENCE, DISTRIBUTED or LOCAL
    column: str | None = None  # the distribution column (DISTRIBUTED)
    colocate_with: str | None = None  # a table, or "none" for a group of its own (DISTRIBUTED)

    def statement(self) -> str | None:
        """The SQL that places the table (None: it stays local)."""
        if self.kind == REFERENCE:
            return f"SELECT create_reference_table('{self.table}')"
        if self.kind == DISTRIBUTED:
            return (
                f"SELECT create_distributed_table('{self.table}', '{self.column}', "
                f"colocate_with => '{self.colocate_with}')"
            )
        return None


@dataclass(frozen=True)
class ForeignKey:
    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class UniqueKey:
    table: str
    columns: tuple[str, ...]
    name: str = ""


def placement_of(table: str) -> Placement:
    if table in BY_CONSUMER:
        colocate = "none" if table == ANCHOR else ANCHOR
        return Placement(table, DISTRIBUTED, BY_CONSUMER[table], colocate)
    if table in BY_IDENTIFIER:
        return Placement(table, DISTRIBUTED, BY_IDENTIFIER[table], "none")
    if table in LOCAL_TABLES or table.startswith(LOCAL_PREFIXES):
        return Placement(table, LOCAL)
    # Everything else is small and read beside the consumer's rows or by every request: copied to every
    # worker (users, organisations, grants and their guardian rows, segments, merchants, scorecards, runs).
    return Placement(table, REFERENCE)


def placement_plan(tables: Iterable[str]) -> list[Placement]:
    """Every table once, in the order they are placed: reference tables, then the consumer's co-located
    tables (records_consumer first: the others join its co-location group), then the key tables, then the
    local ones (nothing to run). Foreign keys are dropped before and re-created after (see the command)."""
    order = {REFERENCE: 0, DISTRIBUTED: 1, LOCAL: 3}
    placed = [placement_of(table) for table in sorted(set(tables))]

    def rank(placement: Placement) -> tuple[int, int, str]:
        if placement.kind != DISTRIBUTED:
            return order[placement.kind], 0, placement.table
        if placement.table == ANCHOR:
            return 1, 0, placement.table
        return (1, 1, placement.table) if placement.table in BY_CONSUMER else (2, 0, placement.table)

    return sorted(placed, key=rank)


def model_tables() -> list[str]:
    """The tables the installed models make (many-to-many tables included)."""
    from django.apps import apps

    return sorted(
        {
            model._meta.db_table
            for model in apps.get_models(include_auto_created=True)
            if model._meta.managed and not model._meta.proxy
        }
    )


def foreign_key_problems(plan: Iterable[Placement], foreign_keys: Iterable[ForeignKey]) -> list[str]:
    """Each foreign key that Citus would refuse (or that would turn a local table into a Citus local table)
    under this placement, with the reason; empty when all are allowed."""
    by_table = {placement.table: placement for placement in plan}
    problems = []
    for key in foreign_keys:
        source, target = by_table[key.table], by_table[key.referenced]
        label = f"{key.table}{list(key.columns)} → {key.referenced}{list(key.referenced_columns)}"
        if source.kind == LOCAL and target.kind == LOCAL:
            continue
        if source.kind == LOCAL or target.kind == LOCAL:
            problems.append(f"{label}: between a local table and a Citus table")
        elif target.kind == REFERENCE:
            continue  # reference → reference, distributed → reference
        elif source.kind == REFERENCE:
            problems.append(f"{label}: from a reference table to a distributed table")
        elif not _colocated(source, target):
            problems.append(f"{label}: between distributed tables that are not co-located")
        elif (source.column, target.column) not in set(zip(key.columns, key.referenced_columns, strict=True)):
            problems.append(f"{label}: does not pair the two distribution columns")
    return problems


def _colocated(first: Placement, second: Placement) -> bool:
    def group(placement: Placement) -> str:
        return placement.table if placement.colocate_with == "none" else str(placement.colocate_with)

    return group(first) == group(second)


def unique_key_problems(plan: Iterable[Placement], keys: Iterable[UniqueKey]) -> list[str]:
    """Each primary or unique key of a distributed table that lacks its distribution column."""
    by_table = {placement.table: placement for placement in plan}
    return [
        f"{key.table}{list(key.columns)}: lacks the distribution column {by_table[key.table].column}"
        for key in keys
        if by_table[key.table].kind == DISTRIBUTED and by_table[key.table].column not in key.columns
    ]


# --- The consumer's shards: what the refresh's chunk planner aligns its chunks to (SCALING.md §3.4) ---------
# Citus hashes a distribution value with the hash function of its type's default hash operator class
# (worker_hash in src/backend/distributed/operations/isolate_shards.c: "figure out hash function from the
# data type"): for the bigint consumer ids that is PostgreSQL's own hashint8, which plain PostgreSQL has too
# (the tests use it).
# A shard holds the rows whose hash lies in [shardminvalue, shardmaxvalue] of pg_dist_shard.
HASH_FUNCTION = "worker_hash"
HASH_MIN, HASH_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class ShardRange:
    shard_id: int
    min_hash: int
    max_hash: int


def consumer_shards(cursor) -> list[ShardRange]:
    """The shards of records_consumer (and so of every table co-located with it) in hash order, read from
    Citus's metadata on the coordinator; refused unless they cover the hash space without gap or overlap,
    and on a database without Citus (PORTAL_CITUS set against plain PostgreSQL)."""
    cursor.execute("SELECT to_regclass('pg_catalog.pg_dist_shard') IS NOT NULL")
    if not cursor.fetchone()[0]:
        raise ValueError("PORTAL_CITUS is set but this database has no Citus metadata (pg_dist_shard)")
    cursor.execute(
        "SELECT shardid, shardminvalue::int, shardmaxvalue::int FROM pg_dist_shard "
        "WHERE logicalrelid = %s::regclass ORDER BY 2",
        [ANCHOR],
    )
    return checked_shards([ShardRange(*row) for row in cursor.fetchall()])


def checked_shards(shards: list[ShardRange]) -> list[ShardRange]:
    """The shards if they tile the int32 hash space in order (a rebalanced or split group still does);
    ValueError otherwise, since a chunk planned from them could then miss consumers."""
    if not shards:
        raise ValueError(f"{ANCHOR} has no shards: is it distributed (manage.py citus_distribute)?")
    expected = HASH_MIN
    for shard in shards:
        if shard.min_hash != expected or shard.max_hash < shard.min_hash:
            raise ValueError(f"shard {shard.shard_id} starts at {shard.min_hash}, not {expected}")
        expected = shard.max_hash + 1
    if expected != HASH_MAX + 1:
        raise ValueError(f"the last shard ends at {expected - 1}, not {HASH_MAX}")
    return shards


def uniform_shards(count: int, first_shard_id: int = 102008) -> list[ShardRange]:
    """The ranges create_distributed_table gives `count` new shards: the 2^32 hash values in equal parts
    of 2^32 // count, the last one running to the end (Citus: CreateShardsWithRoundRobinPolicy in
    src/backend/distributed/operations/create_shards.c, `hashTokenIncrement = HASH_TOKEN_COUNT /
    shardCount`). For tests and estimates; the planner reads the real ones from pg_dist_shard."""
    step = 2**32 // count
    return [
        ShardRange(
            first_shard_id + index,
            HASH_MIN + index * step,
            HASH_MAX if index == count - 1 else HASH_MIN + index * step + step - 1,
        )
        for index in range(count)
    ]


def shard_chunks(shard_ids: Iterable[tuple[int, Iterable[int]]], size: int) -> list[tuple[int, list[int]]]:
    """(shard id, consumer ids) per chunk: each shard's ids in order, cut into pieces of at most `size`.
    Every chunk then names consumers of one shard only, so its statements prune to that shard."""
    chunks = []
    for shard_id, ids in shard_ids:
        ordered = sorted(ids)
        chunks += [(shard_id, ordered[i : i + size]) for i in range(0, len(ordered), size)]
    return chunks
