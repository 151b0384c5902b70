"""The *limit* baselines of bench/access.py: what the database and Python need for a page, with no framework.

Each is a plain function over a raw DB-API cursor: one hand-written SQL for the same rows in the same order,
the same field formatting, a JSON encoder. They exist only here (in the product they would be a second path to
consumer data); the benchmark asserts that they answer the product's bytes.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson

from portal.api import pagination
from portal.prepared import prepared
from portal.records import identifiers

# The columns of a transaction row, in every transaction list (t: the transaction).
TRANSACTION_COLUMNS = """
SELECT c.public_id, t.occurred_at, t.kind, t.amount, a.product, m.name, m.category, t.channel, t.due_date,
       t.days_late, t.id
FROM records_transaction t
JOIN records_consumer c ON c.id = t.consumer_id
JOIN records_account a ON a.id = t.account_id
LEFT JOIN records_merchant m ON m.id = t.merchant_id
"""

CONSUMER_TRANSACTIONS_SQL = (
    TRANSACTION_COLUMNS
    + """WHERE t.consumer_id = (SELECT id FROM records_consumer WHERE public_id = %s)
ORDER BY t.occurred_at DESC, t.id DESC
LIMIT %s
"""
)

# Every transaction of a member of these segments (the caller's grants), newest first.
TRANSACTIONS_SQL = (
    TRANSACTION_COLUMNS
    + """WHERE EXISTS (SELECT 1 FROM records_segmentmembership s WHERE s.consumer_id = t.consumer_id
                AND s.segment_id = ANY(%s))
ORDER BY t.occurred_at DESC, t.id DESC
LIMIT %s
"""
)

# The members of these segments, by public id.
CONSUMERS_SQL = """
SELECT c.public_id, c.name, c.resident_id_encrypted, c.phone_encrypted, c.province, c.city, c.birth_year,
       c.joined_on, c.status
FROM records_consumer c
WHERE EXISTS (SELECT 1 FROM records_segmentmembership s WHERE s.consumer_id = c.id AND s.segment_id = ANY(%s))
ORDER BY c.public_id
LIMIT %s
"""

# One consumer with their accounts and their memberships of these segments, as JSON arrays.
CONSUMER_SQL = """
SELECT c.public_id, c.name, c.resident_id_encrypted, c.phone_encrypted, c.province, c.city, c.birth_year,
       c.joined_on, c.status, c.current_score,
       (SELECT coalesce(json_agg(json_build_array(a.product, a.credit_limit::text, a.balance::text,
                                                  a.opened_on::text, a.status)
                                 ORDER BY a.opened_on, a.id), '[]')
        FROM records_account a WHERE a.consumer_id = c.id),
       (SELECT coalesce(json_agg(json_build_object('id', g.id, 'name', g.name, 'name_zh', g.name_zh)
                                 ORDER BY g.name), '[]')
        FROM records_segmentmembership s JOIN records_segment g ON g.id = s.segment_id
        WHERE s.consumer_id = c.id AND s.segment_id = ANY(%s))
FROM records_consumer c
WHERE c.id = (SELECT consumer_id FROM records_consumerpublicid WHERE public_id = %s)
"""


SHANGHAI = ZoneInfo("Asia/Shanghai")


def _transaction_page(rows: list, url: str, size: int) -> bytes:
    more = len(rows) > size
    rows = rows[:size]
    results = [
        {
            "consumer": r[0],
            "occurred_at": r[1].astimezone(SHANGHAI).isoformat(),
            "kind": r[2],
            "amount": str(r[3]),
            "currency": "CNY",
            "account_product": r[4],
            "merchant": r[5],
            "merchant_category": r[6],
            "channel": r[7],
            "due_date": r[8].isoformat() if r[8] is not None else None,
            "days_late": r[9],
        }
        for r in rows
    ]
    following = None
    if more and rows:
        last = rows[-1]
        # the session's zone: UTC
        following = _next(url, ["-occurred_at", "-id"], [{"t": last[1].isoformat()}, last[10]])
    return orjson.dumps({"next": following, "previous": None, "results": results})


def _next(url: str, ordering: list[str], key: list) -> str:
    token = pagination._encode({"v": pagination.CURSOR_VERSION, "o": ordering, "f": True, "k": key})
    return f"{url}?cursor={token}"


def _sql(sql: str, prepare: bool) -> str:
    """`sql`, marked to be PREPAREd once on the connection when `prepare` (portal.prepared): the limit for a
    product whose own statements are prepared."""
    return prepared(sql) if prepare else sql


def consumer_transactions(cursor, url: str, public_id: str, size: int = 50, prepare: bool = False) -> bytes:
    """The first page of a consumer's transactions, as the API's JSON body (url: the page's absolute URL)."""
    cursor.execute(_sql(CONSUMER_TRANSACTIONS_SQL, prepare), [public_id, size + 1])
    return _transaction_page(cursor.fetchall(), url, size)


def transactions(cursor, url: str, segment_ids: list[int], size: int = 50, prepare: bool = False) -> bytes:
    """The first page of the transactions of these segments' members (a caller whose grants give full
    records on exactly these segments), as the API's JSON body."""
    cursor.execute(_sql(TRANSACTIONS_SQL, prepare), [segment_ids, size + 1])
    return _transaction_page(cursor.fetchall(), url, size)


def _identity(row: tuple) -> dict:
    keys = identifiers.keyring()
    return {
        "public_id": row[0],
        "name": row[1],
        "resident_id": keys.decrypt(identifiers.RESIDENT_ID, row[2]),
        "phone": keys.decrypt(identifiers.PHONE, row[3]),
        "province": row[4],
        "city": row[5],
        "birth_year": row[6],
        "joined_on": row[7].isoformat(),
        "status": row[8],
        "masked": False,
    }


def consumers(cursor, url: str, segment_ids: list[int], size: int = 50, prepare: bool = False) -> bytes:
    """The first page of the consumer list of a caller with full records on exactly these segments."""
    cursor.execute(_sql(CONSUMERS_SQL, prepare), [segment_ids, size + 1])
    rows = cursor.fetchall()
    more = len(rows) > size
    rows = rows[:size]
    following = _next(url, ["public_id"], [rows[-1][0]]) if more and rows else None
    return orjson.dumps({"next": following, "previous": None, "results": [_identity(r) for r in rows]})


def consumer(cursor, public_id: str, segment_ids: list[int], prepare: bool = False) -> bytes:
    """One consumer's detail for a caller with full records and scores on exactly these segments."""
    cursor.execute(_sql(CONSUMER_SQL, prepare), [segment_ids, public_id])
    row = cursor.fetchone()
    body = _identity(row)
    body["current_score"] = row[9]
    body["accounts"] = [
        {"product": a[0], "credit_limit": a[1], "balance": a[2], "opened_on": a[3], "status": a[4]}
        for a in row[10]
    ]
    body["segments"] = row[11]
    return orjson.dumps(body)
