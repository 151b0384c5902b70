"""Segment summaries and the audit event list against what the machine can do (SPEC §9: >= 0.35x the limit).

Measured in-process: Django's test client drives the full WSGI handler (middleware, DRF, JSON rendering), with
no network. Against PostgreSQL (DATABASE_URL's server), on the request benchmarks' world (bench/access.py's
scratch database, `--consumers` synthetic consumers; its segments bench-1k and bench-all and their users must
exist: run bench/access.py first).

Each endpoint two ways, on the same path and rows:
  limit: one hand-written SQL and orjson, called as a plain function (no framework, no middleware, no checks,
         no audit write); the benchmark asserts that it answers the product's bytes;
  full:  the product endpoint with a bearer token of a persona allowed to call it (SPEC §6), through the
         whole middleware stack, the access policy and the durable audit write.
Endpoints: `/api/v1/segments/{id}/summary/` as bench-1k (its 1,000-consumer segment) and as bench-all (every
consumer), and `/api/v1/audit/events/` (the first page, and filtered by a consumer) as `auditor`. Rounds
alternate the order; medians of requests/s are reported, and full ÷ limit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/summaries.py [--consumers N]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from _common import ROOT, alternating, client_for, median, open_request_world, rates

SHANGHAI = ZoneInfo("Asia/Shanghai")

# One statement for every figure of the summary: members, score buckets, 30+ days delinquent consumers over
# the window (repayments due since its start, time-bounded as the product bounds them) and monthly volume.
SUMMARY_SQL = """
SELECT 'c', NULL, count(*), NULL::numeric, NULL::bigint
FROM records_segmentmembership m WHERE m.segment_id = %(segment)s
UNION ALL
SELECT 'h', ((c.current_score - 300) / 50)::text, count(*), NULL, NULL
FROM records_consumer c
JOIN records_segmentmembership m ON m.consumer_id = c.id AND m.segment_id = %(segment)s
WHERE c.current_score IS NOT NULL GROUP BY 2
UNION ALL
SELECT 'd', NULL, count(DISTINCT t.consumer_id), NULL, NULL
FROM records_transaction t
JOIN records_segmentmembership m ON m.consumer_id = t.consumer_id AND m.segment_id = %(segment)s
WHERE t.kind = 'repayment' AND t.due_date >= %(due)s AND t.occurred_at >= %(early)s AND t.days_late >= 30
UNION ALL
SELECT 'm', to_char(date_trunc('month', t.occurred_at AT TIME ZONE 'Asia/Shanghai'), 'YYYY-MM'), count(*),
       sum(t.amount), count(DISTINCT t.consumer_id)
