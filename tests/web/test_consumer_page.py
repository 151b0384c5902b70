"""The consumer page: masking per SPEC §3, the sections each permission opens, audit events like the API's,
paging and filters, and a query count that does not grow with the page size."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from portal.access import masking, services
from portal.access.models import AccessGrant
from portal.accounts.models import User
from portal.records.models import Consumer, Transaction
from scoring.models import MAX_SCORE, MIN_SCORE
from tests.web.conftest import CCF, DELTA


def approve_pending_of(username: str) -> AccessGrant:
    grant = AccessGrant.objects.get(requested_by__username=username, status=AccessGrant.Status.REQUESTED)
    return services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))


@pytest.mark.postgres
def test_full_records_show_identity_scores_and_access_log(client_for, world):
    consumer = world.consumer_in(CCF)
    html = client_for("regulator").get(f"/consumers/{consumer.public_id}/").content.decode()
    assert consumer.resident_id in html and consumer.phone in html and consumer.name in html
    assert 'data-masked="true"' not in html
    assert 'data-field="score"' in html and "<svg" in html  # current score and its history chart
    assert "Reason codes" in html
    assert "Access log" in html


@pytest.mark.postgres
def test_masked_records_hide_identity_scores_and_access_log(client_for, world):
    approve_pending_of("regulator2")  # view_masked_records on the Yangtze River Delta
    consumer = world.consumer_in(DELTA)
    html = client_for("regulator2").get(f"/consumers/{consumer.public_id}/").content.decode()
    masked = masking.identity(consumer, masked=True)
    assert 'data-masked="true"' in html
    for field in ("name", "resident_id", "phone"):
        assert masked[field] in html
        assert getattr(consumer, field) not in html
    assert 'data-field="score"' not in html  # no view_scores
    assert "Access log" not in html  # needs view_records
    # A masked view cannot confirm a known identifier by searching for it (SPEC §3).
    listing = client_for("regulator2").get(f"/consumers/?q={consumer.resident_id}").content.decode()
    assert consumer.public_id not in listing


@pytest.mark.postgres
def test_page_view_is_audited_like_the_api(client_for, world):
    consumer = world.consumer_in(CCF)
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    client_for("regulator").get(f"/consumers/{consumer.public_id}/")
    event = AuditEvent.objects.latest("id")
    assert event.action == "consumer.read"
    assert event.outcome == "allowed" and event.status == 200
    assert event.actor_username == "regulator"
    assert event.resource_kind == "consumer" and event.requested_id == consumer.public_id
    assert [s.public_id for s in event.subjects.all()] == [consumer.public_id]
    assert event.grant_id == grant.pk and event.purpose == grant.purpose
    assert event.path == f"/consumers/{consumer.public_id}/"


@pytest.mark.postgres
def test_denied_page_view_is_audited_without_subjects(client_for, world):
    outside = world.consumer_outside(CCF)
    client_for("regulator").get(f"/consumers/{outside.public_id}/")
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.status) == ("consumer.read", "denied", 404)
    assert event.requested_id == outside.public_id
    assert not event.subjects.exists()


@pytest.mark.postgres
def test_search_is_audited_with_a_hash_of_the_term(client_for, world):
    consumer = world.consumer_in(CCF)
    html = client_for("regulator").get(f"/consumers/?q={consumer.phone}").content.decode()
    assert f"/consumers/{consumer.public_id}/" in html
    event = AuditEvent.objects.latest("id")
    assert event.action == "consumer.list" and event.search_hash
    assert consumer.phone not in str(event.query)
    assert [s.public_id for s in event.subjects.all()] == [consumer.public_id]


@pytest.mark.postgres
def test_malformed_search_is_shown_next_to_the_field(client_for, world):
    for term in ("", "a b!", "x" * 80):
        response = client_for("regulator").get("/consumers/", {"q": term})
        assert response.status_code == 400
        html = response.content.decode()
        assert re.search(r'class="field has-error".*?<ul class="errorlist', html, re.S), term


@pytest.mark.postgres
def test_transactions_filter_by_kind_and_page_without_overlap(client_for, world, settings):
    settings.WEB_PAGE_SIZE = 5
    consumer = (
        Consumer.objects.filter(memberships__segment__slug=CCF, transactions__kind="repayment")
        .order_by("public_id")
        .first()
    )
    assert consumer is not None
    client = client_for("regulator")
    first = client.get(f"/consumers/{consumer.public_id}/").content.decode()
    cursor = re.search(r'cursor=([^"#&]+)', first)
    assert cursor is not None
    second = client.get(f"/consumers/{consumer.public_id}/?cursor={cursor.group(1)}")
    assert second.status_code == 200
    rows = lambda html: re.findall(r"<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>", html)  # noqa: E731
    assert len(rows(first)) == 5 and len(rows(second.content.decode())) >= 1
    only = client.get(f"/consumers/{consumer.public_id}/?kind=repayment").content.decode()
    repayments = Transaction.objects.filter(consumer=consumer, kind="repayment").count()
    assert len(rows(only)) == min(5, repayments)
    assert repayments > 0
    assert only.count("<td>Repayment</td>") == len(rows(only))


def shown_transactions(html: str) -> list[str]:
    return re.findall(r"<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>", html)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "query, message",
    [
        ({"since": "2026-05-01", "until": "2026-01-01"}, "The end date must not come before the start date."),
        ({"since": "yesterday"}, "Enter a valid date."),
        ({"kind": "bribe"}, "Select a valid choice."),
        ({"since": "0001-01-01"}, "This date is out of range."),
        ({"until": "9999-12-31"}, "This date is out of range."),
        ({"cursor": "forged"}, "not valid any more"),
    ],
)
def test_bad_filters_and_cursors_are_errors_on_the_page_not_500(client_for, world, query, message):
    """The page still shows (and the trail records, as allowed) the profile, but no transactions."""
    consumer = world.consumer_in(CCF)
    assert Transaction.objects.filter(consumer=consumer).exists()
    url = f"/consumers/{consumer.public_id}/"
    response = client_for("regulator").get(url, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert consumer.name in html  # the profile is shown ...
    assert shown_transactions(html) == []  # ... the transactions are not
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.status) == ("consumer.read", "allowed", 200)
    assert [s.public_id for s in event.subjects.all()] == [consumer.public_id]
    assert event.row_count == 0


@pytest.mark.postgres
def test_out_of_range_dates_are_shown_next_to_their_field(client_for, world):
    consumer = world.consumer_in(CCF)
    html = (
        client_for("regulator")
        .get(f"/consumers/{consumer.public_id}/", {"since": "0001-01-01"})
        .content.decode()
    )
    assert re.search(
        r'<div class="field has-error">\s*<label for="id_since">.*?<ul class="errorlist[^>]*>\s*'
        r"<li>This date is out of range.</li>",
        html,
        re.S,
    )


def consumer_page_queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.postgres
def test_consumer_page_query_count_does_not_depend_on_page_size(
    client_for, world, settings, django_assert_num_queries
):
    consumer = world.consumer_in(CCF)
    client = client_for("regulator")
    url = f"/consumers/{consumer.public_id}/"
    client.get(url)  # the session's first use
    for size in (5, 50):
        settings.WEB_PAGE_SIZE = size
        # 1 session, 2 user with their organisation (access log, page header, audit event), 3 grants valid
        # now with guardian's rows for them, 4 the consumer with its segment groups, 5 transactions page
        # with the count of all (filtered) transactions, 6 its segments in scope, 7 score history, 8 access
        # log of the organisation, 9 accounts, 10 the count of other organisations' entries, 11-13 the
        # audit event and its subject (SAVEPOINT, one INSERT of the event with its subjects, RELEASE).
        with django_assert_num_queries(13):
            assert client.get(url).status_code == 200


@pytest.mark.postgres
def test_the_consumer_pages_statements_are_prepared_once_per_connection(client_for, world):
    """The page's statements of one consumer are planned once per connection (pages.planned_once), all but
    the count of other organisations' access-log entries."""
    consumer = world.consumer_in(CCF)
    url = f"/consumers/{consumer.public_id}/"
    client = client_for("regulator")
    client.get(url)  # the session's first use
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection.connection.statements.clear()
    assert client.get(url).status_code == 200
    before = dict(connection.connection.statements)
    assert client.get(url).status_code == 200
    assert dict(connection.connection.statements) == before  # the second request prepared nothing new
    texts = list(before)
    # The transactions page, with the count of the list in it.
    page = 'FROM "records_transaction" INNER JOIN "records_account"'
    assert any(page in t and "COUNT(" in t for t in texts)
    assert any("CROSS JOIN LATERAL" in t for t in texts)  # the access log
    assert not any("audit_auditevent" in t and "COUNT(*)" in t for t in texts)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        on_server = {name for (name,) in cursor.fetchall()}
    assert on_server == {name for name, _count, _texts in connection.connection.statements.values()}


