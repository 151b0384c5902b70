"""The fairness view of a segment: default rate and score distribution by province and by age band, under
the segment summary's gate and scope, small cells withheld, audited, fail-closed, in constant queries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models import Count

from audit.models import AuditEvent
from portal.access import masking
from portal.access.models import AccessGrant
from portal.records import selectors
from portal.records.models import Consumer, Transaction
from tests.api.test_permission_matrix import CASH, CCF, MALFORMED, SEGMENT_SUMMARY, YRD
from tests.api.test_records_api import wide_regulator  # noqa: F401  (a fixture)
from tests.audit.test_fail_closed import refusing_inserts


def fairness(segment_id) -> str:
    return f"/api/v1/segments/{segment_id}/fairness/"


def test_fairness_follows_the_summary_role_gate_and_scope(api, demo):
    ids = [demo.segment(CCF).pk, demo.segment(YRD).pk, demo.segment(CASH).pk, 999_999]
    failures = []
    for role, expected_row in SEGMENT_SUMMARY.items():
        for segment_id, expected in zip(ids, expected_row, strict=True):
            response = api(role).get(fairness(segment_id))
            if response.status_code != expected:
                failures.append(
                    f"{role} fairness of {segment_id}: {response.status_code}, expected {expected}"
                )
            if expected == 404:
                assert response.json() == {"detail": "Not found."}
    assert not failures, "\n".join(failures)


def test_fairness_without_credentials_is_401(api, demo):
    response = api(None).get(fairness(demo.segment(YRD).pk))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("malformed", MALFORMED)
def test_a_malformed_segment_id_is_a_plain_404(api, demo, malformed):
    response = api("shareholder").get(fairness(malformed))
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def test_an_unknown_parameter_is_400_naming_it(api, demo):
    response = api("shareholder").get(fairness(demo.segment(YRD).pk), {"province": "x"})
    assert response.status_code == 400 and "province" in response.json()


def _cells(body: dict) -> list[dict]:
    return body["by_province"] + body["by_age_band"]


def test_figures_match_the_records_and_small_cells_are_withheld(api, demo):
    segment = demo.segment(YRD)
    body = api("shareholder").get(fairness(segment.pk)).json()
    members = Consumer.objects.filter(memberships__segment=segment)
    by_province = dict(members.values_list("province").annotate(n=Count("pk")))
    assert {c["key"] for c in body["by_province"]} == set(by_province)
    assert sum(c["consumers"] or 0 for c in body["by_province"]) <= members.count()
    for cell in _cells(body):
        if cell["suppressed"]:
            assert cell["consumers"] is None and cell["default_rate"] is None
            assert cell["defaulted_consumers"] is None and cell["delinquency_rate"] is None
            assert all(b["consumers"] is None for b in cell["score_histogram"])
        else:
            assert cell["consumers"] >= 10
        assert all(b["consumers"] is None or b["consumers"] >= 10 for b in cell["score_histogram"])
        for numerator in ("defaulted_consumers", "delinquent_consumers"):
            if cell[numerator] is not None:
                assert cell[numerator] >= 10 and cell["consumers"] - cell[numerator] >= 10
    # Never exactly one withheld province: its count would follow from the segment's published total.
    assert sum(1 for c in body["by_province"] if c["suppressed"]) != 1
    shown = [c for c in body["by_province"] if not c["suppressed"]]
    assert shown, "the demo segment has a province of ten or more consumers"
    for cell in shown:
        assert cell["consumers"] == by_province[cell["key"]]
    # The age bands partition the same consumers; each shown band's count matches the birth years.
    this_year = datetime.now(UTC).astimezone(selectors.timezone.get_default_timezone()).year
    for cell in body["by_age_band"]:
        if cell["suppressed"]:
            continue
        low = int(cell["key"].split("-")[0].rstrip("+"))
        high = int(cell["key"].split("-")[1]) if "-" in cell["key"] else 200
        expected = members.filter(birth_year__lte=this_year - low, birth_year__gte=this_year - high).count()
        assert cell["consumers"] == expected, cell["key"]
    assert body["suppressed_below"] == 10
    assert not any(key in str(body) for key in ("resident_id", "phone", "public_id"))


def test_default_rate_counts_repayments_paid_ninety_days_late_in_the_window(demo):
    segment = demo.segment(CCF)
    raw = selectors.segment_fairness_figures(segment.pk)
    since = selectors._window_start(None, 12)
    late = Transaction.objects.filter(
        consumer__memberships__segment=segment,
        kind=Transaction.Kind.REPAYMENT,
        due_date__gte=since.date(),
        occurred_at__gte=since - selectors.timedelta(days=selectors.REPAYMENT_MAX_DAYS_EARLY),
    )
    for dimension in ("province", "age_band"):
        cells = dict(raw[dimension])
        assert (
            sum(c["consumers"] for c in cells.values())
            == Consumer.objects.filter(memberships__segment=segment).count()
        )
        assert sum(c["defaulted"] for c in cells.values()) == (
            late.filter(days_late__gte=90).values("consumer_id").distinct().count()
        )
        # The 30+ figure is the summary's delinquent count, split.
        assert (
            sum(c["delinquent"] for c in cells.values())
            == (selectors.segment_figures(segment.pk)["delinquent_consumers"])
        )


def test_age_band_uses_the_year_in_china_standard_time(demo):
    segment = demo.segment(CCF)
    consumer = Consumer.objects.filter(memberships__segment=segment).order_by("pk")[0]
    # 2026-12-31 17:00 UTC is already 2027 in Beijing: someone born in 2002 is counted as 25 there.
    Consumer.objects.filter(pk=consumer.pk).update(birth_year=2002)
    at = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    bands = dict(selectors.segment_fairness_figures(segment.pk, now=at)["age_band"])
    born_2002 = Consumer.objects.filter(memberships__segment=segment, birth_year=2002).count()
    born_2003_to_2009 = Consumer.objects.filter(
        memberships__segment=segment, birth_year__gte=2003, birth_year__lte=2009
    ).count()
    assert bands.get("18-24", {"consumers": 0})["consumers"] == born_2003_to_2009
    assert bands["25-34"]["consumers"] >= born_2002


def test_one_small_cell_takes_another_with_it():
    buckets = [(300, 350), (350, 400)]

    def cell(n: int, histogram: list[int], defaulted: int = 0) -> dict:
        return {"consumers": n, "histogram": histogram, "delinquent": defaulted, "defaulted": defaulted}

    shown = masking.suppress_fairness_dimension(
        [("a", cell(40, [20, 20], 15)), ("b", cell(30, [15, 15], 12)), ("c", cell(3, [1, 2], 1))], buckets
    )
    assert [c["suppressed"] for c in shown] == [False, True, True]  # b goes with c: total minus a would tell
    assert shown[0]["consumers"] == 40 and shown[0]["default_rate"] == round(15 / 40, 4)
    # Had only b defaulters among the withheld, a's count of them would give b's away (total minus a).
    alone = masking.suppress_fairness_dimension(
        [("a", cell(40, [20, 20], 15)), ("b", cell(30, [15, 15], 12)), ("c", cell(3, [1, 2]))], buckets
    )
    assert alone[0]["consumers"] == 40 and alone[0]["default_rate"] is None
    # Histogram columns add up to the summary's buckets: a withheld row is not recoverable from them either.
    assert all(b["consumers"] is None for c in shown[1:] for b in c["score_histogram"])
    # A rate withheld in one cell only (too few defaulters) takes the smallest other one with it.
    rates = masking.suppress_fairness_dimension(
        [("a", cell(60, [30, 30], 20)), ("b", cell(50, [25, 25], 15)), ("c", cell(40, [20, 20], 4))], buckets
    )
    assert [c["default_rate"] is None for c in rates] == [False, True, True]
    # A single withheld bucket in a shown row takes another bucket of that row with it.
    histogram = masking.suppress_fairness_dimension(
        [("a", cell(40, [35, 5])), ("b", cell(40, [20, 20]))], buckets
    )
    assert [b["consumers"] for b in histogram[0]["score_histogram"]] == [None, None]


def test_fairness_is_audited_under_the_covering_grant(api, demo):
    segment = demo.segment(YRD)
    api("shareholder").get(fairness(segment.pk))
    event = AuditEvent.objects.filter(action="segment.fairness").latest("id")
    grant = AccessGrant.objects.get(case_reference="SH-A-2026-Q3-DELTA")
    assert (event.outcome, event.status, event.resource_kind, event.requested_id) == (
        "allowed",
        200,
        "segment",
        str(segment.pk),
    )
    assert event.grant_id == grant.pk and event.purpose == grant.purpose
    api("shareholder").get(fairness(demo.segment(CASH).pk))
    denied = AuditEvent.objects.filter(action="segment.fairness").latest("id")
    assert (denied.status, denied.requested_id) == (404, str(demo.segment(CASH).pk))


def test_no_figures_leave_when_the_audit_event_cannot_be_written(api, demo):
    client = api("shareholder")
    with refusing_inserts("audit_auditevent"):
        refused = client.get(fairness(demo.segment(YRD).pk))
    assert refused.status_code == 503
    assert b"by_province" not in refused.content


def test_query_count_does_not_depend_on_the_segment_size(
    wide_regulator,  # noqa: F811  (the fixture imported above)
    demo,
    django_assert_num_queries,
):
    small, large = demo.segment(CCF), demo.segment("revolving-credit")
    assert small.consumers.count() != large.consumers.count()
    # 1 token with its user and organisation; 2 the valid grants with guardian's rows for them; 3 the segment;
    # 4 members by (province, age band, score bucket); 5 late payers by (province, age band);
    # 6-8 the audit event: savepoint, insert event, release.
    for segment in (small, large):
        with django_assert_num_queries(8):
            assert wide_regulator.get(fairness(segment.pk)).status_code == 200
