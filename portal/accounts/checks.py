"""System checks of the accounts: production never runs beside accounts with a published password."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connections


def demo_accounts_check(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """accounts.E001: demo accounts (seed_demo's, marked `is_demo`) exist under production settings outside a
    demo run. A database check: `check --database default`, `check --deploy --database default` and
    `migrate` run it, and so does the WSGI entry point in production (portal/wsgi.py)."""
    if not settings.PRODUCTION or settings.PORTAL_DEMO or not databases:
        return []
    from portal.accounts.models import User

    errors: list[checks.CheckMessage] = []
    for alias in databases:
        if alias not in connections:
            continue
        try:
            present = User.objects.using(alias).filter(is_demo=True).exists()
        except DatabaseError:
            continue  # not migrated yet: no accounts at all
        if present:
            errors.append(
                checks.Error(
                    "Demo accounts (created by seed_demo, with a published password) exist in this database.",
                    hint="Delete or deactivate and unmark them, or set PORTAL_DEMO=true for a demo run.",
                    id="accounts.E001",
                )
            )
    return errors


def refuse_demo_accounts() -> None:
    """Raise when accounts.E001 fails: the production WSGI application refuses to start."""
    from django.core.exceptions import ImproperlyConfigured

    errors = demo_accounts_check(databases=["default"])
    if errors:
        raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint}")
