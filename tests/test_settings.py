"""Production settings refuse to start when they would be unsafe."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

GOOD_SECRET = "x" * 64
SIGNING_KEY = "A" * 43 + "="  # 32 bytes, base64
IDENTIFIER_KEYS = "k1:" + "B" * 43 + "="  # keyid:32 bytes, base64
IDENTIFIER_HMAC_KEY = "h1:" + "C" * 43 + "="


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "PORTAL_ENV")}
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "true", "SECRET_KEY": GOOD_SECRET}, "DEBUG must be off"),
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": ""}, "DATABASE_URL"),
        ({"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "postgres://u@h/db", "REDIS_URL": ""}, "REDIS_URL"),
        (
            {"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h:6379/0"},
            "AUDIT_SIGNING_KEY",
        ),
        (
            {
                "SECRET_KEY": GOOD_SECRET,
                "DATABASE_URL": "postgres://u@h/db",
                "REDIS_URL": "redis://h:6379/0",
                "AUDIT_SIGNING_KEY": SIGNING_KEY,
            },
            "IDENTIFIER_KEYS",
        ),
        (
            {
                "SECRET_KEY": GOOD_SECRET,
                "DATABASE_URL": "postgres://u@h/db",
                "REDIS_URL": "redis://h:6379/0",
                "AUDIT_SIGNING_KEY": SIGNING_KEY,
                "IDENTIFIER_KEYS": "k1:dG9vIHNob3J0",
                "IDENTIFIER_HMAC_KEY": IDENTIFIER_HMAC_KEY,
            },
            "must be 32 bytes",
        ),
    ],
)
def test_production_refuses_unsafe_settings(env, message):
    done = load_settings(PORTAL_ENV="production", **env)
    assert done.returncode != 0
    assert message in done.stderr


def test_production_starts_with_safe_settings():
    done = load_settings(
        PORTAL_ENV="production",
        SECRET_KEY=GOOD_SECRET,
        DATABASE_URL="postgres://u@h/db",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="portal.example",
        AUDIT_SIGNING_KEY=SIGNING_KEY,
        IDENTIFIER_KEYS=IDENTIFIER_KEYS,
        IDENTIFIER_HMAC_KEY=IDENTIFIER_HMAC_KEY,
    )
    assert done.returncode == 0, done.stderr


def test_a_malformed_boolean_fails_loudly():
    done = load_settings(DEBUG="maybe")
    assert "DEBUG must be a boolean" in done.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(GOOD_SECRET + "\n")
    done = subprocess.run(
        [sys.executable, "-c", "from portal import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY_FILE": str(secret)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == GOOD_SECRET
