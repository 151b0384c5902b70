"""The feature SQL and the scoring SQL against plain-Python references, on a small loaded world."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from portal.records.models import Account, Consumer, Transaction
from scoring import features
from scoring.features import CODES, Window, cutoff_of, months_before, query_features
from scoring.scorecards import SCORED_COLUMNS, max_points, score_features, scored_sql

CREDIT = {"credit_line", "instalment_loan", "cash_loan"}
LOANS = {"instalment_loan", "cash_loan"}


def fen(amount: Decimal | None) -> int:
    assert amount is not None
    return int(amount * 100)


def reference_features(consumer: Consumer, window: Window) -> dict[str, int | None]:
    """Each feature as its definition reads, from the ORM, one consumer at a time."""
    as_of = window.as_of
    local = timezone.localtime(window.cutoff)
    txns = list(
        Transaction.objects.filter(consumer=consumer, occurred_at__lt=window.cutoff, id__lte=window.watermark)
        .select_related("account")
        .order_by("id")
    )
    accounts = list(Account.objects.filter(consumer=consumer, opened_on__lt=as_of))
    repayments = [t for t in txns if t.kind == "repayment"]
    late = [t for t in repayments if t.days_late]
    result: dict[str, int | None] = dict.fromkeys(CODES)
    if repayments:
        result["late_share_pct"] = 100 * len(late) // len(repayments)
        result["max_days_late"] = max(t.days_late or 0 for t in repayments)
        result["late_6m"] = sum(1 for t in late if t.occurred_at >= months_before(local, 6))
    lines = [a for a in accounts if a.product == "credit_line"]
    if lines and sum(fen(a.credit_limit) for a in lines) > 0:
        spend = sum(
            fen(t.amount)
            for t in txns
            if t.kind == "payment"
            and t.account.product == "credit_line"
            and t.occurred_at >= months_before(local, 3)
        )
        result["utilisation_pct"] = 100 * spend // (3 * sum(fen(a.credit_limit) for a in lines))
    loans = [a for a in accounts if a.product in LOANS]
    if loans:
        principal = sum(fen(a.credit_limit) for a in loans)
        repaid = sum(fen(t.amount) for t in repayments if t.account.product in LOANS)
        result["loan_outstanding_pct"] = 0 if repaid >= principal else 100 * (principal - repaid) // principal
    inflows = [t for t in txns if t.kind == "transfer_in" and t.occurred_at >= months_before(local, 12)]
    if inflows:
        result["inflow_avg"] = sum(fen(t.amount) for t in inflows) // (100 * len(inflows))
    result["months_on_book"] = max((as_of - consumer.joined_on).days, 0) // 30
    credit = [a for a in accounts if a.product in CREDIT]
    if credit:
        result["oldest_credit_months"] = (as_of - min(a.opened_on for a in credit)).days // 30
    new_from = months_before(local, 6).date()
    result["new_credit_6m"] = sum(1 for a in credit if a.opened_on >= new_from)
    result["credit_kinds"] = len({a.product for a in credit})
    result["savings_products"] = len(
        {a.product for a in accounts if a.product in {"money_fund", "insurance"}}
    )
    return result


def _range() -> tuple[int, int]:
    ids = list(Consumer.objects.order_by("id").values_list("id", flat=True))
    return ids[0], ids[-1]


@pytest.mark.parametrize("as_of", [date(2025, 11, 1), date(2026, 5, 17)])
def test_feature_sql_matches_the_python_reference(world, as_of):
    lo, hi = _range()
    window = Window(cutoff=cutoff_of(as_of))
    computed = query_features(connection, lo=lo, hi=hi, window=window)
    assert len(computed) == Consumer.objects.count() == 60
    for consumer in Consumer.objects.all():
        assert computed[consumer.pk] == reference_features(consumer, window), consumer.pk
    # The world exercises every feature, missing and present.
    for code in CODES:
        assert len({row[code] for row in computed.values()}) > 1, code


def test_features_see_only_transactions_up_to_the_watermark_and_before_the_cut_off(world):
    lo, hi = _range()
    top = Transaction.objects.aggregate(top=Max("id"))["top"]
    window = Window(cutoff=cutoff_of(date(2026, 11, 1)), watermark=top - 500)
    computed = query_features(connection, lo=lo, hi=hi, window=window)
    for consumer in Consumer.objects.all():
        assert computed[consumer.pk] == reference_features(consumer, window)
    # A repayment paid on the cut-off day itself is not seen; one a second before is.
    consumer = Consumer.objects.get(pk=lo)
    account = Account.objects.create(
        consumer=consumer, product="cash_loan", credit_limit=1000, balance=0, opened_on=date(2024, 1, 1)
    )
    cutoff = cutoff_of(date(2026, 11, 1))
    for when in (cutoff, cutoff - timedelta(seconds=1)):
        Transaction.objects.create(
            consumer=consumer,
            account=account,
            kind="repayment",
            amount=100,
            occurred_at=when,
            channel="app",
            due_date=date(2026, 8, 1),
            days_late=91,
        )
    seen = query_features(connection, lo=lo, hi=lo, window=Window(cutoff=cutoff))[lo]
    assert seen["max_days_late"] == 91
    assert seen == reference_features(consumer, Window(cutoff=cutoff))


def test_scoring_sql_matches_the_python_scorecard(world, scorecard):
    lo, hi = _range()
    window = Window(cutoff=cutoff_of(date(2026, 11, 1)))
    expected = {
        cid: score_features(scorecard, row)
        for cid, row in query_features(connection, lo=lo, hi=hi, window=window).items()
    }
    ctes, select, params = scored_sql(connection, scorecard)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} {select}", {**params, **window.params(connection), "lo": lo, "hi": hi})
        rows = [dict(zip(SCORED_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    assert len(rows) == 60
    with_reasons = 0
    for row in rows:
        scored = expected[row["consumer_id"]]
        assert row["value"] == scored.value
        assert row["features_hash"] == scored.features_hash
        reasons = [
            (
                row[f"reason_{slot}_code"],
                row[f"reason_{slot}_en"],
                row[f"reason_{slot}_zh"],
                row[f"reason_{slot}_points"],
            )
            for slot in range(1, 5)
            if row[f"reason_{slot}_code"]
        ]
        assert reasons == [(r.code, r.text_en, r.text_zh, r.points_lost) for r in scored.reasons]
        # Points lost per characteristic add up exactly to the maximum minus the unclipped score.
        lost = row["points_lost"] if isinstance(row["points_lost"], dict) else json.loads(row["points_lost"])
        assert lost == scored.points_lost and set(lost) == {f["code"] for f in scorecard.features}
        assert row["unclipped"] == scored.unclipped
        assert sum(lost.values()) == max_points(scorecard) - row["unclipped"]
        assert min(lost.values()) >= 0
        assert row["value"] == min(850, max(300, row["unclipped"]))
        # Most points lost first.
        assert [r[3] for r in reasons] == sorted((r[3] for r in reasons), reverse=True)
        with_reasons += bool(reasons)
    assert with_reasons > 30
    assert len({row["value"] for row in rows}) > 20


def test_snapshot_hash_covers_every_feature_in_scorecard_order():
    row = dict.fromkeys(CODES, 1)
    text = features.snapshot_text({**row, "late_share_pct": None}, CODES)
    assert text.startswith("late_share_pct=;max_days_late=1;")
    assert features.snapshot_hash(row, CODES) != features.snapshot_hash({**row, "late_6m": 2}, CODES)
