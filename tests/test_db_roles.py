"""Least privilege on PostgreSQL: the roles of deploy/postgres/create-roles.sh, applied to the test database.

The application role may only read and append to the audit trail and can neither disable its triggers nor
empty it; the sealer role may only fill the chain columns (and append checkpoints). Each test switches its
connection to a role with SET ROLE, so what is checked is exactly that role's privileges.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import DatabaseError, connection, transaction

from audit import chain, checkpoints, cosigning
from audit.models import AuditCheckpoint, AuditEvent, AuditMerkleNode
from tests.audit.conftest import WitnessProcess
from tests.conftest import ROOT

pytestmark = pytest.mark.postgres

SCRIPT = ROOT / "deploy" / "postgres" / "create-roles.sh"
OWNER, APP, SEALER = "portal_owner", "portal_app", "portal_sealer"
INSUFFICIENT_PRIVILEGE = "42501"
RESTRICT_VIOLATION = "23001"  # the audit trail's own triggers


def run_script() -> subprocess.CompletedProcess:
    db = connection.settings_dict
    env = {
        **os.environ,
        "PGHOST": db["HOST"] or "127.0.0.1",
        "PGPORT": str(db["PORT"] or 5432),
        "PGUSER": db["USER"],
        "PGPASSWORD": db["PASSWORD"] or "",
    }
    return subprocess.run(
        [str(SCRIPT), db["NAME"]], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def roles(django_db_setup, django_db_blocker) -> None:
    """The roles and grants in the test database, before any test opens a transaction (the script takes
    table locks to hand ownership to the owner role)."""
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        connection.close()
        done = run_script()
    assert done.returncode == 0, done.stderr


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def refused(sql: str, params: list | None = None) -> str:
    """The SQLSTATE with which the database refuses the statement (rolled back to a savepoint)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError as exc:
        return getattr(exc.__cause__, "pgcode", "") or ""
    pytest.fail(f"the database accepted: {sql}")


def unsealed_event(action: str = "records.list") -> AuditEvent:
    return AuditEvent.objects.create(action=action, outcome=AuditEvent.Outcome.ALLOWED, path="/api/v1/")


def test_the_script_is_idempotent(roles):
    again = run_script()
    assert again.returncode == 0, again.stderr


def test_application_roles_are_neither_superuser_nor_owner(roles, db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            [[APP, SEALER]],
        )
        assert {row[0]: row[1:] for row in cursor.fetchall()} == {
            APP: (False, False, False, False),
            SEALER: (False, False, False, False),
        }
        cursor.execute(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v')"
        )
        assert {row[0] for row in cursor.fetchall()} == {OWNER}
        cursor.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER'), pg_has_role(%s, %s, 'MEMBER')", [APP, OWNER, SEALER, OWNER]
        )
        assert cursor.fetchone() == (False, False)


def test_application_role_reads_and_appends_audit_events_only(roles, db):
    existing = unsealed_event()
    with acting_as(APP):
        event = unsealed_event("records.detail")  # INSERT works
        assert AuditEvent.objects.filter(pk__in=[existing.pk, event.pk]).count() == 2  # SELECT works
        table = "audit_auditevent"
        for sql in (
            "UPDATE audit_auditevent SET action = 'forged' WHERE id = %s",
            "UPDATE audit_auditevent SET chain_position = 1, prev_hash = repeat('0', 64), "
            "hash = repeat('0', 64), sealed_at = now() WHERE id = %s",
            "DELETE FROM audit_auditevent WHERE id = %s",
        ):
            assert refused(sql, [event.pk]) == INSUFFICIENT_PRIVILEGE, sql
        for sql in (
            f"TRUNCATE {table}",
            "TRUNCATE audit_auditsubject",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f"ALTER TABLE {table} DISABLE TRIGGER audit_auditevent_append_only_update",
            "ALTER TABLE audit_auditsubject DISABLE TRIGGER USER",
            f"DROP TRIGGER audit_auditevent_append_only_delete ON {table}",
            "DELETE FROM audit_auditsubject",
            "UPDATE audit_auditcheckpoint SET head_hash = ''",
            "CREATE TABLE public.scratch (id int)",
            # Checkpoints and the Merkle tree are the sealer's alone: a forged row at a far position once
            # silenced the publisher.
            "INSERT INTO audit_auditcheckpoint (chain_position, head_hash, created_at, algorithm, "
            "public_key, signature, tree_root, note) VALUES (9000000000000000, repeat('a', 64), now(), "
            "'Ed25519', 'k', 's', '', '')",
            "INSERT INTO audit_auditmerklenode (level, index, hash) VALUES (0, 0, '\\x00')",
            "UPDATE audit_auditmerklenode SET hash = '\\x00'",
            "DELETE FROM audit_auditmerklenode",
            "INSERT INTO audit_auditcosignature (checkpoint_id, witness_key, signature, cosigned_at, "
            "created_at) VALUES (1, 'w', 's', now(), now())",
            "UPDATE audit_auditcosignature SET signature = ''",
            "DELETE FROM audit_auditcosignature",
        ):
            assert refused(sql) == INSUFFICIENT_PRIVILEGE, sql
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_auditcheckpoint")
            cursor.execute("SELECT count(*) FROM audit_auditmerklenode")
        # Replica mode would skip ordinary triggers: only a superuser may set it.
        assert refused("SET session_replication_role = replica") == INSUFFICIENT_PRIVILEGE
        # Its own data it reads and writes as usual.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE django_session SET expire_date = expire_date")
            cursor.execute("SELECT count(*) FROM records_consumer")
    assert AuditEvent.objects.get(pk=event.pk).action == "records.detail"


