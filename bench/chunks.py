"""What the refresh's chunks of one shard cost on one PostgreSQL node, against the id-range chunks.

Citus cannot run here, so this measures the two pieces the shard plan adds, on plain PostgreSQL with the
shard ranges create_distributed_table would make (portal.citus.uniform_shards) and hashint8, the function
Citus's worker_hash applies to a bigint (deploy/SCALING.md §3.4):

1. planning: the plain planner's statement (ROW_NUMBER() over every id, fetched) against the shard planner
   (width_bucket of the hash, array_agg per shard and id window, through a server-side cursor, the lists cut
   into chunks in Python), over every consumer;
2. one chunk's scoring statement (the production SELECT of features, points and reasons, every row fetched)
   for `size` consecutive consumer ids (a range chunk) against `size` consumers of one shard named by
   `= ANY` of a constant array (a shard chunk: on one node their ids spread over a range `shards` times
   wider, which the index reads entry by entry).

Baseline and subject alternate in every round; medians reported. DEBUG off, JIT off, work_mem 64MB, as the
refresh's chunk transactions run. The world is loaded once into the database named by --database on the
server of DATABASE_URL and kept for later runs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/chunks.py \\
        --database portal_bench_chunks [--consumers 20000] [--shards 32] [--size 250] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, date, datetime

from _common import ROOT, median, scratch_database_kept, server_settings, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="portal_bench_chunks")
    parser.add_argument("--consumers", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    setup_django(scratch_database_kept(args.database))
    from django.db import connection, transaction
    from django.db.models import Max

    from portal import citus
    from portal.records import loader
    from portal.records.models import Consumer, Transaction
    from scoring import services
    from scoring.features import Window
    from scoring.models import Scorecard
    from scoring.scorecards import scored_sql

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared with other builds: ratios, not rates)"
    )
    print(f"command: python bench/chunks.py {' '.join(sys.argv[1:])}")
    print(f"code commit: {commit.stdout.strip()}; DEBUG={os.environ.get('DEBUG')}; mode: in-process SQL")
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute("SET work_mem = '64MB'")
    print(f"{server_settings()}; jit=off, work_mem=64MB")

    if Consumer.objects.count() != args.consumers:
        started = time.perf_counter()
        loaded = loader.load(seed=1, consumers=args.consumers, end=date(2026, 11, 1))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"loaded {loaded.consumers:,} consumers in {time.perf_counter() - started:.0f} s")
    consumers = Consumer.objects.count()
    transactions = Transaction.objects.count()
    print(f"world: {consumers:,} consumers, {transactions:,} transactions")

    shards = citus.uniform_shards(args.shards)
    params = {"size": args.size, "watermark_from": 0, "watermark_to": 0}
    card = Scorecard.objects.order_by("id").first()
    assert card is not None, "the shipped scorecard is installed by the migrations"
    watermark = Transaction.objects.aggregate(top=Max("id"))["top"]
    window = Window(cutoff=datetime(2026, 11, 1, tzinfo=UTC), watermark=watermark)
    citus.HASH_FUNCTION = "hashint8"  # worker_hash of a bigint, on a server without Citus

    def plain_plan() -> int:
        with connection.cursor() as cursor:
            cursor.execute(services._plan_sql(False), params)
            return len(cursor.fetchall())

    def shard_plan() -> int:
        with transaction.atomic():  # the server-side cursor lives in a transaction, as in a run start
            return sum(len(batch) for batch in services._shard_chunk_batches(shards, False, params))

    with transaction.atomic():
        first_shard_chunk = next(services._shard_chunk_batches(shards, False, params))[0]
    ids = first_shard_chunk.ids
    lo = Consumer.objects.order_by("id").values_list("id", flat=True).first()
    range_hi = Consumer.objects.order_by("id").values_list("id", flat=True)[args.size - 1]
    spread = (ids[-1] - ids[0] + 1) / max(1, range_hi - lo + 1)
    print(
        f"chunks of {args.size}: range {lo}..{range_hi}; shard {first_shard_chunk.shard}: "
        f"{len(ids)} consumers named, ids {ids[0]}..{ids[-1]} ({spread:.1f}x the range)"
    )

    def score(by_ids: bool) -> int:
        ctes, select, card_params = scored_sql(connection, card, by_ids=by_ids)
        bounds = (
            {"lo": ids[0], "hi": ids[-1], "ids": ids} if by_ids else {"lo": lo, "hi": range_hi, "ids": None}
        )
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {ctes} {select}", {**card_params, **window.params(connection), **bounds})
            return len(cursor.fetchall())

    assert score(True) == len(ids) and score(False) == args.size, "both chunks score `size` consumers"
    print(f"plans: {plain_plan()} range chunks, {shard_plan()} shard chunks")

    timings: dict[str, list[float]] = {
        "plain plan": [],
        "shard plan": [],
        "range chunk": [],
        "shard chunk": [],
    }
    pairs = [("plain plan", plain_plan, "shard plan", shard_plan)]
    pairs.append(("range chunk", lambda: score(False), "shard chunk", lambda: score(True)))
    for round_ in range(args.rounds):
        for first_name, first, second_name, second in pairs:
            order = [(first_name, first), (second_name, second)]
            for name, run in order if round_ % 2 == 0 else reversed(order):
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)
    medians = {name: median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name}: {value * 1000:.1f} ms (median of {args.rounds})")
    print(f"ratio shard plan / plain plan: {medians['shard plan'] / medians['plain plan']:.2f}")
    print(f"ratio shard chunk / range chunk: {medians['shard chunk'] / medians['range chunk']:.2f}")


if __name__ == "__main__":
    main()