@pytest.mark.postgres
def test_dashboard_query_count_is_fixed(client_for, world, django_assert_num_queries):
    client = client_for("regulator")
    client.get("/dashboard/")
    # 1 session, 2 user with their organisation, 3 grants valid now with guardian's rows, 4 the
    # organisation's grants and requests, 5 segments in scope with size and average score, 6 recent
    # activity, 7-9 the audit event (SAVEPOINT, INSERT, RELEASE).
    with django_assert_num_queries(9):
        assert client.get("/dashboard/").status_code == 200


@pytest.mark.postgres
def test_consumer_list_shows_scores_only_under_view_scores(client_for, world):
    approve_pending_of("regulator2")  # view_masked_records on the Yangtze River Delta, no view_scores
    listing = client_for("regulator2").get("/consumers/")
    assert listing.status_code == 200
    html = listing.content.decode()
    rows = re.findall(
        r'<tr>\s*<td data-label="Public id"><a href="/consumers/(C[0-9A-Z]{16})/">.*?</tr>', html, re.S
    )
    assert rows
    scored = Consumer.objects.filter(public_id__in=rows, current_score__isnull=False)
    assert scored.exists()
    cells = re.findall(r'<td class="num" data-label="Score"[^>]*>(.*?)</td>', html, re.S)
    assert len(cells) == len(rows) and set(cells) == {"—"}
    assert 'data-field="score"' not in html
    # Under view_scores the same list shows each row's score.
    full = client_for("regulator").get("/consumers/").content.decode()
    shown = re.findall(r'<td class="num" data-label="Score" data-field="score">(\d+)</td>', full)
    assert shown and all(MIN_SCORE <= int(s) <= MAX_SCORE for s in shown)


