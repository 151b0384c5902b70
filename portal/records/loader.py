"""Bulk loading of synthetic consumers: COPY on PostgreSQL, batched INSERTs on SQLite.

Consumers are loaded in chunks, each chunk in one transaction, so an interrupted load leaves whole chunks
behind and the next run with the same arguments skips them. On PostgreSQL a second process generates the
next chunk while the database ingests the current one.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

from django.db import connection, transaction

from portal.records import identifiers, rows, synthetic
from portal.records.keys import KEY_TABLES, consumer_keys_sync
from portal.records.models import (
    Account,
    Consumer,
    ConsumerPublicId,
    Merchant,
    Segment,
    SegmentMembership,
    Transaction,
)
from portal.records.rows import ACCOUNT_SLOTS, LoadPlan

DEFAULT_CHUNK = 2_000


class LoadError(Exception):
    """A load that cannot go ahead; the message says why, and nothing was written."""


@dataclass
class LoadResult:
    consumers: int = 0
    accounts: int = 0
    transactions: int = 0
    memberships: int = 0
    skipped_chunks: int = 0

    @property
    def rows(self) -> int:
        return self.consumers + self.accounts + self.transactions + self.memberships


def _columns(model, *names: str) -> list[str]:
    return [model._meta.get_field(name).column for name in names]


# (table, columns) in the order of rows.Tables.
TABLES = tuple(
    (model._meta.db_table, _columns(model, *fields))
    for model, fields in (
        (Consumer, rows.CONSUMER_FIELDS),
        (Account, rows.ACCOUNT_FIELDS),
        (Transaction, rows.TRANSACTION_FIELDS),
        (SegmentMembership, rows.MEMBERSHIP_FIELDS),
    )
)


def ensure_reference_data() -> tuple[tuple[int, ...], dict[str, int]]:
    """Create the fixed merchants and the segments if missing; return their ids."""
    merchant_rows = synthetic.merchants()
    Merchant.objects.bulk_create(
        [Merchant(code=m.code, name=m.name, category=m.category) for m in merchant_rows],
        ignore_conflicts=True,
    )
    by_code = dict(Merchant.objects.values_list("code", "id"))
    for spec in synthetic.SEGMENTS:
        Segment.objects.get_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "name_zh": spec.name_zh,
                "kind": spec.kind,
                "description": spec.description,
            },
        )
    segment_ids = dict(
        Segment.objects.filter(slug__in=[s.slug for s in synthetic.SEGMENTS]).values_list("slug", "id")
    )
    return tuple(by_code[m.code] for m in merchant_rows), segment_ids


def _reserve_ids(model, count: int) -> int:
    """Take `count` consecutive ids from the table's id sequence; return the first."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # EXCLUSIVE blocks concurrent inserts (which would draw from the sequence) for this instant only.
            cursor.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(
                "SELECT setval(%s, GREATEST(nextval(%s), (SELECT coalesce(max(id), 0) + 1 FROM "  # noqa: S608
                f'"{table}")) + %s - 1)',  # the table name comes from the model's _meta
                [sequence, sequence, count],
            )
            (last,) = cursor.fetchone()
            return last - count + 1
        cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')  # noqa: S608 - table name from _meta
        (highest,) = cursor.fetchone()
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        found = cursor.fetchone()
        first = max(highest, found[0] if found else 0) + 1
        if found:
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [first + count - 1, table])
        else:
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, first + count - 1]
            )
        return first


