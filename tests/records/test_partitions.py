"""Monthly partitions of the transactions table (PostgreSQL): where rows land, the idempotent job, and the
partitions the access policy's list and the score refresh actually scan (their EXPLAIN)."""

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
