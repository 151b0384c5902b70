"""Reads over records that need no knowledge of who asks: callers pass only what the access policy allowed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncMonth
from django.utils import timezone

from portal.records import identifiers
from portal.records.models import Consumer, ConsumerPhone, ConsumerPublicId, ConsumerResidentId, Transaction

CENT = Decimal("0.01")
SCORE_BUCKET = 50
SCORE_MIN, SCORE_MAX = 300, 850
DELINQUENT_DAYS = 30
# How long before its due date a repayment may have been made. A repayment is never recorded earlier than this
# (portal/records/synthetic.py pays at the earliest on the due date itself, 08:00 Shanghai time, which is
# midnight UTC; a full instalment cycle more is allowed for a consumer who pays ahead), so the delinquency
# queries, which select repayments by due date, can also bound their time: the transactions table is
# partitioned by month of occurred_at, and without that bound they would read every month it holds.
REPAYMENT_MAX_DAYS_EARLY = 31


def _repayments_due_since(since: datetime) -> Q:
    """Repayments due on or after `since` (a UTC midnight), with the time bound that prunes partitions."""
    return Q(
        kind=Transaction.Kind.REPAYMENT,
        due_date__gte=since.date(),
        occurred_at__gte=since - timedelta(days=REPAYMENT_MAX_DAYS_EARLY),
    )


def segment_figures(segment_id: int, *, now: datetime | None = None, months: int = 12) -> dict[str, Any]:
    """Raw figures of one segment: members, score histogram, 30+ days delinquency over `months`, and monthly
    transaction volume. Four queries whatever the segment's size; suppression is the caller's job."""
    now = now or timezone.now()
    since = (now - timedelta(days=31 * months)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    members = Consumer.objects.filter(memberships__segment_id=segment_id)
    consumers = members.count()
    bucket = ExpressionWrapper((F("current_score") - SCORE_MIN) / SCORE_BUCKET, output_field=IntegerField())
    by_bucket = dict(
        members.filter(current_score__isnull=False)
        .annotate(bucket=bucket)
        .values_list("bucket")
        .annotate(n=Count("pk"))
        .values_list("bucket", "n")
    )
    histogram = [
        {"from": low, "to": min(low + SCORE_BUCKET, SCORE_MAX), "consumers": by_bucket.get(index, 0)}
        for index, low in enumerate(range(SCORE_MIN, SCORE_MAX, SCORE_BUCKET))
    ]
    histogram[-1]["consumers"] += by_bucket.get(len(histogram), 0)  # 850 itself closes the last bucket
    delinquent = (
        Transaction.objects.filter(
            _repayments_due_since(since),
            consumer__memberships__segment_id=segment_id,
            days_late__gte=DELINQUENT_DAYS,
        )
        .values("consumer_id")
        .distinct()
        .count()
    )
    monthly = (
        Transaction.objects.filter(consumer__memberships__segment_id=segment_id, occurred_at__gte=since)
        .annotate(month=TruncMonth("occurred_at"))
        .values("month")
        .annotate(
            transactions=Count("pk"), amount=Sum("amount"), consumers=Count("consumer_id", distinct=True)
        )
        .order_by("month")
    )
    return {
        "consumers": consumers,
        "score_histogram": histogram,
        "delinquent_consumers": delinquent,
        "delinquency_window_months": months,
        "monthly_volume": [
            {
                "month": row["month"].strftime("%Y-%m"),
                "transactions": row["transactions"],
                "amount": str(Decimal(row["amount"]).quantize(CENT)),
                "consumers": row["consumers"],
            }
            for row in monthly
        ],
    }


def _window_start(now: datetime | None, months: int) -> datetime:
    now = now or timezone.now()
    return (now - timedelta(days=31 * months)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def segment_delinquency_by_month(
    segment_id: int, *, now: datetime | None = None, months: int = 12
) -> list[dict[str, Any]]:
    """Per month of due date: consumers with a repayment due, and those of them who paid 30+ days late.
    One query whatever the segment's size; suppression is the caller's job."""
    rows = (
        Transaction.objects.filter(
            _repayments_due_since(_window_start(now, months)), consumer__memberships__segment_id=segment_id
        )
        .annotate(month=TruncMonth("due_date"))
        .values("month")
        .annotate(
            consumers=Count("consumer_id", distinct=True),
            delinquent=Count("consumer_id", distinct=True, filter=Q(days_late__gte=DELINQUENT_DAYS)),
        )
        .order_by("month")
    )
    return [
        {
            "month": row["month"].strftime("%Y-%m"),
            "consumers": row["consumers"],
            "delinquent": row["delinquent"],
        }
        for row in rows
    ]


def segment_volume_by_product(
    segment_id: int, *, now: datetime | None = None, months: int = 12
) -> list[dict[str, Any]]:
    """Per month and account product: transactions, amount (CNY) and distinct consumers. One query."""
    rows = (
        Transaction.objects.filter(
            consumer__memberships__segment_id=segment_id, occurred_at__gte=_window_start(now, months)
        )
        .annotate(month=TruncMonth("occurred_at"))
        .values("month", "account__product")
        .annotate(
            transactions=Count("pk"), amount=Sum("amount"), consumers=Count("consumer_id", distinct=True)
        )
        .order_by("month", "account__product")
    )
    return [
        {
            "month": row["month"].strftime("%Y-%m"),
            "product": row["account__product"],
            "transactions": row["transactions"],
            "amount": Decimal(row["amount"]).quantize(CENT),
            "consumers": row["consumers"],
        }
        for row in rows
    ]


# --- Consumers by the identifiers a request names -----------------------------------------------------------
# Through the key tables, keyed (on Citus: distributed) by the identifier, so that the final read of the
# consumer has equality on its id, the distribution column. On plain PostgreSQL and SQLite the key lookup is a
# subquery of the one statement; with PORTAL_CITUS it runs first, on its own, because Citus prunes shards only
# on values known when it plans (a subquery's result is not), so the consumer read names its ids as constants
# and reaches their shards only: one statement more, both single-shard (deploy/SCALING.md §3.2).
def consumers_by_public_id(public_id: str) -> QuerySet[Consumer]:
    """The consumer with this public id (none or one)."""
    keys = ConsumerPublicId.objects.filter(public_id=public_id).values("consumer_id")
    if settings.PORTAL_CITUS:
        return Consumer.objects.filter(pk__in=list(keys.values_list("consumer_id", flat=True)))
    return Consumer.objects.filter(pk__in=Subquery(keys))


def identifier_condition(term: str) -> Q:
    """Consumers whose public id, resident ID or phone number is exactly `term` (identifiers are found by
    their keyed hashes under every configured key), as a condition on the consumer's id."""
    keys = [
        ConsumerPublicId.objects.filter(public_id=term).values("consumer_id"),
        ConsumerResidentId.objects.filter(
            resident_id_hmac__in=identifiers.search_hashes(identifiers.RESIDENT_ID, term)
        ).values("consumer_id"),
        ConsumerPhone.objects.filter(
            phone_hmac__in=identifiers.search_hashes(identifiers.PHONE, term)
        ).values("consumer_id"),
    ]
    if settings.PORTAL_CITUS:
        first, *rest = keys
        return Q(pk__in=set(first.union(*rest, all=True).values_list("consumer_id", flat=True)))
    return Q(pk__in=keys[0]) | Q(pk__in=keys[1]) | Q(pk__in=keys[2])