def _chunks(start: int, count: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(start, start + count, size):
        yield first, min(size, start + count - first)


def _chunk_present(seed: int, first: int, count: int, end: date) -> bool:
    """Whether an earlier run loaded this chunk (chunks are atomic: its first and last consumer tell)."""
    ids = {synthetic.generate_consumer(seed, i, end).public_id for i in (first, first + count - 1)}
    # Through the key table: on Citus the shards of these two public ids only.
    found = ConsumerPublicId.objects.filter(public_id__in=ids).count()
    if 0 < found < len(ids):
        raise LoadError(
            f"consumers {first}..{first + count - 1} of seed {seed} are partly loaded: "
            "re-run with the chunk size of the earlier load"
        )
    return found == len(ids)


def load(
    *,
    seed: int,
    consumers: int,
    end: date,
    start: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[LoadResult, int], None] | None = None,
    workers: int | None = None,
) -> LoadResult:
    """Load consumers start..start+consumers-1 of world `seed`. Chunks already present are skipped."""
    if consumers < 1:
        raise LoadError("the number of consumers must be at least 1")
    if chunk_size < 1:
        raise LoadError("the chunk size must be at least 1")
    if start < 0 or start + consumers > synthetic.IDENTITY_SPACE:
        raise LoadError(f"consumer indexes must lie in 0..{synthetic.IDENTITY_SPACE - 1}")

    with transaction.atomic():
        merchant_ids, segment_ids = ensure_reference_data()
    pending = []
    result = LoadResult()
    for first, count in _chunks(start, consumers, chunk_size):
        if _chunk_present(seed, first, count, end):
            result.skipped_chunks += 1
        else:
            pending.append((first, count))
    if not pending:
        return result
    with transaction.atomic():
        consumer_base = _reserve_ids(Consumer, consumers)
        account_base = _reserve_ids(Account, consumers * ACCOUNT_SLOTS)
    plan = LoadPlan(
        seed,
        start,
        consumers,
        end,
        consumer_base,
        account_base,
        merchant_ids,
        segment_ids,
        identifiers.keyring(),
    )

    if connection.vendor == "postgresql":
        _load_postgresql(plan, pending, result, progress, workers)
    else:
        _load_sqlite(plan, pending, result, progress)
    return result


def _tally(result: LoadResult, counts: tuple[int, ...]) -> None:
    consumers, accounts, transactions, memberships = counts
    result.consumers += consumers
    result.accounts += accounts
    result.transactions += transactions
    result.memberships += memberships


def _keys_sync(plan: LoadPlan, first: int, count: int) -> None:
    """The chunk's key rows, from the consumers just written (one INSERT … SELECT per key table)."""
    low = plan.consumer_base + first - plan.start
    consumer_keys_sync(id_range=(low, low + count))


def _load_postgresql(plan: LoadPlan, pending, result: LoadResult, progress, workers: int | None) -> None:
    if workers is None:
        # Below a few chunks, starting helper processes costs more than it saves.
        workers = 0 if len(pending) < 3 else max(1, min(4, (os.cpu_count() or 2) - 1))
    jobs = [(plan, first, count) for first, count in pending]
    if workers == 0:
        _copy_all(plan, zip(pending, map(rows.copy_chunk, jobs), strict=True), result, progress)
    else:
        # Helper processes are spawned, not forked: they never inherit this process's database connection.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            _copy_all(plan, zip(pending, pool.imap(rows.copy_chunk, jobs), strict=True), result, progress)
    with connection.cursor() as cursor:
        for table in [table for table, _ in TABLES] + [table for table, _key, _source in KEY_TABLES]:
            cursor.execute(f'ANALYZE "{table}"')


def _copy_all(plan: LoadPlan, chunks, result: LoadResult, progress) -> None:
    for (first, count), (counts, texts) in chunks:
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg2's own cursor, for copy_expert
            for (table, columns), text in zip(TABLES, texts, strict=True):
                if text:
                    raw.copy_expert(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN', io.StringIO(text))
            _keys_sync(plan, first, count)
        _tally(result, counts)
        if progress:
            progress(result, plan.count)


def _load_sqlite(plan: LoadPlan, pending, result: LoadResult, progress) -> None:
    timestamp = rows.Timestamps(0, "")
    for first, count in pending:
        tables = rows.generate_rows(plan, first, count, timestamp)
        with transaction.atomic(), connection.cursor() as cursor:
            for (table, columns), table_rows in zip(TABLES, tables, strict=True):
                if table_rows:
                    marks = ", ".join(["%s"] * len(columns))
                    cursor.executemany(
                        f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})',  # noqa: S608
                        table_rows,
                    )
            _keys_sync(plan, first, count)
        _tally(result, tuple(len(table_rows) for table_rows in tables))
        if progress:
            progress(result, plan.count)
