"""On PostgreSQL: no table holds a resident ID or phone number in clear, yet exact search by them works."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from portal.access import policy
from portal.accounts.models import User
from portal.records.models import Consumer, Segment
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.postgres

CCF = "chengdu-chongqing-consumer-finance"


@pytest.fixture
def demo(db) -> None:
    call_command("seed_demo", "--consumers", "300", verbosity=0)


def in_scope(count: int) -> list[Consumer]:
    segment = Segment.objects.get(slug=CCF)
    return list(Consumer.objects.filter(memberships__segment=segment).order_by("public_id")[:count])


def database_dump() -> str:
    """Every row of every table of the database, as COPY text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%'"
        )
        tables = [row[0] for row in cursor.fetchall()]
        dump = io.StringIO()
        for table in tables:
            # Names quoted by format('%I') in the catalogue query above.
            cursor.cursor.copy_expert(f"COPY (SELECT * FROM {table}) TO STDOUT", dump)  # noqa: S608
    assert "records_consumer" in " ".join(tables) and "audit_auditevent" in " ".join(tables)
    return dump.getvalue()


def test_no_table_holds_an_identifier_in_clear_yet_exact_search_finds_it(demo):
    consumers = in_scope(8)
    assert len(consumers) == 8
    client = ApiClient(User.objects.get(username="regulator"))
    scope = policy.scope_for(User.objects.get(username="regulator"))
    for consumer in consumers:
        typed_phone = f"+86 {consumer.phone[:3]} {consumer.phone[3:7]} {consumer.phone[7:]}"
        for term in (consumer.resident_id, consumer.resident_id.lower(), consumer.phone, typed_phone):
            response = client.get("/api/v1/consumers/", {"q": term})
            assert response.status_code == 200
            results = response.json()["results"]
            assert [(c["public_id"], c["resident_id"], c["phone"]) for c in results] == [
                (consumer.public_id, consumer.resident_id, consumer.phone)
            ]
            assert list(policy.search_consumers(scope, term)) == [consumer]
        detail = client.get(f"/api/v1/consumers/{consumer.public_id}/").json()
        assert (detail["resident_id"], detail["phone"]) == (consumer.resident_id, consumer.phone)

    # The searches above were audited too: the trail must not have kept the terms either.
    dump = database_dump()
    every = list(Consumer.objects.all())
    assert len(every) == 300
    for consumer in every:
        assert consumer.resident_id not in dump
        assert consumer.phone not in dump
    # The dump is real: it does hold what is stored in clear.
    assert all(c.public_id in dump for c in consumers)


def test_a_partial_or_altered_identifier_finds_nothing(demo):
    client = ApiClient(User.objects.get(username="regulator"))
    consumer = in_scope(1)[0]
    rid, phone = consumer.resident_id, consumer.phone
    altered = (rid[:-1], rid + "0", phone[1:], "x" + phone)
    for term in altered:
        assert client.get("/api/v1/consumers/", {"q": term}).json()["results"] == []


def test_resident_ids_stay_unique_through_their_hash(demo):
    from django.db import IntegrityError, transaction

    consumer = in_scope(1)[0]
    twin = Consumer.objects.get(pk=consumer.pk)
    twin.pk, twin.public_id = None, "CTWIN000000000000"
    twin.resident_id = consumer.resident_id.lower()  # the same number, typed differently
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


# Identifiers in clear of consumers loaded before encryption; distinctive enough not to occur by chance.
PLAINTEXT_ERA = [
    ("C0PLAINTEXT000001", "51010819870611937X", "13987650123"),
    ("C0PLAINTEXT000002", "44030519920304521X", "15823456701"),
]


def relation_files() -> bytes:
    """The bytes of the consumer table's data files on disk: the table, its TOAST table and its indexes
    (each small enough here to be one segment file), after a checkpoint has written every page out."""
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
        cursor.execute(
            "SELECT pg_read_binary_file(pg_relation_filepath(c.oid)) FROM pg_class c "
            "WHERE c.oid = 'records_consumer'::regclass "
            "OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'records_consumer'::regclass) "
            "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'records_consumer'::regclass)"
        )
        return b"".join(bytes(row[0]) for row in cursor.fetchall())


@pytest.fixture
def loaded_before_encryption(transactional_db):
    """Consumers loaded while identifiers were stored in clear (records at 0003), then the migrations up to
    the last one before the purge run over them. Every app is migrated to its latest state at the end."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            pytest.skip("reading the table's files on disk needs a superuser (pg_read_binary_file)")
    MigrationExecutor(connection).migrate([("records", "0003_consumer_identifiers_encrypted")])
    try:
        with connection.cursor() as cursor:
            for public_id, resident_id, phone in PLAINTEXT_ERA:
                cursor.execute(
                    "INSERT INTO records_consumer (public_id, name, resident_id, phone, province, city, "
                    "birth_year, joined_on, status) VALUES (%s, 'Zhang San', %s, %s, 'Sichuan', 'Chengdu', "
                    "1987, '2020-01-02', 'active')",
                    [public_id, resident_id, phone],
                )
        MigrationExecutor(connection).migrate([("records", "0006_transaction_monthly_partitions")])
        yield
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_no_plaintext_identifier_is_left_in_the_consumer_tables_files(loaded_before_encryption):
    # The encryption migrations leave the numbers on disk: old row versions, and dropped columns' bytes.
    before = relation_files()
    assert all(rid.encode() in before and phone.encode() in before for _, rid, phone in PLAINTEXT_ERA)

    MigrationExecutor(connection).migrate([("records", "0007_consumer_plaintext_purged")])

    after = relation_files()
    for public_id, resident_id, phone in PLAINTEXT_ERA:
        assert resident_id.encode() not in after and phone.encode() not in after
        assert public_id.encode() in after  # the rows are there, readable
        consumer = Consumer.objects.get(public_id=public_id)
        assert (consumer.resident_id, consumer.phone) == (resident_id, phone)