DEFAULT_DAYS = 90
# Age bands of the fairness view, by age reached this calendar year in China Standard Time (only the birth
# year is kept). Consumers are adults, so the first band starts at 18; anyone recorded younger falls into it.
AGE_BANDS = (("18-24", 25), ("25-34", 35), ("35-44", 45), ("45-54", 55), ("55+", None))


def _age_band(this_year: int) -> Case:
    """The age band of a consumer row as a SQL CASE."""
    whens = [
        When(birth_year__gt=this_year - below, then=Value(key))
        for key, below in AGE_BANDS
        if below is not None
    ]
    return Case(*whens, default=Value(AGE_BANDS[-1][0]), output_field=CharField())


def segment_fairness_figures(
    segment_id: int, *, now: datetime | None = None, months: int = 12
) -> dict[str, Any]:
    """Raw figures of one segment by province and by age band: members per score bucket (the summary's
    histogram buckets), and consumers with a repayment due in the summary's window paid 30+ days late
    (delinquent, as the summary counts) and 90+ days late (defaulted, the scoring outcome's threshold).

    Two grouped queries whatever the segment's size: members by (province, band, bucket) and late payers
    by (province, band); both dimensions are folded from them. Suppression is the caller's job."""
    now = now or timezone.now()
    since = _window_start(now, months)
    this_year = timezone.localtime(now).year  # China Standard Time: the settings' zone
    bucket = ExpressionWrapper((F("current_score") - SCORE_MIN) / SCORE_BUCKET, output_field=IntegerField())
    members = (
        Consumer.objects.filter(memberships__segment_id=segment_id)
        .annotate(band=_age_band(this_year), bucket=bucket)
        .values("province", "band", "bucket")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("province", "band", "bucket", "n")
    )
    late = (
        Consumer.objects.filter(memberships__segment_id=segment_id)
        .annotate(band=_age_band(this_year))
        .filter(
            transactions__kind=Transaction.Kind.REPAYMENT,
            transactions__due_date__gte=since.date(),
            transactions__occurred_at__gte=since - timedelta(days=REPAYMENT_MAX_DAYS_EARLY),
            transactions__days_late__gte=DELINQUENT_DAYS,
        )
        .values("province", "band")
        .annotate(
            delinquent=Count("pk", distinct=True),
            defaulted=Count("pk", distinct=True, filter=Q(transactions__days_late__gte=DEFAULT_DAYS)),
        )
        .order_by()
        .values_list("province", "band", "delinquent", "defaulted")
    )
    buckets = len(range(SCORE_MIN, SCORE_MAX, SCORE_BUCKET))
    dimensions: dict[str, dict[str, dict[str, Any]]] = {"province": {}, "age_band": {}}

    def cell(dimension: str, key: str) -> dict[str, Any]:
        return dimensions[dimension].setdefault(
            key, {"consumers": 0, "histogram": [0] * buckets, "delinquent": 0, "defaulted": 0}
        )

    for province, band, index, n in members:
        for dimension, key in (("province", province), ("age_band", band)):
            found = cell(dimension, key)
            found["consumers"] += n
            if index is not None:
                found["histogram"][min(index, buckets - 1)] += n  # 850 itself closes the last bucket
    # A consumer is in exactly one (province, band) pair, so distinct counts per pair add up per dimension.
    for province, band, delinquent, defaulted in late:
        for dimension, key in (("province", province), ("age_band", band)):
            found = cell(dimension, key)
            found["delinquent"] += delinquent
            found["defaulted"] += defaulted
    band_order = [key for key, _below in AGE_BANDS]
    return {
        "buckets": [
            (low, min(low + SCORE_BUCKET, SCORE_MAX)) for low in range(SCORE_MIN, SCORE_MAX, SCORE_BUCKET)
        ],
        "window_months": months,
        "province": sorted(dimensions["province"].items()),
        "age_band": sorted(dimensions["age_band"].items(), key=lambda item: band_order.index(item[0])),
    }
