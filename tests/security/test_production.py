"""Production settings: MFA on, secure cookies and HSTS, and no start beside demo accounts (accounts.E001)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.accounts.checks import demo_accounts_check, refuse_demo_accounts
from tests.conftest import ROOT
from tests.factories import UserFactory

PRODUCTION_ENV = {
    "PORTAL_ENV": "production",
    "SECRET_KEY": "x" * 64,
    "DATABASE_URL": "postgres://u@h/db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "portal.example",
    "AUDIT_SIGNING_KEY": "A" * 43 + "=",
    # Required by production once identifiers are encrypted at rest; unused before.
    "IDENTIFIER_KEYS": "k1:" + "B" * 43 + "=",
    "IDENTIFIER_HMAC_KEY": "h1:" + "C" * 43 + "=",
}
SHOWN = [
    "MFA_REQUIRED",
    "PORTAL_DEMO",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_SSL_REDIRECT",
    "X_FRAME_OPTIONS",
    "SESSION_IDLE_TIMEOUT_SECONDS",
    "AXES_FAILURE_LIMIT",
]


def production_settings(**env: str) -> subprocess.CompletedProcess:
    unset = ("DEBUG", "PORTAL_DEMO", "PORTAL_MFA_REQUIRED", "TEST_DATABASE_NAME")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    code = (
        "import json; from django.conf import settings; import portal.settings as s; "
        f"print(json.dumps({{name: getattr(s, name, None) for name in {SHOWN!r}}}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **PRODUCTION_ENV, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_requires_mfa_secure_cookies_and_hsts():
    done = production_settings()
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["MFA_REQUIRED"] is True and shown["PORTAL_DEMO"] is False
    assert shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"] and shown["SESSION_COOKIE_HTTPONLY"]
    assert shown["SECURE_HSTS_SECONDS"] >= 31536000 and shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert shown["SECURE_SSL_REDIRECT"] and shown["X_FRAME_OPTIONS"] == "DENY"
    assert shown["SESSION_IDLE_TIMEOUT_SECONDS"] == 900 and shown["AXES_FAILURE_LIMIT"] == 5


def test_production_refuses_to_turn_mfa_off_outside_a_demo():
    done = production_settings(PORTAL_MFA_REQUIRED="false")
    assert done.returncode != 0
    assert "PORTAL_MFA_REQUIRED" in done.stderr
    assert production_settings(PORTAL_MFA_REQUIRED="false", PORTAL_DEMO="true").returncode == 0


def test_development_does_not_require_mfa():
    clean = {k: v for k, v in os.environ.items() if k not in ("PORTAL_ENV", "PORTAL_MFA_REQUIRED")}
    done = subprocess.run(
        [sys.executable, "-c", "import portal.settings as s; print(s.MFA_REQUIRED, s.PRODUCTION)"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.django_db
def test_demo_accounts_fail_the_production_check_unless_it_is_a_demo(settings):
    settings.PRODUCTION = True
    settings.PORTAL_DEMO = False
    assert demo_accounts_check(databases=["default"]) == []
    UserFactory.create(username="regulator", is_demo=True)
    errors = demo_accounts_check(databases=["default"])
    assert [e.id for e in errors] == ["accounts.E001"]
    with pytest.raises(ImproperlyConfigured, match="Demo accounts"):
        refuse_demo_accounts()
    settings.PORTAL_DEMO = True
    assert demo_accounts_check(databases=["default"]) == []
    refuse_demo_accounts()


@pytest.mark.django_db
def test_outside_production_demo_accounts_are_fine(settings):
    settings.PRODUCTION = False
    UserFactory.create(username="regulator", is_demo=True)
    assert demo_accounts_check(databases=["default"]) == []


@pytest.mark.django_db
def test_seed_demo_marks_its_users(settings):
    from django.core.management import call_command

    from portal.accounts.models import User

    call_command("seed_demo", "--consumers", "50", verbosity=0)
    demo = set(User.objects.filter(is_demo=True).values_list("username", flat=True))
    assert demo == {"regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin"}
