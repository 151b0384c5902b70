"""The *limit* baselines of bench/access.py: what the database and Python need for a page, with no framework.

Each is a plain function over a raw DB-API cursor: one hand-written SQL for the same rows in the same order,
the same field formatting, a JSON encoder. They exist only here (in the product they would be a second path to
consumer data); the benchmark asserts that they answer the product's bytes.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson

from portal.api import pagination

CONSUMER_TRANSACTIONS_SQL = """
SELECT c.public_id, t.occurred_at, t.kind, t.amount, a.product, m.name, m.category, t.channel, t.due_date,
       t.days_late, t.id
FROM records_transaction t
JOIN records_consumer c ON c.id = t.consumer_id
JOIN records_account a ON a.id = t.account_id
LEFT JOIN records_merchant m ON m.id = t.merchant_id
WHERE t.consumer_id = (SELECT id FROM records_consumer WHERE public_id = %s)
ORDER BY t.occurred_at DESC, t.id DESC
LIMIT %s
"""


SHANGHAI = ZoneInfo("Asia/Shanghai")


def consumer_transactions(cursor, url: str, public_id: str, size: int = 50) -> bytes:
    """The first page of a consumer's transactions, as the API's JSON body (url: the page's absolute URL)."""
    cursor.execute(CONSUMER_TRANSACTIONS_SQL, [public_id, size + 1])
    rows = cursor.fetchall()
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
        token = pagination._encode(
            {
                "v": pagination.CURSOR_VERSION,
                "o": ["-occurred_at", "-id"],
                "f": True,
                "k": [{"t": last[1].isoformat()}, last[10]],  # the session's zone: UTC
            }
        )
        following = f"{url}?cursor={token}"
    return orjson.dumps({"next": following, "previous": None, "results": results})
