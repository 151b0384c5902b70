"""Marked statements run as statements prepared on their connection (portal.prepared, portal.pgconnection),
and nothing else about them changes: rows, query logs and counts, transactions, failures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.prepared import prepared
from tests.conftest import ROOT
from tests.factories import UserFactory

pytestmark = pytest.mark.postgres

USERS = "SELECT id, username FROM accounts_user WHERE id >= %s AND username LIKE '%%' ORDER BY id"


def server_statements() -> dict[str, tuple[int, int]]:
    """The session's prepared statements: name -> (generic plans, custom plans) used so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements")
        return {name: (generic, custom) for name, generic, custom in cursor.fetchall()}


def run(sql: str, params: list | dict | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


@pytest.fixture(autouse=True)
def fresh_session(db):
    """Each test starts with a session holding no prepared statement (the connection outlives tests)."""
    run("DEALLOCATE ALL")
    connection.connection.statements.clear()
    connection.connection.unpreparable.clear()


@pytest.fixture
def users(organisations):
    for index in range(3):
        UserFactory.create(username=f"prepared-{index}", organisation=organisations["regulator"])


def test_a_marked_statement_is_prepared_once_and_answers_the_same_rows(users):
    plain = run(USERS, [0])
    assert run(prepared(USERS), [0]) == plain
    [(name, _count, _texts)] = connection.connection.statements.values()
    for _ in range(7):
        assert run(prepared(USERS), [0]) == plain
    generic, custom = server_statements()[name]
    assert generic + custom == 8  # one statement, planned by the server as it chose, run eight times
    assert len(connection.connection.statements) == 1


def test_query_logs_and_counts_see_the_marked_statement_not_the_execute(users):
    with CaptureQueriesContext(connection) as plain:
        run(USERS, [0])
    with CaptureQueriesContext(connection) as marked:
        run(prepared(USERS), [0])  # prepares
        run(prepared(USERS), [0])
    assert [q["sql"] for q in marked.captured_queries] == [plain.captured_queries[0]["sql"]] * 2
    assert "EXECUTE" not in marked.captured_queries[0]["sql"]


def test_a_statement_the_server_cannot_prepare_runs_plain_and_leaves_the_transaction_usable(users):
    untyped = "SELECT count(*) FROM accounts_user WHERE %s IS NULL"  # $1 IS NULL: no type to infer
    with transaction.atomic():
        assert run(prepared(untyped), [None]) == run(untyped, [None])
        assert run(USERS, [0])  # the transaction was not aborted by the refused PREPARE
    assert untyped in connection.connection.unpreparable
    assert untyped not in connection.connection.statements
    assert run(prepared(untyped), [None]) == run(untyped, [None])  # plain again, without trying


def test_a_parameter_alone_in_the_select_list_keeps_the_type_of_its_value(users):
    """The server types such a parameter text: prepared, `SELECT %s` with False would answer 'false' (a true
    string). Those calls run plain; a string there is text either way and stays prepared."""
    flagged = "SELECT %s AS flag, id FROM accounts_user WHERE id >= %s ORDER BY id"
    for flag in (False, True, 0, None):
        rows = run(prepared(flagged), [flag, 0])
        assert rows == run(flagged, [flag, 0]) and rows
        assert all(type(value) is type(flag) for value, _id in rows)
    [(name, _count, texts)] = connection.connection.statements.values()
    assert texts == (0,)
    assert sum(server_statements()[name]) == 1  # only the NULL ran prepared (NULL either way)
    assert run(prepared(flagged), ["label", 0]) == run(flagged, ["label", 0])
    assert sum(server_statements()[name]) == 2


@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_outlives_the_rollback_of_its_transaction(users):
    with pytest.raises(RuntimeError), transaction.atomic():
        run(prepared(USERS), [0])
        raise RuntimeError
    [(name, _count, _texts)] = connection.connection.statements.values()
    assert name in server_statements()
    assert run(prepared(USERS), [0]) == run(USERS, [0])
    assert list(connection.connection.statements.values()) == [(name, 1, ())]


def test_each_connection_keeps_a_bounded_number_and_deallocates_the_least_recent(users, monkeypatch):
    from portal import pgconnection  # psycopg2's: not installed on the SQLite path

    monkeypatch.setattr(pgconnection, "STATEMENTS_PER_CONNECTION", 3)
    shapes = [f"{USERS} LIMIT {limit}" for limit in range(1, 7)]
    for sql in shapes[:3]:
        run(prepared(sql), [0])
    run(prepared(shapes[0]), [0])  # the first is now the most recent
    for sql in shapes[3:5]:
        run(prepared(sql), [0])
    assert list(connection.connection.statements) == [shapes[0], shapes[3], shapes[4]]
    held = connection.connection.statements.values()
    assert set(server_statements()) == {name for name, _count, _texts in held}


@pytest.mark.django_db(transaction=True)
def test_a_session_that_lost_its_statements_prepares_them_afresh(users):
    expected = run(USERS, [0])
    run(prepared(USERS), [0])
    run("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does to the session
    assert run(prepared(USERS), [0]) == expected  # outside a transaction: run plain at once
    assert not connection.connection.statements
    assert run(prepared(USERS), [0]) == expected  # and prepared again
    assert len(server_statements()) == 1
    run("DEALLOCATE ALL")
    with pytest.raises(DatabaseError), transaction.atomic():
        run(prepared(USERS), [0])  # inside one, the failure is the transaction's, as any statement's
    assert run(prepared(USERS), [0]) == expected


def test_a_name_means_one_statement_in_any_session(users):
    """Behind a pooler a session may hold statements another client prepared: the same text under the same
    name is used as is, and different texts never share a name."""
    other = f"{USERS} LIMIT 2"
    run(prepared(USERS), [0])
    run(prepared(other), [0])
    names = {name for name, _count, _texts in connection.connection.statements.values()}
    assert len(names) == 2
    connection.connection.statements.clear()  # another client's view of the same server session
    with transaction.atomic():
        assert run(prepared(USERS), [0]) == run(USERS, [0])  # already there: no error, no abort
        assert run(USERS, [0])
    assert {name for name, _count, _texts in connection.connection.statements.values()} < names
    assert USERS not in connection.connection.unpreparable


def test_making_room_for_a_statement_never_fails_its_transaction(users, monkeypatch):
    from portal import pgconnection

    monkeypatch.setattr(pgconnection, "STATEMENTS_PER_CONNECTION", 1)
    run(prepared(USERS), [0])
    run("DEALLOCATE ALL")  # the statement to be evicted is already gone
    with transaction.atomic():
        assert run(prepared(f"{USERS} LIMIT 2"), [0]) == run(f"{USERS} LIMIT 2", [0])
        assert run(USERS, [0])
    assert list(connection.connection.statements) == [f"{USERS} LIMIT 2"]


def test_parameters_stay_values(users):
    hostile = "x' OR '1'='1'); DEALLOCATE ALL; SELECT ('"
    sql = prepared("SELECT id FROM accounts_user WHERE username = %s")
    assert run(sql, [hostile]) == []
    assert run(sql, [hostile]) == []
    assert len(server_statements()) == 1
    assert run(sql, ["prepared-1"]) == run("SELECT id FROM accounts_user WHERE username = 'prepared-1'")


def test_named_cursors_and_named_parameters_run_as_given(users):
    with transaction.atomic():
        with connection.chunked_cursor() as cursor:  # a server-side cursor declares its own statement
            cursor.execute(prepared(USERS), [0])
            assert cursor.fetchall() == run(USERS, [0])
        named = "SELECT id FROM accounts_user WHERE id >= %(low)s ORDER BY id"
        assert run(prepared(named), {"low": 0}) == run(named, {"low": 0})
    assert not connection.connection.statements


@pytest.mark.parametrize(("value", "installed"), [("", True), ("false", False)])
def test_the_setting_turns_it_off(value, installed):
    env = {**os.environ, "DATABASE_URL": "postgres://u@h/db", "DB_PREPARED_STATEMENTS": value}
    if not value:
        del env["DB_PREPARED_STATEMENTS"]
    script = (
        "from portal.settings import DATABASES; "
        "print('connection_factory' in DATABASES['default'].get('OPTIONS', {}))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shown.stdout.strip() == str(installed)