@pytest.mark.postgres
def test_dashboard_shows_only_grants_in_force_as_live(client_for, world):
    live = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    now = timezone.now()
    compliance = User.objects.get(username="compliance")

    def copy(reference: str, **changes) -> AccessGrant:
        fields = {
            "grantee_organisation": live.grantee_organisation,
            "segment": live.segment,
            "permissions": live.permissions,
            "purpose": live.purpose,
            "legal_basis": live.legal_basis,
            "requested_by": live.requested_by,
            "decided_by": compliance,
            "decided_at": now - timedelta(days=40),
            "status": AccessGrant.Status.APPROVED,
            "valid_from": now - timedelta(days=40),
            "valid_until": now + timedelta(days=90),
        }
        return AccessGrant.objects.create(case_reference=reference, **{**fields, **changes})

    # Past its end, not yet marked expired by the periodic task: approved, but not in force.
    ended = copy("ENDED", valid_until=now - timedelta(days=2))
    later = copy("LATER", valid_from=now + timedelta(days=10))
    revoked = copy(
        "REVOKED",
        status=AccessGrant.Status.REVOKED,
        revoked_by=compliance,
        revoked_at=now - timedelta(days=1),
    )
    html = client_for("regulator").get("/dashboard/").content.decode()

    def row(grant: AccessGrant) -> str:
        found = re.search(rf"<tr>\s*<td>#{grant.pk}</td>.*?</tr>", html, re.S)
        assert found, grant.case_reference
        return found.group(0)

    assert 'data-state="active">In force<' in row(live)
    assert re.search(r'<td class="num">\d+<br>', row(live))  # days left
    for grant, state, label in (
        (ended, "expired", "Expired"),
        (later, "pending", "Not yet in force"),
        (revoked, "revoked", "Revoked"),
    ):
        assert f'data-state="{state}">{label}<' in row(grant), grant.case_reference
        assert '<td class="num">—<br>' in row(grant), grant.case_reference  # no days left
    assert html.count('data-state="active"') == 1


