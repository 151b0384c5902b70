"""The Citus placement plan (portal/citus.py) and `manage.py citus_distribute`.

Citus itself cannot run here, so what is tested is the plan as data: every table placed exactly once, and the
real schema (PostgreSQL's catalog after `migrate`) meeting the rules Citus documents for foreign keys and
unique keys under that plan; the checkers are tested rule by rule, including on the schema that Citus
refused before the key tables and composite keys. The command must refuse anywhere but a Citus coordinator.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from portal import citus
from portal.citus import DISTRIBUTED, LOCAL, REFERENCE, ForeignKey, Placement, UniqueKey
from portal.management.commands import citus_distribute

PLAN = citus.placement_plan(citus.model_tables())
BY_TABLE = {placement.table: placement for placement in PLAN}


def test_every_table_of_the_models_is_placed_exactly_once():
    tables = [placement.table for placement in PLAN]
    assert len(tables) == len(set(tables))
    assert set(tables) == set(citus.model_tables())


def test_the_consumers_rows_are_co_located_and_the_audit_trail_stays_on_the_coordinator():
    for table in (
        "records_account",
        "records_transaction",
        "records_segmentmembership",
        "scoring_creditscore",
    ):
        assert BY_TABLE[table] == Placement(table, DISTRIBUTED, "consumer_id", "records_consumer")
    assert BY_TABLE["records_consumer"] == Placement("records_consumer", DISTRIBUTED, "id", "none")
    assert BY_TABLE["records_consumerpublicid"].column == "public_id"
    assert BY_TABLE["records_consumerresidentid"].column == "resident_id_hmac"
    # Events and subjects together, never split across a two-phase commit.
    for table in ("audit_auditevent", "audit_auditsubject", "audit_auditcheckpoint", "audit_auditmerklenode"):
        assert BY_TABLE[table].kind == LOCAL
    # Read by every request to build a scope: on every worker.
    for table in (
        "access_accessgrant",
        "access_consumeruserobjectpermission",
        "access_segmentuserobjectpermission",
        "accounts_user",
        "records_segment",
        "scoring_scorerun",
    ):
        assert BY_TABLE[table].kind == REFERENCE


def test_the_plan_places_the_anchor_before_the_tables_co_located_with_it():
    distributed = [p.table for p in PLAN if p.kind == DISTRIBUTED]
    assert distributed[0] == "records_consumer"
    kinds = [p.kind for p in PLAN]
    assert kinds == sorted(kinds, key=[REFERENCE, DISTRIBUTED, LOCAL].index)


def test_plan_prints_one_statement_per_table_and_touches_nothing():
    out = io.StringIO()
    call_command("citus_distribute", "--plan", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(PLAN)
    assert "SELECT create_reference_table('accounts_user')" in lines
    assert (
        "SELECT create_distributed_table('records_transaction', 'consumer_id', "
        "colocate_with => 'records_consumer')" in lines
    )
    assert "-- audit_auditsubject: stays local" in lines


# --- The rules, one by one (Citus: reference_ddl, "Foreign keys") ---
RULES_PLAN = [
    Placement("dist", DISTRIBUTED, "cid", "none"),
    Placement("mate", DISTRIBUTED, "cid", "dist"),
    Placement("other", DISTRIBUTED, "key", "none"),
    Placement("ref", REFERENCE),
    Placement("ref2", REFERENCE),
    Placement("loc", LOCAL),
    Placement("loc2", LOCAL),
]


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        (ForeignKey("mate", ("cid",), "dist", ("cid",)), True),
        (ForeignKey("mate", ("aid", "cid"), "dist", ("id", "cid")), True),
        (ForeignKey("mate", ("aid",), "dist", ("id",)), False),  # no distribution column
        (ForeignKey("mate", ("aid", "cid"), "dist", ("cid", "id")), False),  # not paired with each other
        (ForeignKey("other", ("cid",), "dist", ("cid",)), False),  # not co-located
        (ForeignKey("dist", ("rid",), "ref", ("id",)), True),
        (ForeignKey("ref2", ("rid",), "ref", ("id",)), True),
        (ForeignKey("ref", ("cid",), "dist", ("cid",)), False),  # reference → distributed
        (ForeignKey("dist", ("lid",), "loc", ("id",)), False),  # distributed → local
        (ForeignKey("loc", ("rid",), "ref", ("id",)), False),  # would make a Citus local table
        (ForeignKey("loc2", ("lid",), "loc", ("id",)), True),
    ],
)
def test_the_foreign_key_rules(key, allowed):
    assert (citus.foreign_key_problems(RULES_PLAN, [key]) == []) is allowed


def test_the_unique_key_rule():
    assert (
        citus.unique_key_problems(RULES_PLAN, [UniqueKey("dist", ("id", "cid")), UniqueKey("ref", ("x",))])
        == []
    )
    assert citus.unique_key_problems(RULES_PLAN, [UniqueKey("dist", ("public_id",))]) != []


def test_the_schema_citus_refused_is_refused_by_the_checkers():
    # What records had before its key tables and composite keys: Citus's own errors, found by the checkers.
    before_keys = [
        UniqueKey("records_consumer", ("public_id",)),
        UniqueKey("records_consumer", ("resident_id_hmac",)),
        UniqueKey("records_account", ("id",)),
    ]
    before_foreign_keys = [
        ForeignKey("records_transaction", ("account_id",), "records_account", ("id",)),
        ForeignKey("access_accessgrant", ("consumer_id",), "records_consumer", ("id",)),
    ]
    assert len(citus.unique_key_problems(PLAN, before_keys)) == 3
    assert len(citus.foreign_key_problems(PLAN, before_foreign_keys)) == 2


# --- The real schema ---
@pytest.mark.postgres
@pytest.mark.django_db
def test_the_migrated_schema_meets_citus_rules_under_the_plan():
    with connection.cursor() as cursor:
        tables = citus_distribute._catalog_tables(cursor)
        foreign_keys = citus_distribute._catalog_foreign_keys(cursor)
        unique_keys = citus_distribute._catalog_unique_keys(cursor)
    # Tables the models do not make (Django's migration record) stay local.
    assert tables - set(BY_TABLE) == {"django_migrations"}
    plan = [*PLAN, Placement("django_migrations", LOCAL)]
    assert len(foreign_keys) > 20  # the catalog was read, not an empty list
    assert citus.foreign_key_problems(plan, foreign_keys) == []
    assert citus.unique_key_problems(plan, unique_keys) == []
    # The composite foreign key is among those read.
    assert ("account_id", "consumer_id") in {
        k.columns for k in foreign_keys if k.table == "records_transaction"
    }


@pytest.mark.postgres
@pytest.mark.django_db
def test_no_table_the_plan_distributes_has_a_trigger():
    # Citus refuses to distribute a table with triggers (the audit tables have them: they stay local).
    distributed = [p.table for p in PLAN if p.kind == DISTRIBUTED]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid = ANY(%s::regclass[])",
            [distributed],
        )
        assert cursor.fetchall() == []
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid = 'audit_auditevent'::regclass"
        )
        assert cursor.fetchone()[0] > 0


# --- Refusals ---
@pytest.mark.django_db
def test_it_refuses_without_citus_and_changes_nothing():
    with connection.cursor() as cursor:
        before = citus_distribute._catalog_foreign_keys(cursor) if connection.vendor == "postgresql" else []
    expected = (
        "this database is sqlite" if connection.vendor == "sqlite" else "citus extension is not installed"
    )
    with pytest.raises(CommandError, match=expected):
        call_command("citus_distribute", stdout=io.StringIO())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            assert citus_distribute._catalog_foreign_keys(cursor) == before
            cursor.execute("SELECT to_regclass(%s)", [citus_distribute.KEPT_KEYS])
            assert cursor.fetchone()[0] is None


@pytest.mark.postgres
@pytest.mark.django_db
def test_foreign_keys_dropped_for_placement_come_back_as_they_were_even_after_an_interrupted_run():
    def definitions(cursor) -> dict[tuple[str, str], str]:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        )
        return {(table, name): definition for table, name, definition in cursor.fetchall()}

    with connection.cursor() as cursor:
        keys = citus_distribute._catalog_foreign_keys(cursor)
        before = definitions(cursor)
    todo = {"records_account", "records_transaction"}
    first = io.StringIO()
    citus_distribute.Command(stdout=first)._keep_foreign_keys(keys, todo)
    touching = {(k.table, k.name) for k in keys if k.table in todo or k.referenced in todo}
    assert (
        "records_transaction",
        next(k.name for k in keys if k.columns == ("account_id", "consumer_id")),
    ) in (touching)
    with connection.cursor() as cursor:
        during = definitions(cursor)
        cursor.execute(f"SELECT count(*) FROM {citus_distribute.KEPT_KEYS}")  # noqa: S608
        assert cursor.fetchone()[0] == len(touching)
    # Exactly the keys touching a table still to place were dropped, with their partitions' copies.
    gone = {key for key in before if key not in during}
    assert {key for key in gone if not key[0].startswith("records_transaction_")} == touching
    assert {name for _table, name in gone} == {name for _table, name in touching}
    assert first.getvalue().count("dropped") == len(touching)
    # The run stops here; the next one (a new command) re-creates them from the kept definitions.
    second = io.StringIO()
    citus_distribute.Command(stdout=second)._restore_foreign_keys()
    with connection.cursor() as cursor:
        assert definitions(cursor) == before
        cursor.execute("SELECT to_regclass(%s)", [citus_distribute.KEPT_KEYS])
        assert cursor.fetchone()[0] is None
    assert second.getvalue().count("re-created") == len(touching)


def test_the_refresh_chunks_lists_are_distributed_by_chunk_and_the_chunks_copied_to_every_worker():
    assert BY_TABLE["scoring_chunkconsumers"] == Placement(
        "scoring_chunkconsumers", DISTRIBUTED, "chunk_id", "none"
    )
    assert BY_TABLE["scoring_scorechunk"].kind == REFERENCE
