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
