"""Segment review (suppressed cells, no personal data), score runs, and the auditor's screens."""

from __future__ import annotations

import json
import re

import pytest

from audit.chain import events_seal
from audit.checkpoints import checkpoint_publish, verify_checkpoint
from audit.models import AuditEvent
from portal.access.masking import SMALL_CELL
from portal.records.models import Consumer
from portal.web.views.segments import _delinquency, _volume_by_product
from scoring.models import ScoreRun
from tests.web.conftest import CCF, DELTA


@pytest.mark.postgres
def test_segment_review_draws_charts_without_personal_data(client_for, world):
    segment = world.segment(DELTA)
    response = client_for("shareholder").get(f"/segments/{segment.pk}/")
    html = response.content.decode()
    assert html.count("<svg") == 6  # each chart: a wide and a narrow picture
    assert re.search(r'<rect class="bar" [^>]*height="[1-9]', html)  # bars with a height were drawn
    members = Consumer.objects.filter(memberships__segment=segment)
    for consumer in members[:50]:
        for value in (consumer.public_id, consumer.resident_id, consumer.phone, consumer.name):
            assert value not in html
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.resource_kind, event.requested_id) == (
        "segment.summary",
        "segment",
        str(segment.pk),
    )
    assert event.grant_id is not None and not event.subjects.exists()


def test_small_delinquency_cells_are_withheld():
    rows = [
        {"month": "2026-01", "consumers": 100, "delinquent": 12},
        {"month": "2026-02", "consumers": 100, "delinquent": 3},  # too few delinquent
        {"month": "2026-03", "consumers": 15, "delinquent": 10},  # too few others
        {"month": "2026-04", "consumers": 8, "delinquent": 0},
    ]
    shown = _delinquency(rows)
    assert shown[0]["rate"] == 0.12
    assert [r["rate"] for r in shown[1:]] == [None, None, None]
    assert shown[3]["consumers"] is None


def test_small_volume_cells_are_withheld_with_a_complement():
    rows = [
        {"month": "2026-01", "product": "wallet", "transactions": 500, "amount": 9000, "consumers": 80},
        {"month": "2026-01", "product": "cash_loan", "transactions": 40, "amount": 7000, "consumers": 25},
        {"month": "2026-01", "product": "insurance", "transactions": 5, "amount": 300, "consumers": 4},
    ]
    months, series, table = _volume_by_product(rows)
    assert months == ["2026-01"]
    # One row per month, one cell per product in the series' order.
    assert [row["month"] for row in table] == ["2026-01"]
    by_product = dict(zip([name for name, _values in series], table[0]["cells"], strict=True))
    assert by_product["Insurance"] == {"withheld": True}
    # The month's total is published elsewhere: the smallest other cell goes too, so no subtraction helps.
    assert by_product["Cash loan"] == {"withheld": True}
    assert by_product["Wallet"] == {"consumers": 80, "amount": 9000}
    assert all(cell.get("consumers", SMALL_CELL) >= SMALL_CELL for cell in table[0]["cells"])
    assert dict(series)["Wallet"] == [9000]


@pytest.mark.postgres
def test_segment_review_query_count_is_fixed(client_for, world, django_assert_num_queries):
    client = client_for("shareholder")
    url = f"/segments/{world.segment(DELTA).pk}/"
    client.get(url)
    # 1 session, 2 user with their organisation, 3 grants valid now with guardian's rows, 4 the segment,
    # 5-8 segment figures (members, histogram, delinquent, monthly volume), 9 volume by product,
    # 10 delinquency by month, 11-12 fairness (members by province, age band and bucket; late payers by
    # province and age band), 13-15 the audit event (SAVEPOINT, INSERT, RELEASE).
    with django_assert_num_queries(15):
        assert client.get(url).status_code == 200


@pytest.mark.postgres
def test_compliance_starts_a_run_and_sees_its_progress(client_for, world):
    client = client_for("compliance")
    assert client.post("/scoring/runs/start/", {"kind": "full"}).status_code == 302
    run = ScoreRun.objects.latest("id")
    assert run.status == ScoreRun.Status.RUNNING
    assert run.requested_by is not None and run.requested_by.username == "compliance"
    page = client.get("/scoring/runs/").content.decode()
    assert f'data-run-id="{run.pk}"' in page and 'data-running="true"' in page
    progress = client.get("/scoring/runs/progress.json").json()
    assert progress["running"] is True
    assert progress["runs"][0]["id"] == run.pk
    # A second full run while one runs is refused next to the field.
    again = client.post("/scoring/runs/start/", {"kind": "full"})
    assert again.status_code == 409 and "A run of this kind is already running." in again.content.decode()
    assert client.post("/scoring/runs/start/", {"kind": "bogus"}).status_code == 400
    assert client_for("auditor").post("/scoring/runs/start/", {"kind": "full"}).status_code == 403


