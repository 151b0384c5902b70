"""Monthly partitions of the transactions table (PostgreSQL): where rows land, the idempotent job, and the
partitions the access policy's list, the score refresh and the segment delinquency queries actually scan
(their EXPLAIN)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.records import partitions, tasks
from portal.records.models import Account, Consumer, Transaction

THIS_MONTH = partitions.month_start(datetime.now(UTC))


def partition_of(txn: Transaction) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM records_transaction WHERE id = %s", [txn.id])
        return cursor.fetchone()[0]


def make_transaction(moment: datetime) -> Transaction:
    consumer = Consumer.objects.first() or Consumer.objects.create(
        name="王小明",
        resident_id="110101199003070011",
        phone="13800000000",
        province="北京市",
        city="北京市",
        birth_year=1990,
        joined_on=date(2020, 1, 1),
    )
    account = Account.objects.filter(consumer=consumer).first() or Account.objects.create(
        consumer=consumer, product=Account.Product.WALLET, balance=Decimal("0"), opened_on=date(2020, 1, 1)
    )
    return Transaction.objects.create(
        consumer=consumer,
        account=account,
        kind=Transaction.Kind.PAYMENT,
        amount=Decimal("12.50"),
        occurred_at=moment,
        channel=Transaction.Channel.APP,
    )


def scanned(sql: str) -> set[str]:
    """The transaction partitions a statement's plan reads (plan-time pruning: EXPLAIN without ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        name = node.get("Relation Name", "")
        if name.startswith(partitions.TABLE):
            found.add(name)
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def month_of(name: str) -> date | None:
    match = re.fullmatch(rf"{partitions.TABLE}_p(\d{{4}})_(\d\d)", name)
    return date(int(match[1]), int(match[2]), 1) if match else None


@pytest.mark.django_db
def test_the_partition_jobs_are_on_the_one_schedule_and_run_on_every_database():
    from portal.celery import EmbeddedBeat, app

    scheduled = {entry["task"] for entry in EmbeddedBeat.entries().values()}
    assert {"records.create_partitions", "audit.create_partitions"} <= scheduled
    for name in ("records.create_partitions", "audit.create_partitions"):
        created = app.tasks[name].apply().get()
        # SQLite keeps plain tables: nothing to create. PostgreSQL: the migrations made three months ahead.
        assert created == []
    assert partitions.partitioned(connection) == (connection.vendor == "postgresql")


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_land_in_the_partition_of_their_month():
    cases = {
        datetime(THIS_MONTH.year, THIS_MONTH.month, 1, 0, 0, tzinfo=UTC): partitions.partition_name(
            THIS_MONTH
        ),
        # Just before midnight UTC at a month's end: still that month, whatever the local time zone says.
        datetime(THIS_MONTH.year, THIS_MONTH.month, 1, tzinfo=UTC)
        - timedelta(microseconds=1): partitions.partition_name(partitions.add_months(THIS_MONTH, -1)),
        timezone.now(): partitions.partition_name(THIS_MONTH),
    }
    for moment, expected in cases.items():
        assert partition_of(make_transaction(moment)) == expected
    # Still addressed by id alone.
    txn = make_transaction(timezone.now())
    assert Transaction.objects.get(pk=txn.pk).occurred_at == txn.occurred_at


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_month_without_partition_waits_in_the_default_and_the_job_moves_it():
    old = make_transaction(datetime(2003, 2, 14, 9, tzinfo=UTC))
    assert partition_of(old) == partitions.DEFAULT_PARTITION
    created = tasks.create_partitions.apply().get()
    assert created == ["records_transaction_p2003_02"]
    assert partition_of(old) == "records_transaction_p2003_02"
    assert Transaction.objects.get(pk=old.pk).amount == Decimal("12.50")


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_partition_job_is_idempotent():
    first = tasks.create_partitions.apply(kwargs={"months_ahead": 5}).get()
    names = partitions.transaction_partitions(connection)
    assert first == [partitions.partition_name(partitions.add_months(THIS_MONTH, n)) for n in (4, 5)]
    assert tasks.create_partitions.apply(kwargs={"months_ahead": 5}).get() == []
    assert partitions.transaction_partitions(connection) == names


@pytest.mark.postgres
def test_the_transaction_list_scans_only_the_months_asked_for(api, demo):
    """The API's transaction list (policy.visible_transactions + since/until, as the view applies them)."""
    since = partitions.add_months(THIS_MONTH, -3) + timedelta(days=9)
    until = partitions.add_months(THIS_MONTH, -2) + timedelta(days=19)
    with CaptureQueriesContext(connection) as queries:
        response = api("regulator").get(
            "/api/v1/transactions/", {"since": since.isoformat(), "until": until.isoformat()}
        )
    assert response.status_code == 200 and response.json()["results"]
    listing = [q["sql"] for q in queries.captured_queries if 'FROM "records_transaction"' in q["sql"]]
    assert len(listing) == 1
    assert scanned(listing[0]) == {
        partitions.partition_name(partitions.add_months(THIS_MONTH, -3)),
        partitions.partition_name(partitions.add_months(THIS_MONTH, -2)),
    }


