"""The Kubernetes manifests follow the portal's rules (their schemas are checked by kubernetes-validate in
.ci/deploy)."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings

from tests.deploy.conftest import DEPLOY, load_script

k8s = load_script("checks/k8s.py")
DOCUMENTS = k8s.load(DEPLOY / "k8s")


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name)


def test_manifests_follow_the_rules():
    assert k8s.problems(DOCUMENTS) == []


def test_every_queue_has_a_worker_deployment():
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE} | {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()}
    assert set(k8s.QUEUES) == queues
    for queue in queues:
        find(DOCUMENTS, "Deployment", f"portal-worker-{queue}")


def test_beat_must_stay_a_singleton():
    documents = copy.deepcopy(DOCUMENTS)
    beat = find(documents, "Deployment", "portal-beat")
    beat["spec"]["replicas"] = 2
    beat["spec"]["strategy"] = {"type": "RollingUpdate"}
    assert "beat must be a singleton: replicas 1, strategy Recreate" in k8s.problems(documents)


def test_secrets_only_by_reference_and_pods_never_root():
    documents = copy.deepcopy(DOCUMENTS)
    worker = find(documents, "Deployment", "portal-worker-audit")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "SECRET_KEY", "value": "x" * 60}, *container["env"][1:]]
    container["securityContext"]["runAsUser"] = 0
    problems = k8s.problems(documents)
    where = "Deployment/portal-worker-audit container worker"
    assert f"{where}: SECRET_KEY must come from a Secret (secretKeyRef)" in problems
    assert f"{where}: runs as root or privileged" in problems


def test_web_needs_its_autoscaler_and_health_probes():
    documents = [d for d in copy.deepcopy(DOCUMENTS) if d["kind"] != "HorizontalPodAutoscaler"]
    web = find(documents, "Deployment", "portal-web")
    del web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    problems = k8s.problems(documents)
    assert "exactly one HorizontalPodAutoscaler, for portal-web (found for [])" in problems
    assert "portal-web: readinessProbe must be on /healthz" in problems


def test_nginx_configmap_is_the_container_template(tmp_path):
    documents = copy.deepcopy(DOCUMENTS)
    config = find(documents, "ConfigMap", "portal-nginx")
    config["data"]["portal.conf.template"] += "# drift\n"
    problems = k8s.problems(documents)
    assert "ConfigMap portal-nginx differs from deploy/nginx/container.conf.template" in problems


def test_config_trusts_only_the_pods_own_nginx():
    config = find(DOCUMENTS, "ConfigMap", "portal-config")["data"]
    assert config["TRUSTED_PROXIES"] == "127.0.0.1,::1"
    web = find(DOCUMENTS, "Deployment", "portal-web")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "GUNICORN_BIND", "value": "127.0.0.1:8000"} in web["env"]


def test_exports_are_shared_between_web_and_the_exports_worker():
    documents = copy.deepcopy(DOCUMENTS)
    worker = find(documents, "Deployment", "portal-worker-exports")
    mounts = worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        m for m in mounts if m["name"] != "exports"
    ]
    find(documents, "PersistentVolumeClaim", "portal-exports")["spec"]["accessModes"] = ["ReadWriteOnce"]
    problems = k8s.problems(documents)
    assert "portal-worker-exports: must mount the claim portal-exports at /var/lib/portal/exports" in problems
    assert "PersistentVolumeClaim portal-exports must be ReadWriteMany (web and workers share it)" in problems
    config = find(DOCUMENTS, "ConfigMap", "portal-config")["data"]
    assert config["PORTAL_VAR_DIR"] == k8s.PORTAL_VAR_DIR


def test_every_portal_process_gets_the_identifier_keys():
    documents = copy.deepcopy(DOCUMENTS)
    beat = find(documents, "Deployment", "portal-beat")["spec"]["template"]["spec"]["containers"][0]
    beat["env"] = [v for v in beat["env"] if v["name"] != "IDENTIFIER_KEYS"]
    assert (
        "Deployment/portal-beat container beat: production refuses to start without IDENTIFIER_KEYS"
        in k8s.problems(documents)
    )


def test_each_process_connects_as_its_database_role():
    documents = copy.deepcopy(DOCUMENTS)
    for name, key in (
        ("portal-worker-audit", "DATABASE_URL"),
        ("portal-worker-default", "DATABASE_URL_SEALER"),
    ):
        container = find(documents, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        variable = next(v for v in container["env"] if v["name"] == "DATABASE_URL")
        variable["valueFrom"]["secretKeyRef"]["key"] = key
    problems = k8s.problems(documents)
    assert (
        "Deployment/portal-worker-audit container worker: DATABASE_URL must be the Secret key "
        "DATABASE_URL_SEALER, not DATABASE_URL"
    ) in problems
    assert (
        "Deployment/portal-worker-default container worker: DATABASE_URL must be the Secret key "
        "DATABASE_URL, not DATABASE_URL_SEALER"
    ) in problems


def test_migration_job_migrates_as_the_owner_then_runs_the_roles_script():
    job = find(DOCUMENTS, "Job", "portal-migrate")["spec"]["template"]["spec"]
    (migrate,) = job["initContainers"]
    assert k8s._secret_key_of(migrate, "DATABASE_URL") == "DATABASE_URL_OWNER"
    (roles,) = job["containers"]
    assert roles["command"][:2] == ["bash", "/opt/portal/roles/create-roles.sh"]
    assert "/opt/portal/roles/" in migrate["command"][-1]  # the release's script, copied for the second step
    documents = copy.deepcopy(DOCUMENTS)
    job = find(documents, "Job", "portal-migrate")["spec"]["template"]["spec"]
    job["containers"] = job.pop("initContainers")
    problems = k8s.problems(documents)
    assert "Job portal-migrate: an init container must run manage.py migrate" in problems
    assert "Job portal-migrate: after the migrations, a container must run create-roles.sh" in problems