FROM records_transaction t
JOIN records_segmentmembership m ON m.consumer_id = t.consumer_id AND m.segment_id = %(segment)s
WHERE t.occurred_at >= %(since)s GROUP BY 2
"""


def _small(n: int | None) -> int | None:
    return None if n is None or n < 10 else n


def segment_summary(cursor, segment: tuple[int, str, str, str], now: datetime) -> bytes:
    """The segment summary's JSON body: the figures of SUMMARY_SQL, small cells withheld (SPEC §3) as the
    product withholds them (complementary suppression in the histogram, the delinquency rate only when both
    the delinquent and the others number ten or more)."""
    since = (now - timedelta(days=31 * 12)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    cursor.execute(
        SUMMARY_SQL,
        {"segment": segment[0], "due": since.date(), "early": since - timedelta(days=31), "since": since},
    )
    total = delinquent = 0
    buckets: dict[int, int] = {}
    months = []
    for tag, key, n, amount, consumers in cursor.fetchall():
        if tag == "c":
            total = n
        elif tag == "h":
            buckets[int(key)] = n
        elif tag == "d":
            delinquent = n
        else:
            months.append((key, n, amount, consumers))
    months.sort()
    lows = list(range(300, 850, 50))
    counts = [buckets.get(i, 0) for i in range(len(lows))]
    counts[-1] += buckets.get(len(lows), 0)  # 850 closes the last bucket
    shown = [_small(c) for c in counts]
    hidden = [i for i, c in enumerate(counts) if shown[i] is None and c > 0]
    if _small(total) is not None and len(hidden) == 1:
        candidates = sorted((c, i) for i, c in enumerate(counts) if shown[i] is not None)
        if candidates:
            shown[candidates[0][1]] = None
    rate_shown = _small(delinquent) is not None and _small(total - delinquent) is not None
    body = {
        "segment": {"id": segment[0], "name": segment[1], "name_zh": segment[2], "kind": segment[3]},
        "consumers": _small(total),
        "score_histogram": [
            {"from": low, "to": min(low + 50, 850), "consumers": shown[i]} for i, low in enumerate(lows)
        ],
        "delinquency": {
            "rate": round(delinquent / total, 4) if rate_shown else None,
            "delinquent_consumers": delinquent if rate_shown else None,
            "days_late_at_least": 30,
            "window_months": 12,
        },
        "monthly_volume": [
            {
                "month": month,
                "consumers": _small(consumers),
                "transactions": n if _small(consumers) is not None else None,
                "amount": str(Decimal(amount).quantize(Decimal("0.01"))) if _small(consumers) else None,
                "currency": "CNY",
            }
            for month, n, amount, consumers in months
        ],
        "suppressed_below": 10,
    }
    return orjson.dumps(body)


EVENT_COLUMNS = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_organisation",
    "actor_role",
    "action",
    "outcome",
    "method",
    "path",
    "query",
    "status",
    "request_id",
    "client_ip",
    "user_agent",
    "grant_id",
    "purpose",
    "resource_kind",
    "requested_id",
    "row_count",
    "search_hash",
    "export_sha256",
    "chain_position",
    "sealed_at",
    "hash",
)
# A page of events, newest first, each with its subjects' public ids in order.
EVENTS_SQL = f"""
SELECT {", ".join("e." + c for c in EVENT_COLUMNS)},
       ARRAY(SELECT s.public_id FROM audit_auditsubject s
             WHERE s.event_id = e.id AND s.occurred_at = e.occurred_at ORDER BY s.public_id)
FROM audit_auditevent e
WHERE %(consumer)s::text IS NULL OR EXISTS (
    SELECT 1 FROM audit_auditsubject f
    WHERE f.public_id = %(consumer)s AND f.event_id = e.id AND f.occurred_at = e.occurred_at)