def test_sealer_role_seals_and_signs_but_changes_nothing_else(roles, db, settings, tmp_path):
    settings.AUDIT_SIGNING_KEY = ""
    settings.VAR_DIR = tmp_path  # a development signing key of this test's own
    for _ in range(3):
        unsealed_event()
    with acting_as(SEALER):
        result = chain.events_seal()
        assert result.sealed == 3 and result.head.position == 3
        assert checkpoints.checkpoint_publish() is not None
        sealed = AuditEvent.objects.get(chain_position=1)
        # Filling the chain columns is its only write: no other column, no second fill, no delete, no insert.
        assert refused("UPDATE audit_auditevent SET action = 'forged' WHERE id = %s", [sealed.pk]) == (
            INSUFFICIENT_PRIVILEGE
        )
        assert refused("UPDATE audit_auditevent SET hash = repeat('f', 64) WHERE id = %s", [sealed.pk]) == (
            RESTRICT_VIOLATION
        )
        for sql in (
            "DELETE FROM audit_auditevent",
            "INSERT INTO audit_auditevent (occurred_at, action, outcome) VALUES (now(), 'x', 'allowed')",
            "UPDATE audit_auditcheckpoint SET head_hash = ''",
            "DELETE FROM audit_auditcheckpoint",
            "UPDATE audit_auditmerklenode SET hash = '\\x00'",
            "DELETE FROM audit_auditmerklenode",
            "UPDATE audit_auditcosignature SET signature = ''",
            "TRUNCATE audit_auditevent",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
            "SELECT count(*) FROM records_consumer",
            "SELECT count(*) FROM accounts_user",
        ):
            assert refused(sql) == INSUFFICIENT_PRIVILEGE, sql
    assert AuditCheckpoint.objects.count() == 1
    assert AuditEvent.objects.filter(chain_position__isnull=True).count() == 0
    # It also stores the witnesses' cosignatures of its checkpoints (a real witness, over HTTP).
    witness = WitnessProcess(tmp_path / "witness", "witness.example/w", [checkpoints.log_verifier_key()])
    witness.start()
    try:
        settings.AUDIT_WITNESSES = [(witness.url, witness.key)]
        with acting_as(SEALER):
            assert cosigning.checkpoint_cosign(checkpoint=AuditCheckpoint.objects.get()) == {
                "witness.example/w": "cosigned"
            }
            assert refused("UPDATE audit_auditcosignature SET signature = ''") == INSUFFICIENT_PRIVILEGE
    finally:
        witness.stop()
    assert (
        AuditCheckpoint.objects.get().tree_size == 3 and AuditMerkleNode.objects.filter(level=0).count() == 3
    )


def test_tables_the_owner_creates_later_are_append_only_for_the_application(roles, db):
    """A partition made at run time (by the owner's functions) is covered before any script re-run."""
    with acting_as(OWNER), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE audit_auditevent_scratch (id bigint PRIMARY KEY, action text)")
    with acting_as(APP):
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO audit_auditevent_scratch VALUES (1, 'records.list')")
            cursor.execute("SELECT action FROM audit_auditevent_scratch")
            assert cursor.fetchone() == ("records.list",)
        assert refused("UPDATE audit_auditevent_scratch SET action = 'forged'") == INSUFFICIENT_PRIVILEGE
        assert refused("DELETE FROM audit_auditevent_scratch") == INSUFFICIENT_PRIVILEGE
        assert refused("TRUNCATE audit_auditevent_scratch") == INSUFFICIENT_PRIVILEGE