def listed(html: str) -> list[str]:
    return re.findall(r'<td data-label="Public id"><a href="/consumers/(C[0-9A-Z]{16})/">', html)


@pytest.mark.postgres
def test_consumer_list_sorts_counts_and_pages_both_ways(
    client_for, world, settings, django_assert_num_queries
):
    settings.WEB_PAGE_SIZE = 4
    client = client_for("regulator")
    first = client.get("/consumers/", {"sort": "public_id"}).content.decode()
    ids = listed(first)
    assert ids == sorted(ids) and len(ids) == 4
    in_scope = Consumer.objects.filter(memberships__segment__slug=CCF).distinct().count()
    assert f'data-total="{in_scope}"' in first
    assert 'aria-sort="ascending"' in first
    cursor = re.search(r'rel="next" href="\?[^"]*cursor=([^"]+)"', first).group(1)  # type: ignore[union-attr]
    second = client.get(f"/consumers/?sort=public_id&cursor={cursor}").content.decode()
    assert listed(second)[0] > ids[-1]
    back = re.search(r'rel="prev" href="\?[^"]*cursor=([^"]+)"', second).group(1)  # type: ignore[union-attr]
    again = client.get(f"/consumers/?sort=public_id&cursor={back}").content.decode()
    assert listed(again) == ids and 'rel="prev"' not in again
    by_province = listed(client.get("/consumers/", {"sort": "-province"}).content.decode())
    provinces = list(
        Consumer.objects.filter(public_id__in=by_province)
        .order_by("-province", "-public_id")
        .values_list("public_id", flat=True)
    )
    assert by_province == provinces
    # A sort that is not offered, a page size out of the list, a cursor of another order: 400, no rows.
    for bad in ({"sort": "name"}, {"sort": "resident_id"}, {"size": "1000"}, {"size": "x"}):
        response = client.get("/consumers/", bad)
        assert response.status_code == 400 and not listed(response.content.decode())
    assert client.get(f"/consumers/?sort=-province&cursor={cursor}").status_code == 400
    for size in ("4", "100"):
        # 1 session, 2 user with their organisation (page header, then the audit event), 3 grants valid now
        # with guardian's rows, 4 the total, 5 the page of consumers (with the records and scores flags),
        # 6-8 the audit event and its subjects (SAVEPOINT, one INSERT of the event and its subjects, RELEASE).
        with django_assert_num_queries(8):
            assert client.get("/consumers/", {"size": size}).status_code == 200


@pytest.mark.postgres
def test_a_masked_only_regulator_gets_no_search_box(client_for, world):
    approve_pending_of("regulator2")  # view_masked_records only
    html = client_for("regulator2").get("/consumers/").content.decode()
    assert 'name="q"' not in html and 'data-note="no-search"' in html
    assert 'name="q"' in client_for("regulator").get("/consumers/").content.decode()
