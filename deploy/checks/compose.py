#!/usr/bin/env python3
"""Validate deploy/compose.yaml offline: against the Compose Specification's JSON schema (vendored in
deploy/schemas/compose-spec.json, see deploy/schemas/README.md), then against the portal's own rules: a
worker per queue of CELERY_TASK_ROUTES plus `default`, exactly one beat, migrations as a one-shot service
followed by a one-shot re-run of create-roles.sh, both of which everything else waits for, nothing of ours
running with privileges, every secret the production settings require given as a mounted secret file, and
each process connected as its database role (deploy/postgres/README.md): migrations as the owner, the audit
queue's worker as the sealer, the rest as the application. PostgreSQL's init folder holds only what the
image may run there (it executes every *.sh it finds, with no argument).

    python3 deploy/checks/compose.py [deploy/compose.yaml]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
QUEUES = ("default", "audit", "scoring", "exports")
# What production refuses to start without, each read from a mounted secret file (NAME_FILE).
REQUIRED_SECRET_FILES = (
    "SECRET_KEY_FILE",
    "DATABASE_URL_FILE",
    "AUDIT_SIGNING_KEY_FILE",
    "IDENTIFIER_KEYS_FILE",
    "IDENTIFIER_HMAC_KEY_FILE",
)
# The database URL secret of each role.
OWNER_URL, APP_URL, SEALER_URL = "database_url_owner", "database_url_app", "database_url_sealer"
DATABASE_URLS = (OWNER_URL, APP_URL, SEALER_URL)
INITDB = "/docker-entrypoint-initdb.d"
INITDB_SUFFIXES = (".sh", ".sql", ".sql.gz", ".sql.xz", ".sql.zst")


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _secrets(service: dict[str, Any]) -> list[str]:
    return [s if isinstance(s, str) else str(s.get("source", "")) for s in service.get("secrets", [])]


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found.append((str(volume.get("source", "")), str(volume.get("target", ""))))
        else:
            source, _, rest = str(volume).partition(":")
            found.append((source, rest.split(":")[0]))
    return found


def secret_errors(name: str, service: dict[str, Any], declared: set[str], url: str) -> list[str]:
    """Every required setting from a secret file the service mounts; the database URL of the right role."""
    errors = []
    environment = service.get("environment") or {}
    mounted = _secrets(service)
    for key in REQUIRED_SECRET_FILES:
        if not environment.get(key):
            errors.append(f"{name}: {key} is not set (production refuses to start without it)")
    for key, value in environment.items():
        if key.endswith("_FILE") and str(value).startswith("/run/secrets/"):
            secret = str(value).removeprefix("/run/secrets/")
            if secret not in mounted:
                errors.append(f"{name}: {key} reads the secret {secret}, which the service does not mount")
            if secret not in declared:
                errors.append(f"{name}: {key} reads the secret {secret}, which is not declared under secrets")
    if environment.get("DATABASE_URL_FILE") != f"/run/secrets/{url}":
        errors.append(f"{name}: must connect with the secret {url} (DATABASE_URL_FILE)")
    others = sorted(set(mounted) & set(DATABASE_URLS) - {url})
    if others:
        errors.append(f"{name}: mounts the database URL of another role: {', '.join(others)}")
    return errors


def initdb_errors(services: dict[str, dict[str, Any]], base: Path) -> list[str]:
    """The postgres image runs every script of its init folder once, with no argument: only scripts made for
    that may be there (not create-roles.sh, which needs the database name; not a README)."""
    errors = []
    for name, service in services.items():
        for source, target in _volumes(service):
            if target.rstrip("/") != INITDB:
                continue
            folder = (base / source).resolve() if source.startswith(".") else None
            if folder is None or not folder.is_dir():
                errors.append(f"{name}: {INITDB} must be a folder of this repository ({source})")
                continue
            for path in sorted(folder.iterdir()):
                if path.name == "create-roles.sh" or not path.name.endswith(INITDB_SUFFIXES):
                    errors.append(
                        f"{name}: {INITDB} holds {path.name}, which the image would run or trip over"
                    )
                elif path.name.endswith(".sh") and not os.access(path, os.X_OK):
                    errors.append(
                        f"{name}: {INITDB}/{path.name} is not executable (the image would source it)"
                    )
    return errors


def rule_errors(document: dict[str, Any], base: Path = DEPLOY) -> list[str]:
    services: dict[str, dict[str, Any]] = document.get("services", {})
    declared = set(document.get("secrets") or {})
    errors: list[str] = []
    portal = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("${PORTAL_IMAGE")}
    workers: dict[str, list[str]] = {}
    beats = []
    for name, service in portal.items():
        command = _command(service)
        if command[:4] == ["celery", "-A", "portal", "worker"]:
            queue = command[command.index("-Q") + 1] if "-Q" in command else ""
            workers.setdefault(queue, []).append(name)
        if command[:4] == ["celery", "-A", "portal", "beat"]:
            beats.append(name)
            if "scale" in service or "replicas" in service.get("deploy", {}):
                errors.append(f"{name}: beat must not be scaled")
        if service.get("user") in ("root", "0", "0:0"):
            errors.append(f"{name}: runs as root")
        if service.get("privileged"):
            errors.append(f"{name}: privileged")
        if name != "migrate":
            for first in ("migrate", "roles"):
                waits = service.get("depends_on", {}).get(first, {})
                if waits.get("condition") != "service_completed_successfully":
                    errors.append(f"{name}: must wait for the {first} service to complete")
    for queue in QUEUES:
        if len(workers.get(queue, [])) != 1:
            errors.append(f"queue {queue}: {len(workers.get(queue, []))} worker services, expected 1")
    for queue in set(workers) - set(QUEUES):
        errors.append(f"worker services for an unknown queue {queue!r}: {workers[queue]}")
    # Export files: written by the exports worker, served by web, so both mount one volume there.
    sharing = [
        name
        for name in ("web", *workers.get("exports", []))
        if not any(
            str(v).endswith(":/var/lib/portal/exports") for v in portal.get(name, {}).get("volumes", [])
        )
    ]
    if sharing:
        errors.append(f"{', '.join(sharing)}: must mount the exports volume at /var/lib/portal/exports")
    if len(beats) != 1:
        errors.append(f"{len(beats)} beat services, expected exactly one")
    migrate = services.get("migrate", {})
    if migrate.get("restart") != "no" or "migrate" not in " ".join(_command(migrate)):
        errors.append("migrate: a one-shot service (restart: no) that runs manage.py migrate")
    # create-roles.sh after every migrate: the new tables get their grants before anything serves them.
    roles = services.get("roles", {})
    roles_mounts = [source for source, _ in _volumes(roles)]
    if (
        roles.get("restart") != "no"
        or "./postgres/create-roles.sh" not in roles_mounts
        or roles.get("depends_on", {}).get("migrate", {}).get("condition") != "service_completed_successfully"
    ):
        errors.append(
            "roles: a one-shot service (restart: no) running create-roles.sh once migrate completed"
        )
    for name, service in portal.items():
        queue = ""
        command = _command(service)
        if command[:4] == ["celery", "-A", "portal", "worker"] and "-Q" in command:
            queue = command[command.index("-Q") + 1]
        url = OWNER_URL if name == "migrate" else SEALER_URL if queue == "audit" else APP_URL
        errors.extend(secret_errors(name, service, declared, url))
    errors.extend(initdb_errors(services, base))
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith(("SECRET_KEY", "PASSWORD", "SIGNING_KEY", "HMAC_KEY")) and value:
                errors.append(f"{name}: secret {key} given in clear; use {key}_FILE and a secret")
    return errors


def problems(path: Path, base: Path = DEPLOY) -> list[str]:
    """Relative paths in the file are taken from BASE (the folder of deploy/compose.yaml)."""
    document = yaml.safe_load(path.read_text())
    errors = schema_errors(document)
    return errors or rule_errors(document, base)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEPLOY / "compose.yaml"
    found = problems(path)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        print(f"ok: {path} is valid against the Compose Specification schema and the portal's rules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