def test_application_role_may_call_the_owners_functions(roles, db):
    with acting_as(OWNER), connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION portal_scratch_answer() RETURNS int LANGUAGE sql SECURITY DEFINER "
            "SET search_path = public AS 'SELECT 42'"
        )
        cursor.execute("REVOKE EXECUTE ON FUNCTION portal_scratch_answer() FROM PUBLIC")
    with acting_as(APP), connection.cursor() as cursor:
        cursor.execute("SELECT portal_scratch_answer()")
        assert cursor.fetchone() == (42,)
    with acting_as(SEALER):
        assert refused("SELECT portal_scratch_answer()") == INSUFFICIENT_PRIVILEGE


def test_application_role_makes_partitions_but_never_detaches_the_trail(roles, db):
    """Partitions ahead are the application's periodic job; retention stays with the owner, and a partition
    reached directly is no more open than its parent."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'audit_auditevent'::regclass AND c.relname <> 'audit_auditevent_default' "
            "ORDER BY c.relname LIMIT 1"
        )
        name = cursor.fetchone()[0]
        partition = connection.ops.quote_name(name)
    with acting_as(APP):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_event_create_partitions(3)")
            cursor.execute("SELECT count(*) FROM records_transaction_create_partitions(3)")
        assert refused("SELECT audit_event_detach_partition(%s)", [name]) == INSUFFICIENT_PRIVILEGE
        assert refused(f"DELETE FROM {partition}") == INSUFFICIENT_PRIVILEGE  # noqa: S608 (a catalogue name)
        assert refused(f"ALTER TABLE {partition} DISABLE TRIGGER ALL") == INSUFFICIENT_PRIVILEGE
        assert refused(f"ALTER TABLE audit_auditevent DETACH PARTITION {partition}") == INSUFFICIENT_PRIVILEGE


PARTITION_CREATORS = (
    "audit_event_create_partition(date)",
    "audit_event_create_partitions(integer)",
    "records_transaction_create_partition(date)",
    "records_transaction_create_partitions(integer)",
)


def test_only_the_roles_that_run_the_partition_jobs_may_create_partitions(roles, db):
    """Not PUBLIC: the application (records.create_partitions, and every task when run in-process) and the
    sealer, whose "audit" queue runs audit.create_partitions; the sealer no other of the owner's functions."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, has_function_privilege('public', name, 'EXECUTE'), "
            "has_function_privilege(%s, name, 'EXECUTE'), has_function_privilege(%s, name, 'EXECUTE') "
            "FROM unnest(%s::text[]) AS name",
            [APP, SEALER, list(PARTITION_CREATORS)],
        )
        assert {row[0]: row[1:] for row in cursor.fetchall()} == {
            "audit_event_create_partition(date)": (False, True, False),
            "audit_event_create_partitions(integer)": (False, True, True),
            "records_transaction_create_partition(date)": (False, True, False),
            "records_transaction_create_partitions(integer)": (False, True, False),
        }
    from audit import tasks

    with acting_as(SEALER):
        # The audit queue's job, as its worker runs it.
        assert tasks.create_partitions.apply(kwargs={"months_ahead": 5}).get() == [
            "audit_auditevent_p" + month for month in _months_ahead(4, 5)
        ]
        assert refused("SELECT count(*) FROM records_transaction_create_partitions(3)") == (
            INSUFFICIENT_PRIVILEGE
        )
        assert refused("SELECT audit_event_create_partition(current_date)") == INSUFFICIENT_PRIVILEGE
        assert refused("SELECT audit_event_detach_partition('audit_auditevent_default')") == (
            INSUFFICIENT_PRIVILEGE
        )
    # A role granted nothing (what PUBLIC may do) creates no partition.
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE portal_nobody NOLOGIN")
    with acting_as("portal_nobody"):
        for function in PARTITION_CREATORS:
            call = f"SELECT {function.replace('(date)', '(current_date)').replace('(integer)', '(3)')}"
            assert refused(call) == INSUFFICIENT_PRIVILEGE, call


def _months_ahead(*steps: int) -> list[str]:
    from datetime import UTC, datetime

    from audit import partitions

    current = partitions.month_start(datetime.now(UTC))
    return [partitions.add_months(current, step).strftime("%Y_%m") for step in steps]
