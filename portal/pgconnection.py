"""psycopg2's connection and cursor for the portal: marked statements (portal.prepared) run as prepared ones.

Installed by the settings through the database OPTIONS (`connection_factory`, `cursor_factory`) on PostgreSQL
unless DB_PREPARED_STATEMENTS is off. Prepared statements belong to the server session: behind PgBouncer in
transaction mode a statement prepared in one transaction may be missing in the next, so turn this off there
(deploy/SCALING.md §4), as Django does with psycopg 3's prepare_threshold.

- Each connection keeps its own prepared statements, at most STATEMENTS_PER_CONNECTION, and DEALLOCATEs the
  least recently used one to make room. A prepared statement outlives a rollback of the transaction it was
  prepared in, and the server replans it when a table it reads changes.
- A parameter the server types text although the value sent is not a string (a parameter alone in a select
  list: the server has nothing else to type it from, and a prepared `SELECT %s` would answer `'false'` for
  False) makes that call run plain: the row keeps the type the value has, as without preparing.
- The first use of a marked statement on a connection PREPAREs it; inside a transaction under a savepoint, so
  that a statement the server cannot prepare leaves the transaction as it was. Such a statement is then run
  plain on that connection.
- A statement's name is a digest of its text, so a name means the same statement in every session: a
  session that already holds it (prepared by another client of a pooler's server session) uses it as is,
  and no session can run another client's statement under a name it meant for its own.
- Only unnamed cursors take part: a named (server-side) cursor declares its own statement.
- A statement the session no longer has (DISCARD ALL; a pooler that switched server sessions) fails once
  inside a transaction, is run plain outside one, and every statement is prepared afresh from then on.
- The cursor's `query` (what Django's query log and `last_executed_query` read) stays the marked statement
  with its parameters, not the EXECUTE that ran it.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from portal.prepared import PreparedSQL

STATEMENTS_PER_CONNECTION = 64

_PLACEHOLDER = re.compile(r"%(.)", re.DOTALL)


def numbered(sql: str) -> tuple[str, int] | None:
    """`sql` with its `%s` placeholders numbered `$1, $2, …` and `%%` as `%`, and how many there are; None
    when it holds any other placeholder (`%(name)s`)."""
    count = 0
    other = False

    def number(match: re.Match[str]) -> str:
        nonlocal count, other
        if match.group(1) == "%":
            return "%"
        if match.group(1) == "s":
            count += 1
            return f"${count}"
        other = True
        return match.group(0)

    text = _PLACEHOLDER.sub(number, sql)
    return None if other else (text, count)


class PortalConnection(psycopg2.extensions.connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Marked SQL -> (statement name, number of parameters, positions of the parameters typed text), least
        # recently used first.
        self.statements: OrderedDict[str, tuple[str, int, tuple[int, ...]]] = OrderedDict()
        self.unpreparable: set[str] = set()

    def execute_for(self, cursor: PortalCursor, sql: str, params: Any) -> str | None:
        """The EXECUTE that runs `sql` with `params` on this connection, preparing it first if need be; None
        when it is to be run plain."""
        if params is not None and not isinstance(params, list | tuple):
            return None  # named parameters (a mapping)
        if self.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            return None  # run plain: the server refuses it as it would any statement now
        entry = self.statements.get(sql)
        if entry is None:
            if sql in self.unpreparable:
                return None
            entry = self._prepare(cursor, sql)
            if entry is None:
                return None
        else:
            self.statements.move_to_end(sql)
        name, count, texts = entry
        values = () if params is None else params
        if count != len(values):
            return None  # psycopg2 raises on the plain statement, as it always has
        if any(values[i] is not None and not isinstance(values[i], str) for i in texts):
            # A parameter the server typed text (one it could type from nothing else: alone in a select
            # list) given a value of another type: run plain, the row keeps the value's own type.
            return None
        return f"EXECUTE {name} ({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"

    def _prepare(self, cursor: PortalCursor, sql: str) -> tuple[str, int, tuple[int, ...]] | None:
        converted = numbered(sql)
        if converted is None:
            self._refuse(sql)
            return None
        text, count = converted
        # Named by its text: one name is one statement in any session, whoever prepared it there.
        name = f"portal_{hashlib.sha256(sql.encode()).hexdigest()[:32]}"
        error = self._guarded(cursor, f"PREPARE {name} AS {text}")
        if error is not None and not isinstance(error, psycopg2.errors.DuplicatePreparedStatement):
            self._refuse(sql)
            return None
        texts: tuple[int, ...] = ()
        if count:
            cursor.run_plain(
                f"SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = '{name}'"  # noqa: S608
            )
            (types,) = cursor.fetchone() or ([],)
            texts = tuple(position for position, type_ in enumerate(types) if type_ == "text")
        while len(self.statements) >= STATEMENTS_PER_CONNECTION:
            _sql, (oldest, _count, _texts) = self.statements.popitem(last=False)
            self._guarded(cursor, f"DEALLOCATE {oldest}")  # already gone: nothing to free
        self.statements[sql] = (name, count, texts)
        return name, count, texts

    def _guarded(self, cursor: PortalCursor, sql: str) -> psycopg2.Error | None:
        """Run `sql`; its error, if any, leaves the session as it was (inside a transaction, a savepoint
        undoes it)."""
        run = cursor.run_plain
        if self.autocommit:
            try:
                run(sql)
            except psycopg2.Error as error:
                return error
            return None
        run("SAVEPOINT portal_prepare")
        try:
            run(sql)
        except psycopg2.Error as error:
            run("ROLLBACK TO SAVEPOINT portal_prepare")
            run("RELEASE SAVEPOINT portal_prepare")
            return error
        run("RELEASE SAVEPOINT portal_prepare")
        return None

    def _refuse(self, sql: str) -> None:
        if len(self.unpreparable) >= STATEMENTS_PER_CONNECTION:
            self.unpreparable.clear()
        self.unpreparable.add(sql)


class PortalCursor(psycopg2.extensions.cursor):
    # The marked statement and parameters last run as an EXECUTE (None: the last statement ran as given).
    _shown: tuple[str, Any] | None = None

    def execute(self, query: Any, vars: Any = None) -> None:
        connection = self.connection
        if type(query) is PreparedSQL and self.name is None and isinstance(connection, PortalConnection):
            statement = connection.execute_for(self, query, vars)
            if statement is not None:
                try:
                    super().execute(statement, vars)
                except psycopg2.errors.InvalidSqlStatementName:
                    # The session lost its statements (DISCARD ALL, a pooler's server switch): prepare
                    # afresh from the next call; outside a transaction run this one plain now.
                    connection.statements.clear()
                    if not connection.autocommit:
                        raise
                else:
                    self._shown = (query, vars)
                    return
        self._shown = None
        super().execute(query, vars)

    def run_plain(self, sql: str) -> None:
        super().execute(sql)

    @property
    def query(self) -> bytes | None:
        if self._shown is not None:
            return self.mogrify(*self._shown)
        return super().query
