"""Shared set-up for benchmarks: a scratch PostgreSQL database, server settings, medians."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


def _scratch_name(name: str) -> str:
    """`name`, plus BENCH_DATABASE_SUFFIX when set: benchmarks sharing one server keep apart."""
    return name + os.environ.get("BENCH_DATABASE_SUFFIX", "")


def scratch_database(name: str) -> str:
    """Create (or re-create) database `name` on the server of DATABASE_URL; return its URL."""
    name = _scratch_name(name)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("benchmarks measure PostgreSQL: set DATABASE_URL=postgres://user@host:port/db")
    import psycopg2

    parts = urlparse(url)
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return urlunparse(parts._replace(path=f"/{name}"))


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    # As production runs: DEBUG keeps every query's SQL and time in memory and adds checks of its own.
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def server_settings() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW fsync")
        (fsync,) = cursor.fetchone()
        cursor.execute("SHOW synchronous_commit")
        (sync,) = cursor.fetchone()
    return f"PostgreSQL fsync={fsync} synchronous_commit={sync}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternating(calls: dict[str, Callable[[], object]], rounds: int, repeat: int) -> dict[str, list[float]]:
    """Seconds per call of each of `calls`, one sample per round: a round runs each call `repeat` times in
    turn, in the opposite order every other round, so that no variant always runs first (after another's
    warm caches, or during a neighbour's load). The benchmarks report medians of these samples."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            call = calls[name]
            started = time.perf_counter()
            for _ in range(repeat):
                call()
            samples[name].append((time.perf_counter() - started) / repeat)
    return samples


def rates(samples: dict[str, list[float]]) -> dict[str, float]:
    """Median calls per second of each variant's samples (seconds per call)."""
    return {name: 1 / median(values) for name, values in samples.items()}


def scratch_database_kept(name: str) -> str:
    """Like scratch_database, but keeps an existing database: loading millions of rows takes minutes."""
    name = _scratch_name(name)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("benchmarks measure PostgreSQL: set DATABASE_URL=postgres://user@host:port/db")
    import psycopg2

    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def settle(tables: list[str]) -> None:
    """Statistics and visibility maps for freshly loaded tables, as production's autovacuum keeps them.

    Where autovacuum is off (as on this bench server), VACUUM ANALYZE: without a visibility map an index-only
    scan must visit the heap, and the benchmark would measure the missing maintenance, not the query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (autovacuum,) = cursor.fetchone()
        command = "ANALYZE" if autovacuum == "on" else "VACUUM (ANALYZE)"
        for table in tables:
            cursor.execute(f"{command} {table}")
    if autovacuum != "on":
        print(f"autovacuum is off on this server: VACUUM (ANALYZE) of {', '.join(tables)} after loading")


def client_for(user, *, audit: bool, bare: bool = False):
    """A Django test client with its own handler: the audit middleware left out unless `audit`, and with
    `bare` its requests routed to bench/bare_urls.py. Authenticated with a fresh bearer token of `user`."""
    from django.conf import settings
    from django.test import Client, override_settings

    from portal.accounts.tokens import token_create

    middleware = [m for m in settings.MIDDLEWARE if audit or m != "audit.middleware.AuditMiddleware"]
    if bare:
        middleware.append("bench_middleware.BareUrlconf")
    client = Client()
    with override_settings(MIDDLEWARE=middleware):
        client.handler.load_middleware()
    if user is not None:
        secret, _ = token_create(user=user)
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


REQUEST_WORLD = "portal_bench_access"


def request_bench_arguments(doc: str):
    """The command line shared by the request benchmarks (bench/access.py, bench/audit.py)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--consumers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200, help="requests per variant per round")
    return parser.parse_args()


def open_request_world(consumers: int):
    """Set up Django on the request benchmarks' scratch database, loaded (once) with `consumers` synthetic
    consumers and the demo organisations, users and grants. Returns `regulator` and the path of the
    consumer-transactions list of the first consumer in their granted segment."""
    import time
    from datetime import date

    os.environ["PORTAL_EMBEDDED_BEAT"] = "false"
    # One user sends thousands of requests a minute here: the per-user rate limit would measure itself.
    os.environ.setdefault("PORTAL_API_USER_THROTTLE_RATE", "100000000/min")
    sys.path.insert(0, str(ROOT / "bench"))
    setup_django(scratch_database_kept(REQUEST_WORLD))
    from django.conf import settings
    from django.core.management import call_command

    from portal.accounts.models import User
    from portal.records import loader
    from portal.records.models import Consumer

    print(server_settings())
    print(f"DEBUG={settings.DEBUG}")
    print(
        "prepared statements (DB_PREPARED_STATEMENTS): "
        + (
            "on, the product's hot statements planned once per connection"
            if settings.DB_PREPARED_STATEMENTS
            else "off, every statement planned on every call"
        )
    )
    print(f"mode: in-process (Django test client through the full WSGI handler), {os.cpu_count()} cores")
    started = time.perf_counter()
    result = loader.load(seed=1, consumers=consumers, end=date(2026, 11, 1))
    if result.consumers:
        print(
            f"loaded {result.consumers:,} consumers, {result.transactions:,} transactions "
            f"in {time.perf_counter() - started:.0f} s"
        )
    call_command("seed_demo", "--consumers", "1", verbosity=0)  # organisations, users, demo grants
    consumer = Consumer.objects.filter(
        memberships__segment__slug="chengdu-chongqing-consumer-finance"
    ).earliest("public_id")
    return User.objects.get(username="regulator"), f"/api/v1/consumers/{consumer.public_id}/transactions/"
