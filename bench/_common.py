"""Shared set-up for benchmarks: a scratch PostgreSQL database, server settings, medians."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


def scratch_database(name: str) -> str:
    """Create (or re-create) database `name` on the server of DATABASE_URL; return its URL."""
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


def scratch_database_kept(name: str) -> str:
    """Like scratch_database, but keeps an existing database: loading millions of rows takes minutes."""
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
