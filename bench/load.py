"""Loading synthetic data versus PostgreSQL's own COPY of the same rows (SPEC §9: ratio >= 0.5).

Subject: portal.records.loader.load (what `manage.py load_synthetic` runs), generation included.
Baseline: a server-side COPY FROM file of exactly the rows the subject wrote, into the same empty tables with
the same indexes and constraints. Both end with ANALYZE. Rounds alternate which goes first; medians reported.
Measured in-process (no HTTP) against the server of DATABASE_URL, in a scratch database `portal_bench_load`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/load.py [--consumers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date

from _common import median, scratch_database, server_settings, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    setup_django(scratch_database("portal_bench_load"))
    from django.db import connection, transaction

    from portal.records import loader

    tables = [table for table, _columns in loader.TABLES]
    end = date(2026, 11, 1)
    dump_dir = tempfile.mkdtemp(prefix="portal-bench-load-")
    os.chmod(dump_dir, 0o777)  # the PostgreSQL server process writes and reads the dump files

    def truncate() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")

    def subject() -> tuple[float, int]:
        truncate()
        started = time.perf_counter()
        result = loader.load(seed=1, consumers=args.consumers, end=end)
        return time.perf_counter() - started, result.rows

    def dump() -> int:
        rows = 0
        with connection.cursor() as cursor:
            for table, columns in loader.TABLES:
                # A query, not the table: COPY TO cannot name a partitioned table (transactions are one).
                select = f"SELECT {', '.join(columns)} FROM {table}"
                cursor.execute(f"COPY ({select}) TO '{dump_dir}/{table}.copy'")
                cursor.execute(f"SELECT count(*) FROM {table}")
                rows += cursor.fetchone()[0]
        return rows

    def baseline() -> float:
        truncate()
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for table, columns in loader.TABLES:
                cursor.execute(f"COPY {table} ({', '.join(columns)}) FROM '{dump_dir}/{table}.copy'")
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")
        return time.perf_counter() - started

    print(server_settings())
    print(f"mode: in-process, {args.consumers:,} consumers, {args.rounds} rounds, {os.cpu_count()} cores")
    _seconds, rows = subject()
    dumped = dump()
    assert dumped == rows, f"dump has {dumped} rows, the load wrote {rows}"
    subject_times, baseline_times = [], []
    for round_ in range(args.rounds):
        if round_ % 2 == 0:
            subject_times.append(subject()[0])
            baseline_times.append(baseline())
        else:
            baseline_times.append(baseline())
            subject_times.append(subject()[0])
        print(
            f"round {round_ + 1}: load {rows / subject_times[-1]:,.0f} rows/s, "
            f"COPY {rows / baseline_times[-1]:,.0f} rows/s"
        )
    load_rate = rows / median(subject_times)
    copy_rate = rows / median(baseline_times)
    print(f"rows per round: {rows:,}")
    print(f"load_synthetic (generation included): {load_rate:,.0f} rows/s (median)")
    print(f"server-side COPY of the same rows:     {copy_rate:,.0f} rows/s (median)")
    print(f"ratio load/COPY: {load_rate / copy_rate:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