ORDER BY e.occurred_at DESC, e.id DESC
LIMIT %(size)s
"""


def _local(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(SHANGHAI).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def audit_events(cursor, url: str, consumer: str | None = None, size: int = 50) -> bytes:
    """The first page of the audit event list as the API's JSON body (url: the page's absolute URL)."""
    from portal.api import pagination

    cursor.execute(EVENTS_SQL, {"consumer": consumer, "size": size + 1})
    rows = cursor.fetchall()
    more = len(rows) > size
    rows = rows[:size]
    results = []
    for r in rows:
        event = dict(zip(EVENT_COLUMNS, r, strict=False))
        event["query"] = orjson.loads(r[9])  # Django reads jsonb as text and decodes it itself
        event["occurred_at"] = _local(r[1])
        event["sealed_at"] = _local(r[22])
        event["subjects"] = r[24]
        results.append(event)
    following = None
    if more and rows:
        token = pagination._encode(
            {
                "v": pagination.CURSOR_VERSION,
                "o": ["-occurred_at", "-id"],
                "f": True,
                "k": [{"t": rows[-1][1].astimezone(UTC).isoformat()}, rows[-1][0]],
            }
        )
        sep = "&" if "?" in url else "?"
        following = f"{url}{sep}cursor={token}"
    return orjson.dumps({"next": following, "previous": None, "results": results})


def measure(
    label: str, limit: Callable[[], bytes], client: Any, path: str, rounds: int, requests: int
) -> tuple[float, float]:
    """Limit first, then the product (the product's own audit event would otherwise be in the limit's
    answer to the event list): the same bytes. Then alternating rounds; medians of requests/s."""
    expected = limit()
    response = client.get(path)
    assert response.status_code == 200, (label, response.status_code, response.content[:300])
    if response.content != expected:
        for name, body in (("limit", expected), ("full", response.content)):
            (ROOT / "var" / f"bench-{name}.json").write_bytes(body)
        raise AssertionError(f"{label}: the limit and the product answer different bytes (var/bench-*.json)")
    measured = rates(alternating({"limit": limit, "full": lambda: client.get(path)}, rounds, requests))
    lim, full = measured["limit"], measured["full"]
    print(
        f"  {label}: {len(expected):,} bytes; limit {lim:,.1f} req/s, full {full:,.1f} req/s, "
        f"full ÷ limit {full / lim:.2f} (target >= 0.35, moonshot 0.5)"
    )
    return lim, full


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=21_100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--requests",
        type=int,
        default=100,
        help="event-list requests per variant per round (summaries: a tenth; a thirtieth for every consumer)",
    )
    parser.add_argument(
        "--profile",
        choices=["summary-1k", "summary-all", "events", "events-consumer"],
        help="instead of measuring, profile the product endpoint with pyinstrument",
    )
    parser.add_argument("--only", nargs="*", help="measure only these (summary-1k summary-all events ...)")
    args = parser.parse_args()
    open_request_world(args.consumers)  # prints the server's settings, DEBUG and the mode

    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from portal.accounts.models import User
    from portal.records.models import Segment

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"code commit {commit}; DEBUG={settings.DEBUG}; {args.rounds} alternating rounds, medians")
    connection.ensure_connection()
    raw = connection.connection.cursor()
    now = timezone.now()
    auditor = User.objects.get(username="auditor")
    raw.execute("SELECT public_id FROM audit_auditsubject ORDER BY occurred_at DESC LIMIT 1")
    (consumer,) = raw.fetchone()  # a consumer with recorded accesses: the filtered list has rows
    cases = []
    for label in ("1k", "all"):
        segment = Segment.objects.get(slug=f"bench-{label}")
        row = (segment.pk, segment.name, segment.name_zh, segment.kind)
        client = client_for(User.objects.get(username=f"bench-{label}"), audit=True)
        cases.append(
            (
                f"summary-{label}",
                f"segment summary, {segment.memberships.count():,} consumers, as bench-{label}",
                lambda row=row: segment_summary(raw, row, now),
                client,
                f"/api/v1/segments/{segment.pk}/summary/",
                max(3, args.requests // (33 if label == "all" else 10)),
            )
        )
    events_client = client_for(auditor, audit=True)
    base = "http://testserver/api/v1/audit/events/"
    cases.append(
        (
            "events",
            "audit event list, first page, as auditor",
            lambda: audit_events(raw, base),
            events_client,
            "/api/v1/audit/events/",
            args.requests,
        )
    )
    cases.append(
        (
            "events-consumer",
            "audit event list filtered by a consumer, as auditor",
            lambda: audit_events(raw, f"{base}?consumer={consumer}", consumer),
            events_client,
            f"/api/v1/audit/events/?consumer={consumer}",
            args.requests,
        )
    )
    if args.profile:
        from pyinstrument import Profiler

        case = next(c for c in cases if c[0] == args.profile)
        client, path = case[3], case[4]
        client.get(path)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(case[5]):
            client.get(path)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    print("endpoint: bytes per response; requests/s (limit = one SQL + orjson, a plain function)")
    measured = {}
    for name, label, limit, client, path, requests in cases:
        if args.only and name not in args.only:
            continue
        measured[name] = measure(label, limit, client, path, args.rounds, requests)
    # For scale: what an audited API request costs with next to no page of its own (`me`: token,
    # middleware, DRF, the durable audit write), as auditor.
    samples = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.requests):
            events_client.get("/api/v1/me/")
        samples.append((time.perf_counter() - started) / args.requests)
    floor = median(samples)
    print(f"  for scale: GET /api/v1/me/ as auditor (audited, a small body) {floor * 1000:.1f} ms/request")
    for name, (lim, full) in measured.items():
        if name.startswith("events"):
            print(f"    {name}: limit {1000 / lim:.1f} ms, full {1000 / full:.1f} ms per request")


if __name__ == "__main__":
    main()
