"""What permission checks and the audit write cost, and whether latency grows with scope or depth (SPEC §9).

Measured in-process: Django's test client drives the full WSGI handler (middleware, DRF, JSON rendering), with
no network. Against PostgreSQL (DATABASE_URL's server), in a scratch database `portal_bench_access` holding
`--consumers` synthetic consumers (100,000 by default: about 5 million transactions; loaded once, reused).

1. The consumer-transactions list as `regulator`, four ways, on the same path and rows:
   limit (bench/limits.py: one hand-written SQL and orjson, called as a plain function: no framework, no
   middleware, no checks), bare (bench/bare_urls.py: the framework with no authentication, no policy, no
   audit), permissions (token, role gate, access policy; audit middleware left out), full (everything, with
   the durable audit write). The benchmark asserts that the four bodies are byte-identical. Rounds alternate
   the order; medians of requests/s are reported, and full ÷ limit (SPEC §9: >= 0.35).
   Then the other record hot paths the same way, limit against full: the consumer list, the consumer detail
   and the cross-scope transaction list (first pages), each limit asserted byte-identical to the product.
2. First-page latency of the consumer and transaction lists for a regulator whose grant covers 1,000
   consumers, and one whose grant covers every consumer.
3. Latency of the cross-scope transaction list at row 1,000,000 (a cursor positioned there) vs page 1.
4. The policy's consumer list against stock guardian on guardian's own ground, as plain functions in one
   process: guardian's get_objects_for_user over one permission row per consumer vs the policy's list path
   over one segment grant, the same consumers in the same order, both shaped by the project's
   ConsumerSerializer; at 1,000 and at every consumer in scope. Per page, and the page query's own time.
5. The web consumer page against the API's consumer detail plus its transactions list, same consumer (medians of
   the rounds' mean latencies).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/access.py [--consumers N]
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from _common import (
    alternating,
    client_for,
    median,
    open_request_world,
    rates,
    request_bench_arguments,
    settle,
)


def main() -> None:
    args = request_bench_arguments(__doc__)
    regulator, path = open_request_world(args.consumers)

    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from portal.access import services
    from portal.access.models import AccessGrant
    from portal.accounts import services as accounts
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
    settle(
        [
            "records_segmentmembership",
            "records_consumer",
            "records_consumerpublicid",
            "records_account",
            "records_transaction",
        ]
    )
    operator = User.objects.get(username="compliance")
    regulators = {}
    for label, segment in (("1k", small), ("all", everyone)):
        user, _ = User.objects.get_or_create(
            username=f"bench-{label}",
            defaults={"role": "regulator", "organisation": Organisation.objects.get(short_name="nfra")},
        )
        if not user.membership_in_force:  # a second person approves an account's membership first
            membership = accounts.membership_request(
                requester=operator,
                user=user,
                role="regulator",
                organisation=user.organisation,
                reason="Benchmark.",
            )
            accounts.membership_approve(
                membership=membership, approver=User.objects.get(username="compliance2"), note="Benchmark."
            )
            user.membership_changed()
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

    from django.db import connection as db
    from limits import consumer_transactions

    public_id = path.split("/")[4]
    url = f"http://testserver{path}"
    db.ensure_connection()
    raw = db.connection.cursor()

    class Limit:
        """A plain function, dressed as a client so that the rounds treat all variants alike."""

        def get(self, _path: str):
            class Body:
                content = consumer_transactions(raw, url, public_id)

            return Body

    variants = {
        "limit": Limit(),
        "bare": client_for(None, audit=False, bare=True),
        "permissions": client_for(regulator, audit=False, bare=False),
        "full": client_for(regulator, audit=True, bare=False),
    }
    bodies = {name: client.get(path).content for name, client in variants.items()}
    assert bodies["limit"] == bodies["bare"] == bodies["permissions"] == bodies["full"], "bodies differ"
    print(
        f"consumer-transactions list: {len(bodies['full']):,} bytes per response, identical in all variants"
    )

    measured = rates(
        alternating(
            {name: lambda c=client: c.get(path) for name, client in variants.items()},
            args.rounds,
            args.requests,
        )
    )
    limit, bare, perms, full = (measured[n] for n in ("limit", "bare", "permissions", "full"))
    print(f"  limit       {limit:8.0f} req/s  (one SQL + orjson, a plain function)")
    print(f"  bare        {bare:8.0f} req/s  ratio to limit {bare / limit:.2f}")
    print(
        f"  permissions {perms:8.0f} req/s  ratio to bare {perms / bare:.2f} (permission cost "
        f"{(1 - perms / bare) * 100:.0f}%, target <= 20%)"
    )
    print(
        f"  full        {full:8.0f} req/s  ratio to bare {full / bare:.2f} (target >= 0.5); audit write cost "
        f"{(1 - full / perms) * 100:.0f}% of the permission-checked rate (target <= 20%)"
    )
    print(f"  full ÷ limit {full / limit:.2f} (target >= 0.35, moonshot 0.5)")
    record_paths(regulator, public_id, raw, args.rounds, args.requests)

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

    guardian_comparison(regulators, args.rounds)
    web_page(regulator, public_id, path, args.rounds)


def record_paths(regulator, public_id: str, raw, rounds: int, requests: int) -> None:
    """The record hot paths, each as limit (bench/limits.py) against full (token, policy, audit): the
    consumer-transactions list again (for one table of all), the consumer list, the consumer detail and the
    transaction list, first pages, bodies asserted byte-identical."""
    import limits

    from portal.access import policy

    scope = policy.scope_for(regulator)
    segment_ids = scope.segment_ids(policy.Permission.VIEW_RECORDS)
    # The limits serve a caller with full records (and scores) on exactly these segments: so is `regulator`.
    assert not scope.consumers and segment_ids == scope.segment_ids(policy.RECORDS), "scope not as assumed"
    assert segment_ids == scope.segment_ids(policy.Permission.VIEW_SCORES), "scope not as assumed"
    base = "http://testserver"
    paths = {
        "consumer-transactions list": (
            f"/api/v1/consumers/{public_id}/transactions/",
            lambda url, prepare: limits.consumer_transactions(raw, url, public_id, prepare=prepare),
        ),
        "consumer list": (
            "/api/v1/consumers/",
            lambda url, prepare: limits.consumers(raw, url, segment_ids, prepare=prepare),
        ),
        "consumer detail": (
            f"/api/v1/consumers/{public_id}/",
            lambda url, prepare: limits.consumer(raw, public_id, segment_ids, prepare=prepare),
        ),
        "transaction list": (
            "/api/v1/transactions/",
            lambda url, prepare: limits.transactions(raw, url, segment_ids, prepare=prepare),
        ),
    }
    full = client_for(regulator, audit=True, bare=False)
    print(
        "record hot paths, limit (one SQL + orjson, a plain function; planned on every call, and PREPAREd "
        "once) vs full (token, policy, audit):"
    )
    for label, (path, function) in paths.items():
        url = base + path
        served = full.get(path)
        assert served.status_code == 200, f"{label}: {served.status_code}"
        assert served.content == function(url, False) == function(url, True), f"{label}: bodies differ"
        calls = {
            "limit": lambda url=url, function=function: function(url, False),
            "prepared": lambda url=url, function=function: function(url, True),
            "full": lambda path=path: full.get(path),
        }
        measured = rates(alternating(calls, rounds, requests))
        lim, pre, ful = measured["limit"], measured["prepared"], measured["full"]
        print(
            f"  {label:27} limit {lim:6.0f} req/s (prepared {pre:6.0f}), full {ful:5.0f} req/s, "
            f"full ÷ limit {ful / lim:.2f} (target >= 0.35, moonshot 0.5; ÷ prepared limit {ful / pre:.2f}); "
            f"{len(served.content):,} bytes"
        )


def guardian_comparison(regulators: dict, rounds: int) -> None:
    """The policy's consumer list page vs guardian's get_objects_for_user over per-consumer rows."""
    from django.contrib.auth.models import Permission as AuthPermission
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext
    from guardian.shortcuts import get_objects_for_user

    from portal.access import policy
    from portal.access.models import ConsumerUserObjectPermission
    from portal.accounts.models import Organisation, User
    from portal.api.serializers import ConsumerSerializer
    from portal.records.models import Consumer, Segment

    permission = AuthPermission.objects.get(codename="view_records", content_type__model="consumer")
    organisation = Organisation.objects.get(short_name="nfra")
    print(
        "policy list page vs guardian's get_objects_for_user (plain functions, ConsumerSerializer, 50 rows):"
    )
    for label, regulator in regulators.items():
        segment = Segment.objects.get(slug=f"bench-{label}")
        size = segment.memberships.count()
        holder, _ = User.objects.get_or_create(
            username=f"bench-guardian-{label}", defaults={"role": "regulator", "organisation": organisation}
        )
        table = ConsumerUserObjectPermission._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE user_id = %s", [holder.pk])
            cursor.execute(
                f"INSERT INTO {table} (user_id, permission_id, content_object_id) "
                "SELECT %s, %s, consumer_id FROM records_segmentmembership WHERE segment_id = %s",
                [holder.pk, permission.pk, segment.pk],
            )
            cursor.execute(f"ANALYZE {table}")

        def guardian_page(holder=holder) -> list:
            rows = get_objects_for_user(
                holder, "view_records", klass=Consumer, accept_global_perms=False
            ).order_by("public_id")[:51]
            for row in rows:
                row.full_records = True  # guardian answered "view_records" for every row it gave
            return ConsumerSerializer(list(rows)[:50], many=True).data

        def policy_page(regulator=regulator) -> list:
            scope = policy.scope_for(regulator)
            rows = policy.with_full_records_flag(scope, policy.visible_consumers(scope)).order_by("public_id")
            return ConsumerSerializer(list(rows[:51])[:50], many=True).data

        assert guardian_page() == policy_page(), "guardian and the policy list different rows"
        functions = {"guardian": guardian_page, "policy": policy_page}
        times = alternating(functions, rounds, 50)
        query_ms: dict[str, list[float]] = {"guardian": [], "policy": []}
        # The page query alone (the last query of each function), timed by the database round trip.
        for name, function in functions.items():
            for _ in range(30):
                reset_queries()
                with CaptureQueriesContext(connection) as captured:
                    function()
                sql = captured.captured_queries[-1]["sql"]
                with connection.cursor() as cursor:
                    started = time.perf_counter()
                    cursor.execute(sql)
                    cursor.fetchall()
                    query_ms[name].append((time.perf_counter() - started) * 1000)
        g, p = median(times["guardian"]), median(times["policy"])
        print(
            f"  {size:,} in scope: guardian {g * 1000:.2f} ms/page "
            f"(query {median(query_ms['guardian']):.2f} ms), "
            f"policy {p * 1000:.2f} ms/page (query {median(query_ms['policy']):.2f} ms); "
            f"policy ÷ guardian time {p / g:.2f} (target <= 1.00)"
        )


def web_page(regulator, public_id: str, path: str, rounds: int) -> None:
    """The web consumer page vs the API's consumer detail + its transactions list (target <= 1.5x)."""
    from django.test import Client

    web = Client()
    web.force_login(regulator)
    api = client_for(regulator, audit=True, bare=False)
    page = f"/consumers/{public_id}/"
    assert web.get(page).status_code == 200, "the web consumer page did not answer"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (autovacuum,) = cursor.fetchone()
        if autovacuum != "on":
            # The rounds above wrote thousands of audit events about this consumer within seconds, and the
            # page reads their access log: without statistics the planner takes the new rows for a handful.
            # Autovacuum (on by default, as in production) would have analysed them; here it is off.
            cursor.execute("ANALYZE audit_auditevent, audit_auditsubject")
            print("autovacuum is off on this server: analysed the audit tables before the web page rounds")

    def api_pair() -> None:
        api.get(f"/api/v1/consumers/{public_id}/")
        api.get(path)

    samples = alternating({"web": lambda: web.get(page), "api": api_pair}, rounds, 20)
    w, a = median(samples["web"]), median(samples["api"])
    print(
        f"web consumer page {w * 1000:.1f} ms, API detail + transactions {a * 1000:.1f} ms, "
        f"ratio {w / a:.2f} (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
