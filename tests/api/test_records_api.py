"""Consumers, transactions and segment figures over the API: masking, suppression, pagination, bad input,
query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal.access import services
from portal.accounts.models import User
from tests.api.conftest import ApiClient

CCF, YRD = "chengdu-chongqing-consumer-finance", "yangtze-river-delta"


@pytest.fixture
def masked_regulator(demo) -> ApiClient:
    """regulator2, once compliance approves their pending request for masked records of the Delta segment."""
    from portal.access.models import AccessGrant

    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    return ApiClient(User.objects.get(username="regulator2"))


def test_full_records_are_unmasked(api, demo):
    consumer = demo.consumer_in(CCF)
    body = api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/").json()
    assert (body["name"], body["resident_id"], body["phone"], body["masked"]) == (
        consumer.name,
        consumer.resident_id,
        consumer.phone,
        False,
    )


def test_masked_records_show_surname_area_and_phone_ends_only(masked_regulator, demo):
    consumer = demo.consumer_in(YRD)
    body = masked_regulator.get(f"/api/v1/consumers/{consumer.public_id}/").json()
    assert body["masked"] is True
    assert body["name"] == consumer.name[0] + "*" * (len(consumer.name) - 1)
    assert body["resident_id"] == consumer.resident_id[:6] + "********" + consumer.resident_id[-4:]
    assert body["phone"] == consumer.phone[:3] + "****" + consumer.phone[-4:]
    assert body["current_score"] is None  # no view_scores
    listed = masked_regulator.get("/api/v1/consumers/?page_size=200").json()["results"]
    assert listed and all(c["masked"] for c in listed)
    assert not {c["resident_id"] for c in listed} & {consumer.resident_id}


def test_a_masked_view_cannot_confirm_an_identifier_by_search(masked_regulator, demo):
    consumer = demo.consumer_in(YRD)
    for term in (consumer.public_id, consumer.resident_id, consumer.phone):
        assert masked_regulator.get("/api/v1/consumers/", {"q": term}).json()["results"] == []


def test_masking_is_per_row_when_grants_differ(api, masked_regulator, demo):
    regulator2 = User.objects.get(username="regulator2")
    grant = services.grant_request(
        requester=regulator2,
        segment=demo.segment(CCF),
        permissions=["view_records"],
        purpose="p",
        legal_basis="b",
        case_reference="c",
        valid_until=timezone.now() + timedelta(days=3),
    )
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    rows = {
        c["public_id"]: c["masked"]
        for c in masked_regulator.get("/api/v1/consumers/?page_size=200").json()["results"]
    }
    ccf = {c.public_id for c in demo.segment(CCF).consumers.all()}
    assert rows and all(masked is (public_id not in ccf) for public_id, masked in rows.items())


def test_shareholder_summary_suppresses_small_cells(api, demo):
    body = api("shareholder").get(f"/api/v1/segments/{demo.segment(YRD).pk}/summary/").json()
    assert body["suppressed_below"] == 10
    cells = [c["consumers"] for c in body["score_histogram"]] + [
        m["consumers"] for m in body["monthly_volume"]
    ]
    assert all(c is None or c >= 10 for c in cells)
    for month in body["monthly_volume"]:
        if month["consumers"] is None:
            assert month["transactions"] is None and month["amount"] is None
    assert not any(key in str(body) for key in ("resident_id", "phone", "public_id"))


def test_a_small_segment_shows_no_figure_at_all(api, demo):
    from portal.access.models import AccessGrant

    segment = demo.segment("case-2026-017")
    assert segment.consumers.count() < 10
    grant = services.grant_request(
        requester=User.objects.get(username="compliance"),
        segment=segment,
        permissions=["view_aggregates"],
        purpose="p",
        legal_basis="b",
        case_reference="c",
        valid_until=timezone.now() + timedelta(days=3),
        grantee_organisation=AccessGrant.objects.get(
            case_reference="SH-A-2026-Q3-DELTA"
        ).grantee_organisation,
    )
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance2"))
    body = api("shareholder").get(f"/api/v1/segments/{segment.pk}/summary/").json()
    assert body["consumers"] is None
    assert body["delinquency"]["rate"] is None
    assert all(c["consumers"] is None for c in body["score_histogram"])


def walk(client: ApiClient, url: str) -> list[dict]:
    rows: list[dict] = []
    while url:
        page = client.get(url).json()
        rows.extend(page["results"])
        url = page["next"]
    return rows


def test_keyset_pages_cover_every_row_once_in_order(api, demo):
    consumer = demo.consumer_in(CCF)
    client = api("regulator")
    rows = walk(client, f"/api/v1/consumers/{consumer.public_id}/transactions/?page_size=7")
    assert len(rows) == consumer.transactions.count()
    times = [r["occurred_at"] for r in rows]
    assert times == sorted(times, reverse=True)


def test_previous_links_walk_back_to_the_first_page(api, demo):
    client = api("regulator")
    first = client.get("/api/v1/transactions/?page_size=5").json()
    second = client.get(first["next"]).json()
    back = client.get(second["previous"]).json()
    assert back["results"] == first["results"]
    assert back["previous"] is None and first["previous"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("cursor=!!!", "cursor"),
        ("cursor=" + "A" * 80, "cursor"),
        ("page_size=0", "page_size"),
        ("page_size=201", "page_size"),
        ("page_size=abc", "page_size"),
        ("page_size=-1", "page_size"),
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("since=2026-05-01&until=2026-01-01", "until"),
        ("kind=theft", "kind"),
        ("segment=abc", "segment"),
        ("segment=999999", "segment"),
        ("colour=blue", "colour"),
    ],
)
def test_bad_transaction_list_parameters_are_400_naming_them(api, demo, query, parameter):
    response = api("regulator").get(f"/api/v1/transactions/?{query}")
    assert response.status_code == 400
    assert parameter in response.json()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("q=" + "1" * 65, "q"), ("q=", "q"), ("province=Atlantis", "province"), ("segment=1.5", "segment")],
)
def test_bad_consumer_list_parameters_are_400_naming_them(api, demo, query, parameter):
    response = api("regulator").get(f"/api/v1/consumers/?{query}")
    assert response.status_code == 400
    assert parameter in response.json()


def test_a_cursor_of_another_list_is_refused(api, demo):
    client = api("regulator")
    cursor_url = client.get("/api/v1/consumers/?page_size=1").json()["next"]
    cursor = cursor_url.split("cursor=")[1].split("&")[0]
    response = client.get(f"/api/v1/transactions/?cursor={cursor}")
    assert response.status_code == 400 and "cursor" in response.json()


def test_filters_narrow_the_transactions(api, demo):
    client = api("regulator")
    rows = walk(client, "/api/v1/transactions/?kind=repayment&since=2026-01-01&page_size=200")
    assert rows and all(r["kind"] == "repayment" and r["occurred_at"] >= "2026-01-01" for r in rows)


def test_token_lifecycle(api, demo):
    client = api(None)
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "regulator", "password": "portal-demo"},
        content_type="application/json",
    )
    assert response.status_code == 201
    token = response.json()["token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/v1/me/", **auth).json()["role"] == "regulator"
    assert client.delete("/api/v1/auth/token/", **auth).status_code == 204
    assert client.get("/api/v1/me/", **auth).status_code == 401


def test_bad_logins(api, demo):
    client = api(None)
    assert (
        client.post(
            "/api/v1/auth/token/",
            {"username": "regulator", "password": "wrong"},
            content_type="application/json",
        ).status_code
        == 401
    )
    response = client.post("/api/v1/auth/token/", {"username": "regulator"}, content_type="application/json")
    assert response.status_code == 400 and "password" in response.json()


def test_an_expired_token_or_a_deactivated_user_gets_401(api, demo):
    from portal.accounts.models import ApiToken

    client = api("regulator")
    assert client.get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(user__username="regulator").update(expires_at=timezone.now())
    assert client.get("/api/v1/me/").status_code == 401
    other = api("regulator2")
    User.objects.filter(username="regulator2").update(is_active=False)
    assert other.get("/api/v1/me/").status_code == 401


def test_schema_and_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/consumers/{public_id}/transactions/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower() and b"https://" not in docs.content


# --- Query counts ------------------------------------------------------------------------------------------
@pytest.fixture
def wide_regulator(demo) -> ApiClient:
    """regulator with a second grant on a segment of well over 100 consumers."""
    regulator = User.objects.get(username="regulator")
    grant = services.grant_request(
        requester=regulator,
        segment=demo.segment("revolving-credit"),
        permissions=["view_records"],
        purpose="p",
        legal_basis="b",
        case_reference="c",
        valid_until=timezone.now() + timedelta(days=3),
    )
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    assert demo.segment("revolving-credit").consumers.count() > 100
    return ApiClient(regulator)


# Each audited list request costs, whatever its page size:
#  1 token with its user and organisation; 2 the valid grants with guardian's rows for them (one statement);
#  3 the page (one query, keyset); then the audit event, under the test's transaction: savepoint, the event
#  with its subjects, release. On PostgreSQL the event and its subjects are one statement (4-6); SQLite
#  inserts the event, then its subjects (4-7).
LIST_QUERIES = 6 if connection.vendor == "postgresql" else 7
# With several grants in scope (wide_regulator): also the page's memberships in segments of the scope, which
# say the grant each consumer was shown under (recorded per subject).
MULTI_GRANT_LIST_QUERIES = LIST_QUERIES + 1


@pytest.mark.parametrize("path", ["/api/v1/consumers/", "/api/v1/transactions/"])
def test_list_query_count_does_not_depend_on_page_size(wide_regulator, django_assert_num_queries, path):
    for size in (10, 100):
        with django_assert_num_queries(MULTI_GRANT_LIST_QUERIES):
            response = wide_regulator.get(f"{path}?page_size={size}")
        assert len(response.json()["results"]) == size


def test_consumer_transactions_query_count_does_not_depend_on_page_size(api, demo, django_assert_num_queries):
    consumer = max(demo.segment(CCF).consumers.all(), key=lambda c: c.transactions.count())
    assert consumer.transactions.count() > 10
    client = api("regulator")
    # As a list, plus the consumer by public id with the segments in scope it belongs to.
    for size in (5, 10):
        with django_assert_num_queries(LIST_QUERIES + 1):
            client.get(f"/api/v1/consumers/{consumer.public_id}/transactions/?page_size={size}")


def test_consumer_transaction_pages_equal_the_database_rows_both_ways_with_filters(api, demo):
    """The page statement (compiled once per shape, then run with each request's values) serves exactly the
    rows the ORM would: every page, forward and back, with period and kind filters, for two consumers."""
    from portal.api import pagination
    from portal.records.models import Transaction

    client = api("regulator")
    consumers = sorted(demo.segment(CCF).consumers.all(), key=lambda c: -c.transactions.count())[:2]
    for consumer in consumers:
        for query, rows in (
            ("page_size=3", Transaction.objects.filter(consumer=consumer)),
            (
                "page_size=2&kind=repayment&since=2025-01-01&until=2026-10-31",
                Transaction.objects.filter(
                    consumer=consumer,
                    kind="repayment",
                    occurred_at__gte="2025-01-01T00:00:00+08:00",
                    occurred_at__lt="2026-11-01T00:00:00+08:00",
                ),
            ),
        ):
            expected = [(t.occurred_at, t.amount) for t in rows.order_by("-occurred_at", "-id")]
            url = f"/api/v1/consumers/{consumer.public_id}/transactions/?{query}"
            pages = []
            while url:
                page = client.get(url).json()
                pages.append(page)
                url = page["next"]
            served = [(r["occurred_at"], r["amount"]) for p in pages for r in p["results"]]
            assert len(served) == len(expected) > 2
            assert served == [
                (timezone.localtime(at).isoformat().replace("+00:00", "Z"), f"{amount:f}")
                for at, amount in expected
            ]
            back = client.get(pages[-1]["previous"]).json()
            assert back["results"] == pages[-2]["results"]
    compiled = [s for k, s in pagination._STATEMENTS.items() if k[0] == "consumer.transactions"]
    # One statement per shape: on PostgreSQL every shape is compiled; SQLite converts datetimes, so the
    # shapes with a period or a cursor are served by the ORM there.
    assert compiled
    if connection.vendor == "postgresql":
        assert all(s is not None for s in compiled)


@pytest.mark.postgres
def test_the_hot_statements_of_a_request_are_prepared_once_per_connection(api, demo):
    """The token, the scope, the consumer check and the page statement (portal.prepared)."""
    consumer = demo.consumer_in("chengdu-chongqing-consumer-finance")
    path = f"/api/v1/consumers/{consumer.public_id}/transactions/"
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection.connection.statements.clear()
    assert api("regulator").get(path).status_code == 200
    before = dict(connection.connection.statements)
    assert api("regulator").get(path).status_code == 200
    assert dict(connection.connection.statements) == before  # the second request prepared nothing new
    marked = list(before)
    texts = " ".join(marked)
    assert "key_hash" in texts  # the token
    assert "WITH valid AS" in texts  # the scope
    assert "in_group_0" in texts  # the consumer check
    assert "records_transaction" in texts  # the page
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        on_server = {name for (name,) in cursor.fetchall()}
    assert on_server == {name for name, _count, _texts in connection.connection.statements.values()}
