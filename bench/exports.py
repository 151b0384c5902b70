"""A CSV export at COPY speed (SPEC §9): the portal's transactions export vs PostgreSQL's own
`COPY (the same query) TO STDOUT WITH CSV`, in the same run, alternating rounds, medians.

Measured in-process against PostgreSQL (DATABASE_URL's server), on the request benchmarks' world
(bench/access.py's scratch database, `--consumers` synthetic consumers: 21,100 make about 1,000,000
transactions; loaded once, reused). The export is built as a worker builds it (export_build: the policy's
query, masking, formula escaping, SHA-256, the subject list) for a regulator holding export_records on a
segment of 1,000 consumers and on one of every consumer; the baseline is the same SELECT (the policy's,
unformatted) copied to a sink that only counts bytes. Also the row-by-row builder (the SQLite path) once,
for comparison. Each size runs in a child process, so that its peak RSS is its own.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/exports.py [--consumers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from _common import median, open_request_world


class Counter:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def child(slug: str, rounds: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from portal.access import exports, policy, services
    from portal.access.models import AccessGrant, Export
    from portal.accounts import services as accounts
    from portal.accounts.models import Organisation, User
    from portal.records.models import Segment

    segment = Segment.objects.get(slug=slug)
    operator = User.objects.get(username="compliance")
    user, _ = User.objects.get_or_create(
        username="bench-exporter",
        defaults={"role": "regulator", "organisation": Organisation.objects.get(short_name="nfra")},
    )
    if not user.membership_in_force:
        membership = accounts.membership_request(
            requester=operator,
            user=user,
            role="regulator",
            organisation=user.organisation,
            reason="Benchmark.",
        )
        accounts.membership_approve(
            membership=membership, approver=User.objects.get(username="compliance2"), note="Benchmark."
        )
        user.membership_changed()
    grant = AccessGrant.objects.filter(
        grantee_user=user,
        segment=segment,
        status="approved",
        valid_until__gt=timezone.now() + timedelta(hours=1),
    ).first()
    if grant is None:
        grant = services.grant_request(
            requester=user,
            segment=segment,
            permissions=["view_records", "export_records"],
            purpose="Benchmark.",
            legal_basis="Benchmark.",
            case_reference=f"BENCH-EXPORT-{slug}",
            valid_until=timezone.now() + timedelta(days=1),
            for_requester_only=True,
        )
        services.grant_approve(grant=grant, approver=operator)

    def new_export() -> Export:
        return Export.objects.create(
            public_id=uuid.uuid4(),
            requested_by=user,
            grant=grant,
            segment=segment,
            kind=Export.Kind.TRANSACTIONS,
        )

    scope = policy.scope_for(user, grant_id=grant.pk)
    sql, params = (
        exports._transactions(new_export(), scope)
        .order_by("occurred_at", "pk")
        .values_list(*exports._TRANSACTION_VALUES)  # the columns the export's own COPY reads
        .query.sql_with_params()
    )

    def copy() -> float:
        with connection.cursor() as cursor:
            query = cursor.mogrify(sql, params).decode()
            started = time.perf_counter()
            cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", Counter())
            return time.perf_counter() - started

    built: list[Export] = []

    def export() -> float:
        started = time.perf_counter()
        built.append(exports.export_build(export_id=new_export().pk))
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {"copy": [], "export": []}
    for round_ in range(rounds):
        for name in ("copy", "export") if round_ % 2 == 0 else ("export", "copy"):
            samples[name].append(copy() if name == "copy" else export())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, before the row-by-row builder runs
    result = built[-1]
    assert result.status == Export.Status.READY, result.error
    digests = {e.sha256 for e in built}
    assert len(digests) == 1, "exports of the same rows differ"
    started = time.perf_counter()
    rows_path = exports.export_dir() / "bench-rows.csv"
    count, _subjects, digest = exports.write_rows(rows_path, result, scope, True)
    by_rows = time.perf_counter() - started
    rows_path.unlink()
    assert (count, digest) == (result.row_count, result.sha256), "the COPY builder wrote other bytes"
    for e in built:
        exports._delete_files([str(e.public_id)])
    return {
        "rows": result.row_count,
        "copy": median(samples["copy"]),
        "export": median(samples["export"]),
        "rows_builder": by_rows,
        "rss_mib": rss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=21_100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            open_request_world(args.consumers)
        print(json.dumps(child(args.child, args.rounds)))
        return
    open_request_world(args.consumers)  # prints the server's settings, DEBUG and the mode
    # The segments are bench/access.py's (the first 1,000 consumers, and everyone): run it first.
    from django.conf import settings

    print(f"exports: DEBUG={settings.DEBUG}, {args.rounds} alternating rounds, medians")
    for slug in ("bench-1k", "bench-all"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--consumers",
                str(args.consumers),
                "--rounds",
                str(args.rounds),
                "--child",
                slug,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows = r["rows"]
        print(
            f"  {slug}: {rows:,} rows; COPY {rows / r['copy']:,.0f} rows/s, export {rows / r['export']:,.0f} "
            f"rows/s, ratio {r['copy'] / r['export']:.2f} (target >= 0.3); row-by-row builder "
            f"{rows / r['rows_builder']:,.0f} rows/s, ratio {r['copy'] / r['rows_builder']:.2f}; "
            f"peak RSS {r['rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
