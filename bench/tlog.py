"""Proof generation of the transparency log at 10^4 and 10^6 leaves (SPEC §4; issue 14).

Fills the stored Merkle tree of a scratch PostgreSQL database `portal_bench_tlog` with synthetic leaf hashes
through audit.tiles.append (the sealer's own code path, in batches of 10,000), then times
audit.tiles.inclusion_proof and consistency_proof for random leaves and sizes at each size; medians over
`--rounds` proofs. Proof cost must grow no more than logarithmically: the ratio of the medians at 10^6 and
10^4 is printed next to log2(10^6) / log2(10^4) = 1.5.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/tlog.py [--sizes 10000 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import time

from _common import median, scratch_database, server_settings, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    setup_django(scratch_database("portal_bench_tlog"))
    from django.conf import settings

    print(server_settings())
    print(f"DEBUG={settings.DEBUG}; mode: in-process (audit.tiles called directly)")

    from django.db import transaction

    from audit import merkle, tiles

    rng = random.Random(14)
    size, results = 0, {}
    for target in sorted(args.sizes):
        started = time.perf_counter()
        while size < target:
            count = min(10_000, target - size)
            leaves = [merkle.leaf_hash(hashlib.sha256(str(size + n).encode()).digest()) for n in range(count)]
            with transaction.atomic():
                tiles.append(size, leaves)
            size += count
        fill = time.perf_counter() - started
        root = tiles.root(size)
        inclusion, consistency = [], []
        for _ in range(args.rounds):
            index = rng.randrange(size)
            began = time.perf_counter()
            proof = tiles.inclusion_proof(index, size)
            inclusion.append(time.perf_counter() - began)
            leaf = tiles.leaf_hash(index)
            assert leaf is not None
            merkle.verify_inclusion(index, size, leaf, proof, root)
            old = rng.randrange(1, size)
            began = time.perf_counter()
            tiles.consistency_proof(old, size)
            consistency.append(time.perf_counter() - began)
        results[size] = (median(inclusion), median(consistency))
        print(
            f"{size:>9} leaves: filled in {fill:.1f} s; inclusion proof {results[size][0] * 1000:.2f} ms, "
            f"consistency proof {results[size][1] * 1000:.2f} ms (medians of {args.rounds})"
        )
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        ratio = math.log2(large) / math.log2(small)
        print(
            f"growth {small} -> {large}: inclusion x{results[large][0] / results[small][0]:.2f}, consistency "
            f"x{results[large][1] / results[small][1]:.2f} (log2 ratio {ratio:.2f})"
        )


if __name__ == "__main__":
    main()
