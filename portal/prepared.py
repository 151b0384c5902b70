"""Hot statements planned once per connection: those the product writes by hand or compiles once.

PostgreSQL plans a plain statement on every call. Over the monthly partitions of the transactions table that
costs more than running it: the consumer-transactions page plans in 1.35 ms and runs in 0.28 ms, and planning
and locking every partition comes on top (bench/planning.py: 2.99 ms plain, 0.58 ms prepared). A statement
PREPAREd on the connection is planned once; after five calls PostgreSQL keeps a generic plan when it costs no
more than the custom ones, and prunes partitions at run time.

A statement opts in by being marked (`prepared(sql)`); nothing else changes. On PostgreSQL the connection's
cursor (portal.pgconnection) runs a marked statement as `EXECUTE` of the statement prepared for that text on
that connection, and prepares it the first time. Django's query wrappers, query counts and logs still see the
original SQL and its parameters. On SQLite, or with DB_PREPARED_STATEMENTS off, a marked statement is a plain
string.

Mark statements whose parameters PostgreSQL can type from where they stand (a comparison with a column, an
IN list of a column). A parameter standing alone (`SELECT %s`) is prepared as text: the cursor runs a call
plain when such a parameter gets a value that is not a string, so that the row keeps the value's type. A
statement the server refuses to PREPARE is run plain from then on, on that connection. Statements that stay
on custom plans (the consumer and transaction lists: PostgreSQL replans them on each call anyway) gain
nothing and are not marked.

psycopg2 has no prepared statements of its own (psycopg 3's `prepare_threshold` is the same idea), hence this
module.
"""

from __future__ import annotations


class PreparedSQL(str):
    """A statement's SQL, marked to be run as a prepared statement where the connection can."""

    __slots__ = ()


def prepared(sql: str) -> str:
    """`sql`, marked to be planned once per connection on PostgreSQL."""
    return PreparedSQL(sql)
