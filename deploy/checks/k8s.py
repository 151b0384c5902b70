#!/usr/bin/env python3
"""The portal's rules for its Kubernetes manifests (deploy/k8s/), beyond their schemas (which CI checks
with kubernetes-validate): web with a HorizontalPodAutoscaler and /healthz probes, one worker Deployment
per queue, beat a singleton (1 replica, Recreate), migrations a Job, export files on a volume shared by web
and the exports workers, every Pod non-root with a read-only
root filesystem and no privilege escalation, secrets only by reference to a Secret, every portal process
given the secrets production refuses to start without, each process connected as its database role
(deploy/postgres/README.md: migrations as the owner, the audit worker as the sealer, the rest as the
application), create-roles.sh run after the migrations in the migration Job, and the nginx sidecar's
site identical to deploy/nginx/container.conf.template.

    python3 deploy/checks/k8s.py [deploy/k8s]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
QUEUES = ("default", "audit", "scoring", "exports")
PORTAL_VAR_DIR = "/var/lib/portal"
SECRET_NAMES = (
    "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AUDIT_SIGNING_KEY", "AUDIT_QUERY_HMAC_KEY", "IDENTIFIER_KEYS",
    "IDENTIFIER_HMAC_KEY", "PGPASSWORD",
)  # fmt: skip
# What production refuses to start without (portal/settings.py).
REQUIRED = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "AUDIT_SIGNING_KEY",
    "IDENTIFIER_KEYS",
    "IDENTIFIER_HMAC_KEY",
)
# The key of portal-secrets holding each role's database URL.
OWNER_URL, APP_URL, SEALER_URL = "DATABASE_URL_OWNER", "DATABASE_URL", "DATABASE_URL_SEALER"


def load(folder: Path) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def _pod(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in ("Deployment", "Job"):
        return document["spec"]["template"]["spec"]
    return None


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def _runs_portal(container: dict[str, Any]) -> bool:
    """A container that starts the portal's code (and so its settings): gunicorn, celery or manage.py."""
    command = container.get("command", [])
    return bool(command) and (command[0] in ("gunicorn", "celery") or "manage.py" in " ".join(command))


def _secret_key_of(container: dict[str, Any], name: str) -> str | None:
    for variable in container.get("env", []):
        if variable["name"] == name:
            key = variable.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
            return str(key) if key else ""  # "": not from a Secret (reported as such above)
    return None


