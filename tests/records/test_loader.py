"""Bulk loading: counts, faithful round trips, idempotence, and refusal of bad input."""

import subprocess
import sys
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.records import loader, synthetic
from portal.records.models import Account, Consumer, Merchant, Segment, SegmentMembership, Transaction
from tests.conftest import ROOT

END = date(2026, 11, 1)
SEED = 11


def generated(count: int) -> list[synthetic.ConsumerRow]:
    return list(synthetic.generate(SEED, 0, count, END))


@pytest.mark.django_db
def test_load_writes_every_generated_row():
    result = loader.load(seed=SEED, consumers=25, end=END, chunk_size=10)
    rows = generated(25)
    assert Consumer.objects.count() == result.consumers == 25
    assert Account.objects.count() == result.accounts == sum(len(c.accounts) for c in rows)
    assert Transaction.objects.count() == result.transactions == sum(len(c.transactions) for c in rows)
    assert SegmentMembership.objects.count() == result.memberships == sum(len(c.segments) for c in rows)
    assert Segment.objects.count() == len(synthetic.SEGMENTS)
    assert Merchant.objects.count() == len(synthetic.merchants())


@pytest.mark.django_db
def test_loaded_rows_read_back_as_generated():
    loader.load(seed=SEED, consumers=5, end=END)
    for row in generated(5):
        consumer = Consumer.objects.get(public_id=row.public_id)
        assert (consumer.name, consumer.resident_id, consumer.phone) == (row.name, row.resident_id, row.phone)
        assert (consumer.province, consumer.city, consumer.birth_year) == (
            row.province,
            row.city,
            row.birth_year,
        )
        assert consumer.joined_on == row.joined_on
        assert str(consumer) == row.public_id
        merchants = synthetic.merchants()
        stored = sorted(
            (kind, int(amount * 100), int(occurred.timestamp()), due, late, product, code)
            for kind, amount, occurred, due, late, product, code in consumer.transactions.values_list(
                "kind", "amount", "occurred_at", "due_date", "days_late", "account__product", "merchant__code"
            )
        )
        expected = sorted(
            (
                kind,
                amount,
                epoch,
                due,
                late,
                synthetic.PRODUCTS[slot],
                None if merchant is None else merchants[merchant].code,
            )
            for slot, kind, amount, merchant, epoch, _channel, due, late in row.transactions
        )
        assert stored == expected


@pytest.mark.django_db
def test_times_are_stored_as_shanghai_instants():
    loader.load(seed=SEED, consumers=1, end=END)
    row = generated(1)[0]
    first = Transaction.objects.filter(consumer__public_id=row.public_id).earliest("occurred_at")
    local = timezone.localtime(first.occurred_at)
    assert str(local.tzinfo) == "Asia/Shanghai"
    assert int(first.occurred_at.timestamp()) == min(t[4] for t in row.transactions)


@pytest.mark.django_db
def test_loading_again_changes_nothing():
    loader.load(seed=SEED, consumers=20, end=END, chunk_size=10)
    before = (Consumer.objects.count(), Transaction.objects.count(), Account.objects.count())
    again = loader.load(seed=SEED, consumers=20, end=END, chunk_size=10)
    assert again.consumers == 0 and again.skipped_chunks == 2
    assert (Consumer.objects.count(), Transaction.objects.count(), Account.objects.count()) == before


@pytest.mark.django_db
def test_a_load_resumes_after_the_chunks_already_present():
    loader.load(seed=SEED, consumers=10, end=END, chunk_size=10)
    result = loader.load(seed=SEED, consumers=30, end=END, chunk_size=10)
    assert (result.skipped_chunks, result.consumers) == (1, 20)
    assert Consumer.objects.count() == 30


@pytest.mark.django_db
def test_a_partly_loaded_chunk_is_refused():
    loader.load(seed=SEED, consumers=10, end=END, chunk_size=10)
    with pytest.raises(loader.LoadError, match="partly loaded"):
        loader.load(seed=SEED, consumers=20, end=END, chunk_size=20)
    assert Consumer.objects.count() == 10


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-5", "0", "abc", "1.5"])
def test_bad_consumer_counts_are_refused_and_nothing_is_written(value):
    with pytest.raises(CommandError, match="--consumers"):
        call_command("load_synthetic", "--consumers", value)
    assert not Consumer.objects.exists()
    assert not Merchant.objects.exists()


def test_bad_input_exits_non_zero_with_a_clear_message():
    done = subprocess.run(
        [sys.executable, "manage.py", "load_synthetic", "--consumers", "-5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--consumers: must be at least 1, not -5" in done.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_load_synthetic_on_postgresql_loads_the_requested_counts():
    call_command(
        "load_synthetic", "--consumers", "300", "--seed", "4", "--chunk-size", "100", "--end", "2026-11-01"
    )
    rows = list(synthetic.generate(4, 0, 300, END))
    assert Consumer.objects.count() == 300
    assert Transaction.objects.count() == sum(len(c.transactions) for c in rows)
    assert SegmentMembership.objects.count() == sum(len(c.segments) for c in rows)


@pytest.mark.django_db
def test_a_single_consumer_loads_and_reloads():
    assert loader.load(seed=SEED, consumers=1, end=END).consumers == 1
    assert loader.load(seed=SEED, consumers=1, end=END).skipped_chunks == 1