@pytest.mark.postgres
def test_the_score_refresh_does_not_scan_months_after_its_cut_off(demo):
    from scoring import services
    from scoring.models import ScoreChunk

    # The demo world's full run, started by seed_demo; inside this test's transaction its chunks wait for
    # a commit that never comes, so they are processed here, as the worker would.
    chunks = list(ScoreChunk.objects.exclude(status=ScoreChunk.Status.DONE).select_related("run"))
    assert chunks
    run = chunks[0].run
    with CaptureQueriesContext(connection) as queries:
        for chunk in chunks:
            services.score_chunk_process(chunk_id=chunk.pk, task_id="test-partitions")
    inserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT INTO scoring_creditscore ")
    ]
    assert inserts, "the refresh wrote no scores"
    cutoff_month = partitions.month_start(run.as_of.astimezone(UTC))
    every = set(partitions.transaction_partitions(connection))
    expected = {
        name
        for name in every
        if name == partitions.DEFAULT_PARTITION or month_of(name) <= cutoff_month  # type: ignore[operator]
    }
    assert partitions.partition_name(partitions.add_months(THIS_MONTH, 1)) in every - expected
    for sql in inserts:
        assert scanned(sql) == expected


def test_no_repayment_is_generated_before_its_due_date():
    """What the delinquency queries' time bound relies on: synthetic.py pays at the earliest at 08:00
    Shanghai time on the due date (midnight UTC), so REPAYMENT_MAX_DAYS_EARLY leaves a whole cycle spare."""
    from portal.records import selectors, synthetic

    most_early: timedelta | None = None
    repayments = 0
    for consumer in synthetic.generate(7, 0, 400, date(2026, 6, 30)):
        for _slot, kind, _amount, _merchant, epoch, _channel, due, _late in consumer.transactions:
            if kind != "repayment":
                continue
            assert due is not None
            repayments += 1
            due_midnight_utc = datetime(due.year, due.month, due.day, tzinfo=UTC)
            early = due_midnight_utc - datetime.fromtimestamp(epoch, UTC)
            most_early = early if most_early is None else max(most_early, early)
    assert repayments > 1000 and most_early is not None
    assert most_early <= timedelta(0) < timedelta(days=selectors.REPAYMENT_MAX_DAYS_EARLY)


def delinquency_figures(segment_ids: list[int]) -> list[Any]:
    from portal.records import selectors

    return [
        (
            selectors.segment_figures(pk)["delinquent_consumers"],
            selectors.segment_delinquency_by_month(pk),
        )
        for pk in segment_ids
    ]


@pytest.mark.postgres
def test_the_delinquency_queries_scan_only_the_months_their_repayments_can_be_in(demo, monkeypatch):
    from portal.records import selectors
    from portal.records.models import Segment

    now = timezone.now()
    since = selectors._window_start(now, 12)
    segment = Segment.objects.order_by("pk").first()
    assert segment is not None
    with CaptureQueriesContext(connection) as queries:
        selectors.segment_figures(segment.pk, now=now)
        selectors.segment_delinquency_by_month(segment.pk, now=now)
    delinquency = [q["sql"] for q in queries.captured_queries if '"due_date"' in q["sql"]]
    assert len(delinquency) == 2
    first = partitions.month_start(since - timedelta(days=selectors.REPAYMENT_MAX_DAYS_EARLY))
    every = set(partitions.transaction_partitions(connection))
    expected = {
        name
        for name in every
        if name == partitions.DEFAULT_PARTITION or month_of(name) >= first  # type: ignore[operator]
    }
    # The demo world's two years of history: the older months are not read at all.
    assert partitions.partition_name(partitions.add_months(first, -6)) in every - expected
    for sql in delinquency:
        assert scanned(sql) == expected

    # The bound changes nothing: the same figures as without it (a bound far enough back to hold every row),
    # for every segment of the demo world, and they are not all zero.
    assert not Transaction.objects.filter(
        kind=Transaction.Kind.REPAYMENT,
        occurred_at__lt=datetime(2000, 1, 1, tzinfo=UTC),
    ).exists()
    segments = list(Segment.objects.order_by("pk").values_list("pk", flat=True))
    bounded = delinquency_figures(segments)
    assert any(figures[0] for figures in bounded)
    monkeypatch.setattr(selectors, "REPAYMENT_MAX_DAYS_EARLY", (now.date() - date(2000, 1, 1)).days)
    assert delinquency_figures(segments) == bounded