def database_role_errors(by_kind: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Every portal process has the secrets production requires, and the database URL of its role."""
    errors: list[str] = []
    for kind in ("Deployment", "Job"):
        for name, document in by_kind.get(kind, {}).items():
            pod = document["spec"]["template"]["spec"]
            for container in _containers(pod):
                if not _runs_portal(container):
                    continue
                where = f"{kind}/{name} container {container['name']}"
                missing = [key for key in REQUIRED if _secret_key_of(container, key) is None]
                if missing:
                    errors.append(f"{where}: production refuses to start without {', '.join(missing)}")
                command = container["command"]
                queue = command[command.index("-Q") + 1] if "-Q" in command else ""
                wanted = OWNER_URL if kind == "Job" else SEALER_URL if queue == "audit" else APP_URL
                got = _secret_key_of(container, "DATABASE_URL")
                if got is not None and got != wanted:
                    errors.append(f"{where}: DATABASE_URL must be the Secret key {wanted}, not {got}")
    return errors


def migrate_job_errors(jobs: dict[str, dict[str, Any]]) -> list[str]:
    """The Job runs the migrations to completion (an init container), then create-roles.sh."""
    migrate = jobs.get("portal-migrate")
    if migrate is None:
        return ["no Job portal-migrate"]
    pod = migrate["spec"]["template"]["spec"]
    errors = []
    if not any("manage.py migrate" in " ".join(c["command"]) for c in pod.get("initContainers", [])):
        errors.append("Job portal-migrate: an init container must run manage.py migrate")
    if not any(
        "create-roles.sh" in " ".join(c["command"]) and "manage.py" not in " ".join(c["command"])
        for c in pod["containers"]
    ):
        errors.append("Job portal-migrate: after the migrations, a container must run create-roles.sh")
    return errors


def problems(documents: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], {})[document["metadata"]["name"]] = document
    deployments = by_kind.get("Deployment", {})

    for document in documents:
        pod = _pod(document)
        if pod is None:
            continue
        name = f"{document['kind']}/{document['metadata']['name']}"
        security = pod.get("securityContext", {})
        if not security.get("runAsNonRoot") or not security.get("runAsUser"):
            errors.append(f"{name}: the Pod must set runAsNonRoot and a runAsUser")
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: the portal needs no API token (automountServiceAccountToken: false)")
        for container in _containers(pod):
            where = f"{name} container {container['name']}"
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: allowPrivilegeEscalation must be false")
            if context.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: readOnlyRootFilesystem must be true")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                errors.append(f"{where}: must drop ALL capabilities")
            if context.get("runAsUser") == 0 or context.get("privileged"):
                errors.append(f"{where}: runs as root or privileged")
            for variable in container.get("env", []):
                if variable["name"] in SECRET_NAMES and "secretKeyRef" not in variable.get("valueFrom", {}):
                    errors.append(f"{where}: {variable['name']} must come from a Secret (secretKeyRef)")

    web = deployments.get("portal-web")
    if web is None:
        errors.append("no Deployment portal-web")
    else:
        gunicorn = next(c for c in web["spec"]["template"]["spec"]["containers"] if c["name"] == "gunicorn")
        for probe in ("startupProbe", "readinessProbe"):
            if gunicorn.get(probe, {}).get("httpGet", {}).get("path") != "/healthz":
                errors.append(f"portal-web: {probe} must be on /healthz")
        if "livenessProbe" not in gunicorn:
            errors.append("portal-web: no livenessProbe")
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
    ]
    if targets != ["portal-web"]:
        errors.append(f"exactly one HorizontalPodAutoscaler, for portal-web (found for {targets})")
    if "portal-web" not in by_kind.get("Service", {}):
        errors.append("no Service portal-web")

    for queue in QUEUES:
        worker = deployments.get(f"portal-worker-{queue}")
        if worker is None:
            errors.append(f"no worker Deployment for queue {queue}")
            continue
        command = worker["spec"]["template"]["spec"]["containers"][0]["command"]
        if command[command.index("-Q") + 1] != queue:
            errors.append(f"portal-worker-{queue} consumes {command[command.index('-Q') + 1]!r}")
    beats = [
        d
        for d in deployments.values()
        if d["spec"]["template"]["spec"]["containers"][0]["command"][3] == "beat"
    ]
    if len(beats) != 1:
        errors.append(f"{len(beats)} beat Deployments, expected exactly one")
    for beat in beats:
        if beat["spec"].get("replicas") != 1 or beat["spec"].get("strategy", {}).get("type") != "Recreate":
            errors.append("beat must be a singleton: replicas 1, strategy Recreate")
        if beat["metadata"]["name"] in targets:
            errors.append("beat must never be autoscaled")

    # Export files: written by the exports workers, served by web, so both mount the one shared claim there.
    claims = by_kind.get("PersistentVolumeClaim", {})
    exports_claim = claims.get("portal-exports", {}).get("spec", {})
    if "ReadWriteMany" not in exports_claim.get("accessModes", []):
        errors.append("PersistentVolumeClaim portal-exports must be ReadWriteMany (web and workers share it)")
    for deployment, container_name in (("portal-web", "gunicorn"), ("portal-worker-exports", "worker")):
        if deployment not in deployments:
            continue
        pod = deployments[deployment]["spec"]["template"]["spec"]
        container = next(c for c in pod["containers"] if c["name"] == container_name)
        volumes = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.get("volumes", [])
        }
        mounted = {m["mountPath"]: volumes.get(m["name"]) for m in container.get("volumeMounts", [])}
        if mounted.get(f"{PORTAL_VAR_DIR}/exports") != "portal-exports":
            errors.append(f"{deployment}: must mount the claim portal-exports at {PORTAL_VAR_DIR}/exports")

    errors.extend(migrate_job_errors(by_kind.get("Job", {})))
    errors.extend(database_role_errors(by_kind))

    template = (DEPLOY / "nginx" / "container.conf.template").read_text()
    nginx = by_kind.get("ConfigMap", {}).get("portal-nginx", {}).get("data", {}).get("portal.conf.template")
    if nginx != template:
        errors.append("ConfigMap portal-nginx differs from deploy/nginx/container.conf.template")
    return errors


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEPLOY / "k8s"
    found = problems(load(folder))
    for problem in found:
        print(f"{folder}: {problem}", file=sys.stderr)
    if not found:
        print(f"ok: {folder} follows the portal's rules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
