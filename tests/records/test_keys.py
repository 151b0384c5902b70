"""The consumer key tables: filled by every path that writes consumers, holding the uniqueness of public ids
and resident IDs, and the lookups through them (one statement, or two with PORTAL_CITUS) finding exactly
what the consumer columns say. On PostgreSQL also: the distribution keys and the partitions' constraints."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.records import identifiers, loader, partitions, selectors, synthetic, tasks
from portal.records.models import Consumer, ConsumerPhone, ConsumerPublicId, ConsumerResidentId
from tests.records.test_partitions import make_transaction

END = date(2026, 11, 1)

pytestmark = pytest.mark.django_db


def new_consumer(public_id: str, resident_id: str, phone: str = "13800000000") -> Consumer:
    return Consumer.objects.create(
        public_id=public_id,
        name="王小明",
        resident_id=resident_id,
        phone=phone,
        province="北京市",
        city="北京市",
        birth_year=1990,
        joined_on=date(2020, 1, 1),
    )


def key_rows() -> set[tuple[str, str, int]]:
    return {
        *(("public_id", k, c) for k, c in ConsumerPublicId.objects.values_list("public_id", "consumer_id")),
        *(
            ("resident_id", k, c)
            for k, c in ConsumerResidentId.objects.values_list("resident_id_hmac", "consumer_id")
        ),
        *(("phone", k, c) for k, c in ConsumerPhone.objects.values_list("phone_hmac", "consumer_id")),
    }


def derived_rows() -> set[tuple[str, str, int]]:
    rows: set[tuple[str, str, int]] = set()
    for cid, public_id, rid, phone in Consumer.objects.values_list(
        "id", "public_id", "resident_id_hmac", "phone_hmac"
    ):
        rows |= {("public_id", public_id, cid), ("resident_id", rid, cid), ("phone", phone, cid)}
    return rows


def test_saving_a_consumer_writes_its_keys_and_an_update_replaces_them():
    consumer = new_consumer("C000000000000001A", "110101199003070011")
    assert key_rows() == derived_rows()
    consumer.resident_id, consumer.phone = "110101199003070038", "13900000000"
    consumer.save()
    assert key_rows() == derived_rows()
    assert len(key_rows()) == 3  # the old hashes are gone


def test_a_public_id_or_resident_id_taken_twice_is_refused_by_the_key_tables():
    new_consumer("C000000000000001A", "110101199003070011")
    with pytest.raises(IntegrityError), transaction.atomic():
        new_consumer("C000000000000001A", "110101199003070038")
    with pytest.raises(IntegrityError), transaction.atomic():
        new_consumer("C000000000000002B", "110101199003070011")
    # A shared phone number is allowed (households): both consumers keep a phone key.
    new_consumer("C000000000000003C", "110101199003070054")
    assert Consumer.objects.count() == ConsumerPhone.objects.count() == 2
    assert ConsumerPhone.objects.values("phone_hmac").distinct().count() == 1


def test_the_loader_writes_the_keys_of_every_chunk():
    loader.load(seed=5, consumers=30, end=END, chunk_size=7)
    assert ConsumerPublicId.objects.count() == 30
    assert key_rows() == derived_rows()


def test_lookups_through_the_keys_find_what_the_consumer_columns_say(settings):
    loader.load(seed=5, consumers=12, end=END)
    rows = list(synthetic.generate(5, 0, 12, END))
    for citus in (False, True):
        settings.PORTAL_CITUS = citus
        for row in rows[:4]:
            expected = Consumer.objects.get(public_id=row.public_id)
            assert list(selectors.consumers_by_public_id(row.public_id)) == [expected]
            for term in (row.public_id, row.resident_id, row.phone):
                found = set(Consumer.objects.filter(selectors.identifier_condition(term)))
                hashes = (
                    identifiers.search_hashes(identifiers.RESIDENT_ID, term),
                    identifiers.search_hashes(identifiers.PHONE, term),
                )
                assert found == set(
                    Consumer.objects.filter(public_id=term)
                    | Consumer.objects.filter(resident_id_hmac__in=hashes[0])
                    | Consumer.objects.filter(phone_hmac__in=hashes[1])
                )
                assert expected in found
        assert not selectors.consumers_by_public_id("C0000000000000000").exists()
        assert not Consumer.objects.filter(selectors.identifier_condition("not an identifier")).exists()


def test_with_citus_routing_the_key_lookup_is_its_own_statement_and_the_read_names_the_id(settings):
    consumer = new_consumer("C000000000000001A", "110101199003070011")
    settings.PORTAL_CITUS = False
    with CaptureQueriesContext(connection) as plain:
        assert selectors.consumers_by_public_id(consumer.public_id).get() == consumer
    settings.PORTAL_CITUS = True
    with CaptureQueriesContext(connection) as routed:
        assert selectors.consumers_by_public_id(consumer.public_id).get() == consumer
    # Plain: one statement (the key table as a subquery). Citus: the key table by public id, then the
    # consumer by its id as a constant (what shard pruning needs).
    assert len(plain) == 1 and len(routed) == 2
    assert "records_consumerpublicid" in routed[0]["sql"]
    assert "records_consumerpublicid" not in routed[1]["sql"]
    assert f"IN ({consumer.pk})" in routed[1]["sql"]


@pytest.mark.postgres
def test_every_key_of_the_consumer_distributed_tables_holds_consumer_id():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, contype, ARRAY(SELECT attname FROM pg_attribute "
            "WHERE attrelid = conrelid AND attnum = ANY(conkey)) FROM pg_constraint "
            "WHERE contype IN ('p', 'u') AND conrelid = ANY(%s::regclass[])",
            [["records_account", "records_transaction", "records_segmentmembership", "scoring_creditscore"]],
        )
        keys = cursor.fetchall()
    assert {table for table, _kind, _columns in keys} == {
        "records_account",
        "records_transaction",
        "records_segmentmembership",
        "scoring_creditscore",
    }
    for table, _kind, columns in keys:
        assert "consumer_id" in columns, (table, columns)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = 'records_transaction'::regclass AND confrelid = 'records_account'::regclass"
        )
        assert cursor.fetchone()[0].startswith(
            "FOREIGN KEY (account_id, consumer_id) REFERENCES records_account(id, consumer_id)"
        )


def check_constraints(table: str) -> set[tuple[str, str, bool]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), conislocal FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'c'",
            [table],
        )
        return set(cursor.fetchall())


@pytest.mark.postgres
def test_a_new_month_partition_carries_exactly_its_parents_checks_inherited():
    old = make_transaction(datetime(2003, 2, 14, 9, tzinfo=UTC))  # waits in the default partition
    assert tasks.create_partitions.apply().get() == ["records_transaction_p2003_02"]
    parent = {(name, definition) for name, definition, _local in check_constraints(partitions.TABLE)}
    assert {"records_transaction_days_late_check", "txn_amount_positive"} <= {name for name, _ in parent}
    for part in partitions.transaction_partitions(connection):
        child = check_constraints(part)
        # Same names and definitions, none of them local: what PARTITION OF gives and Citus expects.
        assert {(name, definition) for name, definition, _local in child} == parent, part
        assert not any(local for _name, _definition, local in child), part
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM records_transaction WHERE id = %s", [old.id])
        assert cursor.fetchone()[0] == "records_transaction_p2003_02"
