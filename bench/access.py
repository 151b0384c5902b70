"""What permission checks and the audit write cost, and whether latency grows with scope or depth (SPEC §9).

Measured in-process: Django's test client drives the full WSGI handler (middleware, DRF, JSON rendering), with
no network. Against PostgreSQL (DATABASE_URL's server), in a scratch database `portal_bench_access` holding
`--consumers` synthetic consumers (100,000 by default: about 5 million transactions; loaded once, reused).

1. The consumer-transactions list as `regulator`, three ways, on the same path and rows:
   bare (bench/bare_urls.py: no authentication, no policy, no audit), permissions (token, role gate, access
   policy; audit middleware left out), full (everything, with the durable audit write). The benchmark asserts
   that the three bodies are byte-identical. Rounds alternate the order; medians of requests/s are reported.
2. First-page latency of the consumer and transaction lists for a regulator whose grant covers 1,000
   consumers, and one whose grant covers every consumer.
3. Latency of the cross-scope transaction list at row 1,000,000 (a cursor positioned there) vs page 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/access.py [--consumers N]
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from _common import client_for, median, open_request_world, request_bench_arguments


def main() -> None:
    args = request_bench_arguments(__doc__)
    regulator, path = open_request_world(args.consumers)

    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from portal.access import services
    from portal.access.models import AccessGrant
    from portal.accounts.models import Organisation, User
    from portal.records.models import Consumer, Segment, Transaction

    # Two bench segments: the first 1,000 consumers, and everyone.
    small, _ = Segment.objects.get_or_create(
        slug="bench-1k", defaults={"name": "Bench 1k", "name_zh": "基准1k", "kind": "case_list"}
    )
    everyone, _ = Segment.objects.get_or_create(
        slug="bench-all", defaults={"name": "Bench all", "name_zh": "基准全部", "kind": "region"}
    )
    with connection.cursor() as cursor:
        for segment, limit in ((small, 1000), (everyone, None)):
            cursor.execute("DELETE FROM records_segmentmembership WHERE segment_id = %s", [segment.pk])
            cursor.execute(
                "INSERT INTO records_segmentmembership (segment_id, consumer_id) "
                "SELECT %s, id FROM records_consumer ORDER BY id" + (" LIMIT %s" if limit else ""),
                [segment.pk, limit] if limit else [segment.pk],
            )
        cursor.execute("ANALYZE records_segmentmembership")
    operator = User.objects.get(username="compliance")
    regulators = {}
    for label, segment in (("1k", small), ("all", everyone)):
        user, _ = User.objects.get_or_create(
            username=f"bench-{label}",
            defaults={"role": "regulator", "organisation": Organisation.objects.get(short_name="nfra")},
        )
        live = AccessGrant.objects.filter(
            grantee_user=user,
            segment=segment,
            status="approved",
            valid_until__gt=timezone.now() + timedelta(hours=1),
        )
        if not live.exists():
            grant = services.grant_request(
                requester=user,
                segment=segment,
                permissions=["view_records"],
                purpose="Benchmark.",
                legal_basis="Benchmark.",
                case_reference=f"BENCH-{label}",
                valid_until=timezone.now() + timedelta(days=1),
                for_requester_only=True,
            )
            services.grant_approve(grant=grant, approver=operator)
        regulators[label] = user

    variants = {
        "bare": client_for(None, audit=False, bare=True),
        "permissions": client_for(regulator, audit=False, bare=False),
        "full": client_for(regulator, audit=True, bare=False),
    }
    bodies = {name: client.get(path).content for name, client in variants.items()}
    assert bodies["bare"] == bodies["permissions"] == bodies["full"], "bodies differ between variants"
    print(
        f"consumer-transactions list: {len(bodies['full']):,} bytes per response, identical in all variants"
    )

    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else list(reversed(names))
        for name in order:
            client = variants[name]
            started = time.perf_counter()
            for _ in range(args.requests):
                client.get(path)
            rates[name].append(args.requests / (time.perf_counter() - started))
    bare, perms, full = (median(rates[n]) for n in ("bare", "permissions", "full"))
    print(f"  bare        {bare:8.0f} req/s")
    print(
        f"  permissions {perms:8.0f} req/s  ratio to bare {perms / bare:.2f} (permission cost "
        f"{(1 - perms / bare) * 100:.0f}%, target <= 20%)"
    )
    print(
        f"  full        {full:8.0f} req/s  ratio to bare {full / bare:.2f} (target >= 0.5); audit write cost "
        f"{(1 - full / perms) * 100:.0f}% of the permission-checked rate (target <= 20%)"
    )

    def latency(client: Client, url: str, repeat: int = 30) -> float:
        client.get(url)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    small_client = client_for(regulators["1k"], audit=True, bare=False)
    all_client = client_for(regulators["all"], audit=True, bare=False)
    for url in ("/api/v1/consumers/", "/api/v1/transactions/"):
        a, b = latency(small_client, url), latency(all_client, url)
        print(
            f"first page of {url}: 1k in scope {a * 1000:.1f} ms, {Consumer.objects.count():,} in scope "
            f"{b * 1000:.1f} ms, ratio {b / a:.2f} (target <= 1.5)"
        )

    depth = min(1_000_000, Transaction.objects.count() - 60)
    row = Transaction.objects.order_by("-occurred_at", "-id").values("occurred_at", "id")[depth]
    from portal.api import pagination

    cursor = pagination._encode(
        {
            "v": pagination.CURSOR_VERSION,
            "o": ["-occurred_at", "-id"],
            "f": True,
            "k": [{"t": row["occurred_at"].isoformat()}, row["id"]],
        }
    )
    first = latency(all_client, "/api/v1/transactions/")
    deep = latency(all_client, f"/api/v1/transactions/?cursor={cursor}")
    print(
        f"cross-scope transactions: page 1 {first * 1000:.1f} ms, at row {depth:,} {deep * 1000:.1f} ms, "
        f"ratio {deep / first:.2f} (target <= 2)"
    )


if __name__ == "__main__":
    main()