@pytest.mark.postgres
def test_event_search_filters_and_refuses_bad_input(client_for, world):
    consumer = world.consumer_in(CCF)
    client_for("regulator").get(f"/consumers/{consumer.public_id}/")
    auditor = client_for("auditor")
    html = auditor.get("/audit/events/", {"consumer": consumer.public_id}).content.decode()
    assert "consumer.read" in html and consumer.public_id in html
    html = auditor.get("/audit/events/", {"actor": "regulator", "outcome": "allowed"}).content.decode()
    actors = set(re.findall(r'<td data-label="User"><code>([a-z0-9]+)</code></td><td class="content"', html))
    assert actors == {"regulator"}
    for bad in ({"consumer": "robert'); drop"}, {"outcome": "maybe"}, {"since": "2026-13-01"}):
        response = auditor.get("/audit/events/", bad)
        assert response.status_code == 400
        html = response.content.decode()
        assert "errorlist" in html
        # The page points at the field instead of saying that nothing matched.
        assert 'data-filter-error="true"' in html and "No event matches." not in html
    event = AuditEvent.objects.latest("id")
    assert event.action == "audit.events.read" and event.actor_username == "auditor"


FIELD_ERROR = (
    r'<div class="field has-error">\s*<label for="id_{field}">.*?'
    r'<ul class="errorlist[^>]*>\s*<li>{message}</li>'
)


@pytest.mark.postgres
@pytest.mark.parametrize("field, day", [("until", "9999-12-31"), ("since", "0001-01-01")])
def test_event_search_refuses_dates_at_the_calendar_edge_next_to_the_field(client_for, world, field, day):
    response = client_for("auditor").get("/audit/events/", {field: day})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(FIELD_ERROR.format(field=field, message="This date is out of range."), html, re.S)
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.status) == ("audit.events.read", "denied", 400)


@pytest.mark.postgres
def test_access_log_lists_who_read_a_consumer(client_for, world):
    consumer = world.consumer_in(CCF)
    client_for("regulator").get(f"/consumers/{consumer.public_id}/")
    response = client_for("auditor").get("/audit/access-log/", {"consumer": consumer.public_id})
    html = response.content.decode()
    assert response.status_code == 200 and "consumer.read" in html and "<code>regulator</code>" in html
    assert client_for("auditor").get("/audit/access-log/", {"consumer": "nope"}).status_code == 400


@pytest.mark.postgres
def test_chain_status_and_checkpoint_download(client_for, world):
    events_seal()
    checkpoint = checkpoint_publish()
    assert checkpoint is not None
    html = client_for("auditor").get("/audit/chain/").content.decode()
    assert f"#{checkpoint.chain_position}" in html and checkpoint.head_hash in html
    for username in ("auditor", "regulator"):
        response = client_for(username).get(f"/audit/checkpoints/{checkpoint.chain_position}/download/")
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
        document = json.loads(response.content)
        verify_checkpoint(document, document["public_key"])
    assert client_for("auditor").get("/audit/checkpoints/999999999/download/").status_code == 404
    assert (
        client_for("shareholder").get(f"/audit/checkpoints/{checkpoint.chain_position}/download/").status_code
        == 403
    )


@pytest.mark.postgres
def test_segment_list_and_grants_pages_have_fixed_query_counts(client_for, world, django_assert_num_queries):
    shareholder = client_for("shareholder")
    shareholder.get("/segments/")
    # 1 session, 2 user with their organisation, 3 grants valid now with guardian's rows, 4 segments in
    # scope with their sizes, 5-7 the audit event (SAVEPOINT, INSERT, RELEASE).
    with django_assert_num_queries(7):
        assert shareholder.get("/segments/").status_code == 200
    compliance = client_for("compliance")
    compliance.get("/grants/")
    # 1 session, 2 user with their organisation, 3 pending, 4 in force, 5 the count of the others, 6 a page
    # of them (each with grantees, targets and people joined), 7-9 the audit event.
    with django_assert_num_queries(9):
        assert compliance.get("/grants/").status_code == 200


@pytest.mark.postgres
def test_event_search_query_count_does_not_depend_on_page_size(
    client_for, world, settings, django_assert_num_queries
):
    auditor = client_for("auditor")
    auditor.get("/audit/events/")
    for size in (5, 50):
        settings.WEB_PAGE_SIZE = size
        # 1 session, 2 user with their organisation, 3 the count of matching events, 4 the page of events,
        # 5 their subjects, 6-8 the audit event (SAVEPOINT, INSERT, RELEASE).
        with django_assert_num_queries(8):
            assert auditor.get("/audit/events/").status_code == 200
