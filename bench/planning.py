"""What planning costs on the hot statements: each run as a plain statement (parsed and planned on every call,
as the product and the limits of bench/access.py run them today) against the same statement PREPAREd once on
the connection and EXECUTEd (PostgreSQL's cached generic plan), on the same rows, in alternating rounds.

The statements are the limits' own (bench/limits.py: one hand-written SQL per page, the same rows as the
product) and the product's scope statement (portal.access.policy._scope_sql, every request). The transactions
table is partitioned by month: a plain statement over it plans (and locks) every partition on every call.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/planning.py [--consumers N]
"""

from __future__ import annotations

import itertools
import re

from _common import alternating, median, open_request_world, request_bench_arguments


def _numbered(sql: str) -> str:
    """`sql` with its %s placeholders numbered ($1, $2, ...), as PREPARE takes them."""
    counter = itertools.count(1)
    return re.sub(r"%s", lambda _match: f"${next(counter)}", sql).replace("%%", "%")


def main() -> None:
    args = request_bench_arguments(__doc__)
    regulator, path = open_request_world(args.consumers)

    import limits
    from django.db import connection
    from django.utils import timezone

    from portal.access import policy

    public_id = path.split("/")[4]
    scope = policy.scope_for(regulator)
    segment_ids = scope.segment_ids(policy.Permission.VIEW_RECORDS)
    scope_sql, scope_params = policy._scope_sql(regulator, timezone.now(), None)
    statements = {
        "consumer-transactions page": (limits.CONSUMER_TRANSACTIONS_SQL, [public_id, 51]),
        "transaction list page": (limits.TRANSACTIONS_SQL, [segment_ids, 51]),
        "consumer list page": (limits.CONSUMERS_SQL, [segment_ids, 51]),
        "consumer detail": (limits.CONSUMER_SQL, [segment_ids, public_id]),
        "scope (every request)": (scope_sql, scope_params),
    }
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    cursor = raw.cursor()
    print(f"{args.rounds} alternating rounds of {args.requests} calls each; medians of ms per call")
    for index, (label, (sql, params)) in enumerate(statements.items()):
        name = f"bench_planning_{index}"
        cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
        execute = f"EXECUTE {name} ({', '.join(['%s'] * len(params))})"

        def plain(sql=sql, params=params) -> None:
            cursor.execute(sql, params)
            cursor.fetchall()

        def prepared(execute=execute, params=params) -> None:
            cursor.execute(execute, params)
            cursor.fetchall()

        cursor.execute(sql, params)
        expected = cursor.fetchall()
        cursor.execute(execute, params)
        assert cursor.fetchall() == expected, f"{label}: the prepared statement answers other rows"
        times = alternating({"plain": plain, "prepared": prepared}, args.rounds, args.requests)
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s", [name]
        )
        generic, custom = cursor.fetchone()
        plain_ms, prepared_ms = median(times["plain"]) * 1000, median(times["prepared"]) * 1000
        print(
            f"  {label:28s} plain {plain_ms:6.3f} ms, prepared {prepared_ms:6.3f} ms, "
            f"plain ÷ prepared {plain_ms / prepared_ms:5.2f}; {len(expected)} rows; "
            f"generic plans {generic}, custom plans {custom}"
        )
        cursor.execute(f"DEALLOCATE {name}")


if __name__ == "__main__":
    main()
