"""What the audit trail costs and how fast it seals and verifies (SPEC §9).

Measured in-process (Django's test client through the full WSGI handler; sealing and verification called
directly), against PostgreSQL in the scratch database `portal_bench_access` that bench/access.py fills (it is
filled here too if missing). Rounds alternate the order; medians reported.

1. The consumer-transactions list as `regulator` with and without the durable audit write (same handler
   otherwise; the benchmark asserts byte-identical bodies). Target: audit cost <= 20%.
2. Sealing with the Merkle tree: the events those audited requests wrote, sealed by audit.chain.events_seal,
   which extends the RFC 6962 tree (audit/tiles.py) in the same transaction as the chain; events/s divided by
   the audited requests/s of (1), and the tree's share of the sealing time. Target >= 10.
3. Verification: audit.verify.chain_verify over the whole chain, vs reading the same events (with their
   subjects) from the database and hashing their canonical bytes, one SHA-256 per event. Target >= 0.5.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/audit.py
"""

from __future__ import annotations

import hashlib
import time

from _common import client_for, median, open_request_world, request_bench_arguments


def main() -> None:
    args = request_bench_arguments(__doc__)
    regulator, path = open_request_world(args.consumers)

    from django.conf import settings

    from audit import chain, tiles
    from audit.chain import events_seal, iter_sealed
    from audit.models import AuditEvent
    from audit.verify import chain_verify

    print(f"DEBUG={settings.DEBUG}")

    events_seal()  # start from a sealed chain: only this run's events are pending
    variants = {
        "without audit": client_for(regulator, audit=False),
        "with audit": client_for(regulator, audit=True),
    }
    bodies = {name: client.get(path).content for name, client in variants.items()}
    assert len(set(bodies.values())) == 1, "bodies differ between variants"

    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        names = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in names:
            started = time.perf_counter()
            for _ in range(args.requests):
                variants[name].get(path)
            rates[name].append(args.requests / (time.perf_counter() - started))
    plain, audited = median(rates["without audit"]), median(rates["with audit"])
    print(
        f"consumer-transactions list: without audit {plain:.0f} req/s, with audit {audited:.0f} req/s; "
        f"audit cost {(1 - audited / plain) * 100:.0f}% (target <= 20%)"
    )

    pending = AuditEvent.objects.filter(chain_position__isnull=True).count()
    # The sealer's own call into the tree, timed where it is made (chain.py calls tiles.append).
    tree_seconds = [0.0]
    append = tiles.append

    def timed_append(start: int, leaf_hashes):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return append(start, leaf_hashes)
        finally:
            tree_seconds[0] += time.perf_counter() - began

    chain.tiles.append = timed_append  # type: ignore[method-assign]
    tree_before = tiles.size()
    started = time.perf_counter()
    sealed = events_seal().sealed
    elapsed = time.perf_counter() - started
    chain.tiles.append = append  # type: ignore[method-assign]
    seal_rate = sealed / elapsed
    assert tiles.size() == tree_before + sealed, "the tree did not grow with the chain"
    print(
        f"sealing with the Merkle tree: {sealed:,} events ({pending:,} pending) at {seal_rate:,.0f} events/s "
        f"(tree {tree_before:,} -> {tiles.size():,} leaves; extending it took "
        f"{tree_seconds[0] / elapsed:.0%} of the sealing time); "
        f"÷ audited requests/s = {seal_rate / audited:.1f} (target >= 10)"
    )

    total = AuditEvent.objects.count()
    verify_times, baseline_times = [], []
    for round_ in range(3):
        order = ("verify", "baseline") if round_ % 2 == 0 else ("baseline", "verify")
        for name in order:
            started = time.perf_counter()
            if name == "verify":
                result = chain_verify(stored_checkpoints=False)
                assert result.ok, result.as_dict()
                verify_times.append(time.perf_counter() - started)
            else:
                count = 0
                for link in iter_sealed():
                    hashlib.sha256(link.canonical).digest()
                    count += 1
                assert count == total
                baseline_times.append(time.perf_counter() - started)
    verify_rate, read_rate = total / median(verify_times), total / median(baseline_times)
    print(
        f"verification: {verify_rate:,.0f} events/s; reading and hashing the same {total:,} events: "
        f"{read_rate:,.0f} events/s; ratio {verify_rate / read_rate:.2f} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()
