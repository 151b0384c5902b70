"""A full score refresh versus one SQL GROUP BY pass computing the same features (SPEC §9: ratio <= 2.5).

Subject: scoring.services.score_run_start(kind="full") with the chunk tasks executed by a real Celery worker
(prefork, one process per core), timed from the start call until the run is marked finished: planning,
queueing, every chunk's INSERT ... SELECT of scores and reasons, the current-score UPDATEs, the audit events.
Baseline: the production feature query (scoring.features.features_sql) over the whole consumer range in one
statement, same cut-off and watermark, every row fetched: the GROUP BY pass any refresh must at least make.
Before timing, the benchmark asserts the baseline's features are the subject's (their snapshot hashes match
for every consumer). Rounds alternate which goes first; medians reported. Each subject round is a first
refresh: earlier scores truncated and current scores emptied (so every consumer row is rewritten, the
costliest case), then VACUUM ANALYZE of the consumers so the reset leaves no autovacuum debt behind (that
vacuum also cools the cache, which only the subject pays). A CHECKPOINT precedes every measurement.

Measured against the server of DATABASE_URL in a scratch database `portal_bench_scoring`; the baseline runs
in this process, the subject through the worker (Redis from REDIS_URL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/4 \\
        python bench/scoring.py [--consumers 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from urllib.parse import urlparse, urlunparse

from _common import ROOT, median, scratch_database, server_settings, setup_django


def reused_database(name: str, consumers: int) -> str | None:
    """The URL of scratch database `name` if an earlier run left it with `consumers` consumers loaded."""
    import psycopg2

    url = urlunparse(urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))
    try:
        with psycopg2.connect(url) as db, db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM records_consumer")
            found = cursor.fetchone()[0]
    except psycopg2.Error:
        return None
    return url if found == consumers else None


def start_worker(database_url: str, concurrency: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "PORTAL_EMBEDDED_BEAT": "false"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--concurrency", str(concurrency),
         "-l", "WARNING", "--queues", "scoring", "--hostname", f"bench-scoring-{os.getpid()}@%h",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    from portal.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            sys.exit(f"the Celery worker exited with {worker.returncode}")
        if app.control.ping(destination=[f"bench-scoring-{os.getpid()}@{os.uname().nodename}"], timeout=0.5):
            return worker
    worker.terminate()
    sys.exit("the Celery worker did not answer a ping within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the scratch database of an earlier run with as many consumers",
    )
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("the subject runs through a Celery worker: set REDIS_URL=redis://host:port/db")

    database_url = reused_database("portal_bench_scoring", args.consumers) if args.reuse else None
    database_url = database_url or scratch_database("portal_bench_scoring")
    setup_django(database_url)
    from django.db import connection
    from django.db.models import Min

    from portal.records import loader
    from portal.records.models import Consumer
    from scoring import selectors, services
    from scoring.features import Window, features_sql, snapshot_hash
    from scoring.models import CreditScore, ScoreRun

    with connection.cursor() as cursor:
        # The subject's chunk transactions turn JIT off and raise work_mem (scoring.services): the baseline
        # gets the same planner settings, so the ratio compares work, not configuration.
        cursor.execute("SET jit = off")
        cursor.execute("SET work_mem = '64MB'")
    print(f"{server_settings()}; jit=off and work_mem=64MB for both subject and baseline")
    started = time.perf_counter()
    loaded = loader.load(seed=1, consumers=args.consumers, end=date(2026, 11, 1))
    print(
        f"loaded {loaded.consumers:,} consumers, {loaded.transactions:,} transactions "
        f"in {time.perf_counter() - started:.0f} s ({loaded.skipped_chunks} chunks already there)"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    scorecard = selectors.scorecard_active()
    assert scorecard is not None
    codes = [f["code"] for f in scorecard.features]
    lo = Consumer.objects.aggregate(lo=Min("id"))["lo"]
    hi = lo + args.consumers * 10  # past the last id: the range holds every consumer
    worker = start_worker(database_url, args.concurrency)
    print(
        "mode: baseline in-process (one statement), subject through a Celery worker "
        f"({args.concurrency} processes); {args.consumers:,} consumers, chunks of {services.chunk_size():,}, "
        f"{args.rounds} rounds, {os.cpu_count()} cores"
    )
    last_run: list[ScoreRun] = []

    def settle(*, vacuum: bool) -> None:
        """No checkpoint pending as a measurement starts; after the reset, no autovacuum debt either."""
        with connection.cursor() as cursor:
            if vacuum:
                cursor.execute("VACUUM ANALYZE records_consumer")
            cursor.execute("CHECKPOINT")

    def subject() -> float:
        # The first refresh of a database: no scores, no current scores.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE scoring_creditscore, scoring_scorechunk, scoring_scorerun")
            cursor.execute("UPDATE records_consumer SET current_score = NULL")
        settle(vacuum=True)
        began = time.perf_counter()
        run = services.score_run_start(kind="full")
        while True:
            run.refresh_from_db(fields=["status", "chunks_done", "chunks_failed"])
            if run.status != ScoreRun.Status.RUNNING:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - began
        assert run.status == ScoreRun.Status.FINISHED, run.errors
        last_run[:] = [run]
        return elapsed

    def baseline() -> tuple[float, list[dict]]:
        run = last_run[0]
        window = Window(cutoff=run.as_of, watermark=run.watermark_to)
        settle(vacuum=False)
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(features_sql(connection), {"lo": lo, "hi": hi, **window.params(connection)})
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        elapsed = time.perf_counter() - began
        return elapsed, [dict(zip(columns, row, strict=True)) for row in rows]

    try:
        subject()
        _seconds, rows = baseline()
        assert len(rows) == args.consumers == CreditScore.objects.count()
        stored = dict(CreditScore.objects.values_list("consumer_id", "features_hash"))
        for row in rows:
            assert stored[row["consumer_id"]] == snapshot_hash(row, codes), row["consumer_id"]
        print(f"checked: the baseline's {len(rows):,} feature rows hash to the subject's stored snapshots")

        subject_times, baseline_times = [], []
        for round_ in range(args.rounds):
            if round_ % 2 == 0:
                subject_times.append(subject())
                baseline_times.append(baseline()[0])
            else:
                baseline_times.append(baseline()[0])
                subject_times.append(subject())
            print(
                f"round {round_ + 1}: full refresh {subject_times[-1]:.2f} s, "
                f"GROUP BY pass {baseline_times[-1]:.2f} s"
            )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    refresh, group_by = median(subject_times), median(baseline_times)
    print(
        f"full refresh through the worker: {refresh:.2f} s (median), "
        f"{args.consumers / refresh:,.0f} consumers/s"
    )
    print(f"one GROUP BY pass, same features:  {group_by:.2f} s (median)")
    print(f"ratio refresh/GROUP BY: {refresh / group_by:.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
