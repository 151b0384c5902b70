"""System checks of the accounts: production never runs beside accounts with a published password."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core import checks
from django.db import DatabaseError, connections

# seed_demo's usernames (portal/management/commands/seed_demo.py, USERS; a test keeps the two lists equal).
DEMO_USERNAMES = ("regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin")
# The published default of DEMO_PASSWORD: the password seed_demo gives its users unless told otherwise.
DEMO_DEFAULT_PASSWORD = "portal-demo"  # noqa: S105 (published on purpose; looked for, never used to log in)


def _published_password_users(alias: str) -> list[str]:
    """Active users with one of seed_demo's usernames whose password is still the published default, marked
    or not (e.g. unmarked by hand, or created before the mark existed). At most len(DEMO_USERNAMES) password
    hashes; nothing is written (a hash needing an upgrade is not re-saved)."""
    from portal.accounts.models import User

    candidates = User.objects.using(alias).filter(username__in=DEMO_USERNAMES, is_active=True)
    return sorted(
        username
        for username, encoded in candidates.values_list("username", "password")
        if check_password(DEMO_DEFAULT_PASSWORD, encoded)
    )


def demo_accounts_check(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """accounts.E001: demo accounts exist under production settings outside a demo run: users marked `is_demo`
    (seed_demo's), or active users with one of seed_demo's usernames whose password is the published default
    `portal-demo`. A database check: `check --database default`, `check --deploy --database default` and
    `migrate` run it, and so does the WSGI entry point in production (portal/wsgi.py)."""
    if not settings.PRODUCTION or settings.PORTAL_DEMO or not databases:
        return []
    from portal.accounts.models import User

    errors: list[checks.CheckMessage] = []
    for alias in databases:
        if alias not in connections:
            continue
        try:
            marked = sorted(User.objects.using(alias).filter(is_demo=True).values_list("username", flat=True))
            published = _published_password_users(alias)
        except DatabaseError:
            continue  # not migrated yet: no accounts at all
        if marked or published:
            names = ", ".join(sorted({*marked, *published}))
            errors.append(
                checks.Error(
                    "Demo accounts (created by seed_demo, with a published password) exist in this database: "
                    f"{names}.",
                    hint=(
                        "Delete them, or deactivate and unmark them (is_demo); an account kept active needs "
                        "a password of its own. Or set PORTAL_DEMO=true for a demo run."
                    ),
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
