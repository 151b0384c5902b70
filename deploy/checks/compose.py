#!/usr/bin/env python3
"""Validate deploy/compose.yaml offline: against the Compose Specification's JSON schema (vendored in
deploy/schemas/compose-spec.json, see deploy/schemas/README.md), then against the portal's own rules: a
worker per queue of CELERY_TASK_ROUTES plus `default`, exactly one beat, migrations as a one-shot service
that everything else waits for, nothing of ours running with privileges.

    python3 deploy/checks/compose.py [deploy/compose.yaml]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
QUEUES = ("default", "audit", "scoring", "exports")


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def rule_errors(document: dict[str, Any]) -> list[str]:
    services: dict[str, dict[str, Any]] = document.get("services", {})
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
            waits = service.get("depends_on", {}).get("migrate", {})
            if waits.get("condition") != "service_completed_successfully":
                errors.append(f"{name}: must wait for the migrate service to complete")
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
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith(("SECRET_KEY", "PASSWORD", "SIGNING_KEY", "HMAC_KEY")) and value:
                errors.append(f"{name}: secret {key} given in clear; use {key}_FILE and a secret")
    return errors


def problems(path: Path) -> list[str]:
    document = yaml.safe_load(path.read_text())
    errors = schema_errors(document)
    return errors or rule_errors(document)


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
