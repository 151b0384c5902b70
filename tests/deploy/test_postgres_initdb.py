"""deploy/postgres/initdb/10-portal-roles.sh, the wrapper that compose runs as PostgreSQL's init script and
after every migrate: run for real against a scratch database of the test server, with role names of its own
(roles are global to the server) and the passwords from secret files."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.deploy.conftest import DEPLOY

pytestmark = pytest.mark.postgres

WRAPPER = DEPLOY / "postgres" / "initdb" / "10-portal-roles.sh"
SCRIPT = DEPLOY / "postgres" / "create-roles.sh"


PSQL = shutil.which("psql") or "/usr/bin/psql"


def psql(env: dict[str, str], database: str, sql: str, **variables: str) -> str:
    """One statement through psql; VARIABLES are psql variables (quoted in SQL as :'name')."""
    options = [f"--variable={name}={value}" for name, value in variables.items()]
    done = subprocess.run(
        [PSQL, "--no-psqlrc", "--variable=ON_ERROR_STOP=1", *options, "--dbname", database, "-At"],
        input=sql, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def scratch(db, tmp_path) -> Iterator[dict[str, str]]:
    """A fresh database and three role names; everything dropped afterwards."""
    settings_dict = connection.settings_dict
    suffix = uuid.uuid4().hex[:8]
    server = {
        "PATH": os.environ["PATH"],
        "PGHOST": settings_dict["HOST"] or "127.0.0.1",
        "PGPORT": str(settings_dict["PORT"] or 5432),
        "PGUSER": settings_dict["USER"],
        "PGPASSWORD": settings_dict["PASSWORD"] or "",
    }
    database = f"{settings_dict['NAME']}_initdb_{suffix}"
    names = {role: f"initdb_{role}_{suffix}" for role in ("owner", "app", "sealer")}
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for role in names:
        # Surrounding whitespace is not part of the password (as the portal reads its *_FILE settings).
        (secrets_dir / f"portal_{role}_password").write_text(f"  {secrets.token_urlsafe(16)}\n")
    psql(server, "postgres", 'CREATE DATABASE :"db"', db=database)
    env = {
        **server,
        "PORTAL_SECRETS_DIR": str(secrets_dir),
        "PORTAL_CREATE_ROLES": str(SCRIPT),
        "PORTAL_OWNER_ROLE": names["owner"],
        "PORTAL_APP_ROLE": names["app"],
        "PORTAL_SEALER_ROLE": names["sealer"],
        "POSTGRES_DB": database,
    }
    try:
        yield env
    finally:
        psql(server, "postgres", 'DROP DATABASE IF EXISTS :"db" WITH (FORCE)', db=database)
        for name in names.values():
            psql(server, "postgres", 'DROP ROLE IF EXISTS :"role"', role=name)


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_wrapper_is_the_only_init_script_and_is_executable():
    assert [p.name for p in (DEPLOY / "postgres" / "initdb").iterdir()] == [WRAPPER.name]
    assert os.access(WRAPPER, os.X_OK)  # the image sources non-executable scripts into its own shell


def test_wrapper_makes_the_roles_with_the_passwords_of_the_secret_files(scratch):
    done = run(scratch)
    assert done.returncode == 0, done.stderr
    database = scratch["POSTGRES_DB"]
    suffix = database[-8:]
    names = [f"initdb_{role}_{suffix}" for role in ("app", "owner", "sealer")]
    roles = psql(
        scratch, database,
        "SELECT string_agg(rolname || ':' || (rolpassword IS NOT NULL)::text || ':' || rolsuper::text, ','"
        " ORDER BY rolname) FROM pg_authid WHERE rolname = ANY(string_to_array(:'names', ','))",
        names=",".join(names),
    )  # fmt: skip
    assert roles == ",".join(f"{name}:true:false" for name in names)
    # The stored verifier is that of the file's content without its surrounding whitespace.
    password = Path(scratch["PORTAL_SECRETS_DIR"], "portal_sealer_password").read_text().strip()
    sealer = {**scratch, "PGUSER": f"initdb_sealer_{suffix}", "PGPASSWORD": password}
    assert psql(sealer, database, "SELECT current_user") == f"initdb_sealer_{suffix}"
    # Idempotent: compose's `roles` service runs it again after every migrate.
    again = run(scratch)
    assert again.returncode == 0, again.stderr


def test_wrapper_refuses_without_a_password_file_or_a_database(scratch):
    Path(scratch["PORTAL_SECRETS_DIR"], "portal_app_password").unlink()
    done = run(scratch)
    assert done.returncode == 1
    assert "portal_app_password" in done.stderr
    no_database = {k: v for k, v in scratch.items() if k != "POSTGRES_DB"}
    done = run(no_database)
    assert done.returncode == 1
    assert "no database" in done.stderr
