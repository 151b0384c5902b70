"""The consumer key tables (public id, resident ID hash, phone hash → consumer id), kept in step with
records_consumer, set-based: for a set of consumers, their key rows are deleted and re-inserted from the
consumer rows in three statements each way, in the caller's transaction.

Written by Consumer.save, the loader (per chunk, by id range), identifier key rotation (per batch) and the
migration that made the tables. On Citus the key tables are distributed by the identifier and
records_consumer by id: the INSERT … SELECT between them is repartitioned by Citus; the DELETE by consumer id
reaches every shard of the key table, which is why a write names its consumers once per batch, never once
per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from portal.records.models import Consumer, ConsumerPhone, ConsumerPublicId, ConsumerResidentId

CONSUMER_TABLE = Consumer._meta.db_table
# (key table, its identifier column, the consumer column it copies), from the models' _meta.
KEY_TABLES: tuple[tuple[str, str, str], ...] = (
    (ConsumerPublicId._meta.db_table, "public_id", "public_id"),
    (ConsumerResidentId._meta.db_table, "resident_id_hmac", "resident_id_hmac"),
    (ConsumerPhone._meta.db_table, "phone_hmac", "phone_hmac"),
)


def _condition(column: str, consumer_ids: Sequence[int] | None, id_range: tuple[int, int] | None):
    if id_range is not None:
        return f"{column} >= %s AND {column} < %s", [id_range[0], id_range[1]]
    ids = sorted(set(consumer_ids or ()))
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", ids


def consumer_keys_sync(
    *, consumer_ids: Sequence[int] | None = None, id_range: tuple[int, int] | None = None
) -> None:
    """Re-derive the key rows of these consumers (ids, or ids in [first, end)) from records_consumer.

    A duplicate public id or resident ID hash raises IntegrityError, on the key table's primary key."""
    if id_range is None and not consumer_ids:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for table, _key, _source in KEY_TABLES:
            where, params = _condition("consumer_id", consumer_ids, id_range)
            cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608 - names from _meta
        for table, key, source in KEY_TABLES:
            where, params = _condition("id", consumer_ids, id_range)
            cursor.execute(
                f"INSERT INTO {table} ({key}, consumer_id) "  # noqa: S608 - names from _meta
                f"SELECT {source}, id FROM {CONSUMER_TABLE} WHERE {where} AND {source} IS NOT NULL",
                params,
            )


def consumer_keys_fill() -> None:
    """All consumers' key rows (the migration that made the tables; an empty table is a no-op)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {CONSUMER_TABLE}")  # noqa: S608
        low, high = cursor.fetchone()
    if low is not None:
        consumer_keys_sync(id_range=(low, high + 1))
