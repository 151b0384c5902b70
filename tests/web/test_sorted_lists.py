"""The lists' one sorting and paging piece on the consumer's transactions and the event search: sorted by
a column either way, counted, sized, paged back and forth; odd input is refused with 400, never 500."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import RequestFactory

from audit.models import AuditEvent
from portal.records.models import Consumer, Transaction
from portal.web.views.records import TRANSACTION_LIST
from tests.web.conftest import CCF

pytestmark = pytest.mark.postgres


def amounts(html: str) -> list[Decimal]:
    body = html.split('<table class="transactions">', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r'<td class="num">(-?)¥([0-9,.]+)</td><td>', body)
    return [Decimal(sign + digits.replace(",", "")) for sign, digits in cells]


def test_a_consumers_transactions_sort_by_amount_and_page_both_ways(client_for, world, settings):
    settings.WEB_PAGE_SIZE = 5
    consumer = world.consumer_in(CCF)
    regulator = client_for("regulator")
    url = f"/consumers/{consumer.public_id}/"
    first = regulator.get(url, {"sort": "-amount"}).content.decode()
    top = amounts(first)
    assert len(top) == 5 and top == sorted(top, reverse=True)
    assert top[0] == max(t.amount for t in consumer.transactions.all())
    assert f'data-total="{consumer.transactions.count()}"' in first
    assert 'aria-sort="descending"' in first
    cursor = re.search(r'rel="next" href="\?[^"]*cursor=([^"#]+)', first).group(1)  # type: ignore[union-attr]
    second = regulator.get(f"{url}?sort=-amount&cursor={cursor}").content.decode()
    assert amounts(second)[0] <= top[-1]
    back = re.search(r'rel="prev" href="\?[^"]*cursor=([^"#]+)', second).group(1)  # type: ignore[union-attr]
    assert amounts(regulator.get(f"{url}?sort=-amount&cursor={back}").content.decode()) == top
    ascending = amounts(regulator.get(url, {"sort": "amount", "size": "25"}).content.decode())
    assert ascending == sorted(ascending) and len(ascending) == min(25, consumer.transactions.count())


def test_a_list_counted_with_its_page_tells_the_whole_lists_total_on_every_page(
    world, settings, django_assert_num_queries
):
    """The consumer's transactions read their total with the page (SortedList(count_in_page=True)): the
    same number as a COUNT of the list, forward, back, filtered, empty, past the end and with a cursor the
    list did not issue; one statement for a page with rows."""
    settings.WEB_PAGE_SIZE = 5
    consumer = world.consumer_in(CCF)
    transactions = Transaction.objects.filter(consumer=consumer)
    total = transactions.count()
    assert total > 10
    get = RequestFactory().get

    def after(page) -> dict[str, str]:
        assert page.next_cursor is not None
        return {"cursor": page.next_cursor}

    with django_assert_num_queries(1):
        first = TRANSACTION_LIST.read(get("/"), transactions)
    assert first.total == total and len(first.page.results) == 5 and not first.invalid
    second = TRANSACTION_LIST.read(get("/", after(first.page)), transactions)
    assert second.total == total and second.page.results[0].id not in {t.id for t in first.page.results}
    assert second.page.previous_cursor is not None
    back = TRANSACTION_LIST.read(get("/", {"cursor": second.page.previous_cursor}), transactions)
    assert back.total == total and [t.id for t in back.page.results] == [t.id for t in first.page.results]
    by_amount = TRANSACTION_LIST.read(get("/", {"sort": "amount", "size": "25"}), transactions)
    assert by_amount.total == total
    kind = first.page.results[0].kind
    of_kind = transactions.filter(kind=kind)
    assert TRANSACTION_LIST.read(get("/"), of_kind).total == of_kind.count() < total
    with django_assert_num_queries(1):  # the empty first page says the list is empty: no COUNT
        assert TRANSACTION_LIST.read(get("/"), transactions.filter(kind="no-such-kind")).total == 0
    # Past the end (the cursor of a longer list): no row carries the total, so it is counted.
    shown = transactions.filter(pk__in=[t.id for t in first.page.results])
    with django_assert_num_queries(2):
        past = TRANSACTION_LIST.read(get("/", after(first.page)), shown)
    assert past.page.results == [] and past.total == 5
    forged = TRANSACTION_LIST.read(get("/", {"cursor": "not-a-cursor"}), transactions)
    assert forged.invalid and forged.page.results == [] and forged.total == total
    odd = TRANSACTION_LIST.read(get("/", {"size": "7"}), transactions)
    assert odd.invalid and odd.total == 0


def test_a_filter_survives_sorting(client_for, world):
    consumer = (
        Consumer.objects.filter(memberships__segment__slug=CCF, transactions__kind="repayment")
        .order_by("public_id")
        .first()
    )
    assert consumer is not None
    html = (
        client_for("regulator")
        .get(f"/consumers/{consumer.public_id}/", {"kind": "repayment", "sort": "amount"})
        .content.decode()
    )
    assert f'data-total="{consumer.transactions.filter(kind="repayment").count()}"' in html
    assert 'href="?kind=repayment&amp;sort=-amount#transactions"' in html
    assert 'name="sort" value="amount"' in html  # the filter form keeps the order


@pytest.mark.parametrize(
    "query",
    [{"sort": "resident_id"}, {"sort": "-name"}, {"size": "100000"}, {"size": "-5"}, {"cursor": "forged"}],
)
def test_odd_sorts_sizes_and_cursors_show_no_rows(client_for, world, query):
    consumer = world.consumer_in(CCF)
    html = client_for("regulator").get(f"/consumers/{consumer.public_id}/", query).content.decode()
    assert '<table class="transactions">' not in html and "row-error" in html
    event = AuditEvent.objects.filter(action="consumer.read").latest("id")
    assert event.row_count == 0  # what is recorded is what was served
    assert client_for("auditor").get("/audit/events/", query).status_code == 400


def test_the_event_search_sorts_by_action_and_counts(client_for, world):
    auditor = client_for("auditor")
    html = auditor.get("/audit/events/", {"sort": "action", "outcome": "allowed"}).content.decode()
    actions = re.findall(r'<td data-label="Action"><code>([^<]+)</code>', html)
    assert actions and actions == sorted(actions)
    total = int(re.search(r'data-total="(\d+)"', html).group(1))  # type: ignore[union-attr]
    # The count is taken before this page's own event is written.
    assert total == AuditEvent.objects.filter(outcome="allowed").count() - 1
    assert 'href="?outcome=allowed&amp;sort=-action"' in html
    newest_last = auditor.get("/audit/events/", {"sort": "occurred_at"}).content.decode()
    times = re.findall(r'<td class="time" data-label="Time">([^<]+)</td>', newest_last)
    assert times == sorted(times)


def test_the_event_search_downloads_as_csv_and_the_download_is_recorded(client_for, world):
    import csv
    import hashlib
    import io

    auditor = client_for("auditor")
    page = auditor.get("/audit/events/", {"outcome": "allowed", "sort": "action"}).content.decode()
    assert 'href="/audit/events/csv/?outcome=allowed&amp;sort=action"' in page
    response = auditor.get("/audit/events/csv/", {"outcome": "allowed", "sort": "action"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = response.content
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert rows and {row["outcome"] for row in rows} == {"allowed"}
    assert [row["action"] for row in rows] == sorted(row["action"] for row in rows)
    event = AuditEvent.objects.filter(action="audit.events.export").latest("id")
    assert (event.outcome, event.actor_username, event.row_count) == ("allowed", "auditor", len(rows))
    assert event.export_sha256 == hashlib.sha256(body).hexdigest() == response["X-Content-SHA256"]


def test_the_event_csv_refuses_bad_filters_and_other_roles(client_for, world):
    auditor = client_for("auditor")
    refused = auditor.get("/audit/events/csv/", {"since": "yesterday"})
    assert refused.status_code == 400 and "since" in refused.json()["errors"]
    assert "sort" in auditor.get("/audit/events/csv/", {"sort": "search_hash"}).json()["errors"]
    for username in ("regulator", "compliance", "shareholder"):
        assert client_for(username).get("/audit/events/csv/").status_code == 403
    assert not AuditEvent.objects.filter(action="audit.events.export", outcome="allowed").exists()


def test_decided_grants_filter_by_status_sort_and_page(client_for, world, settings):
    from portal.access import services
    from portal.access.models import AccessGrant
    from portal.accounts.models import User

    officer = User.objects.get(username="compliance2")
    for grant in AccessGrant.objects.filter(status=AccessGrant.Status.APPROVED):
        services.grant_revoke(grant=grant, revoker=officer, reason="Case closed.")
    revoked = AccessGrant.objects.filter(status=AccessGrant.Status.REVOKED).order_by("pk")
    assert revoked.count() >= 2
    settings.WEB_PAGE_SIZE = 1
    compliance = client_for("compliance")
    html = compliance.get("/grants/", {"sort": "pk", "status": "revoked"}).content.decode()
    assert 'aria-sort="ascending"' in html and f'data-total="{revoked.count()}"' in html
    assert f'href="/grants/{revoked[0].pk}/"' in html and f'href="/grants/{revoked[1].pk}/"' not in html
    cursor = re.search(r'rel="next" href="\?[^"]*cursor=([^"#]+)', html).group(1)  # type: ignore[union-attr]
    second = compliance.get(f"/grants/?sort=pk&status=revoked&cursor={cursor}").content.decode()
    assert f'href="/grants/{revoked[1].pk}/"' in second
    assert 'option value="revoked" selected' in second
    assert 'data-total="0"' in compliance.get("/grants/", {"status": "rejected"}).content.decode()
    assert compliance.get("/grants/", {"status": "bogus"}).status_code == 400
    assert compliance.get("/grants/", {"sort": "purpose"}).status_code == 400
    assert compliance.get("/grants/", {"cursor": "x"}).status_code == 400


def test_my_exports_sort_filter_and_refuse_odd_input(client_for, world):
    from portal.access.models import Export
    from portal.records.models import Segment

    regulator = client_for("regulator")
    ccf = Segment.objects.get(slug=CCF)
    for kind in ("transactions", "consumers"):
        assert regulator.post("/exports/request/", {"segment": ccf.pk, "kind": kind}).status_code == 302
    mine = Export.objects.filter(requested_by__username="regulator").order_by("created_at", "pk")
    html = regulator.get("/exports/", {"sort": "created_at"}).content.decode()
    shown = re.findall(r'data-export="([0-9a-f-]+)"', html)
    assert shown == [str(e.public_id) for e in mine] and f'data-total="{mine.count()}"' in html
    newest = re.findall(r'data-export="([0-9a-f-]+)"', regulator.get("/exports/").content.decode())
    assert newest == shown[::-1]
    assert 'data-total="0"' in regulator.get("/exports/", {"status": "failed"}).content.decode()
    assert regulator.get("/exports/", {"status": "nope"}).status_code == 400
    assert regulator.get("/exports/", {"sort": "sha256"}).status_code == 400
    # Another user's exports are not in the list.
    assert 'data-total="0"' in client_for("regulator2").get("/exports/").content.decode()
