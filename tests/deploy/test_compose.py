"""deploy/compose.yaml against the vendored Compose Specification schema and the portal's rules."""

from __future__ import annotations

import copy

import yaml
from django.conf import settings

from tests.deploy.conftest import DEPLOY, load_script

compose = load_script("checks/compose.py")
DOCUMENT = yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_is_valid_against_the_schema_and_the_rules():
    assert compose.problems(DEPLOY / "compose.yaml") == []


def test_the_checked_queues_are_the_settings_queues():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert set(compose.QUEUES) == routed | {settings.CELERY_TASK_DEFAULT_QUEUE}


def test_schema_rejects_unknown_keys_and_wrong_types():
    document = copy.deepcopy(DOCUMENT)
    document["services"]["web"]["restart_policy"] = "always"
    document["services"]["redis"]["ports"] = "6379"
    errors = compose.schema_errors(document)
    assert any(e.startswith("services/web") and "restart_policy" in e for e in errors), errors
    assert any(e.startswith("services/redis/ports") for e in errors), errors


def test_rules_require_one_beat_and_a_worker_per_queue():
    document = copy.deepcopy(DOCUMENT)
    document["services"]["beat2"] = copy.deepcopy(document["services"]["beat"])
    del document["services"]["worker-audit"]
    errors = compose.rule_errors(document)
    assert "2 beat services, expected exactly one" in errors
    assert "queue audit: 0 worker services, expected 1" in errors


def test_rules_require_migrations_first_and_no_secret_in_clear():
    document = copy.deepcopy(DOCUMENT)
    del document["services"]["web"]["depends_on"]["migrate"]
    document["services"]["beat"]["environment"]["SECRET_KEY"] = "x" * 60
    errors = compose.rule_errors(document)
    assert "web: must wait for the migrate service to complete" in errors
    assert any(e.startswith("beat: secret SECRET_KEY given in clear") for e in errors), errors


def test_rules_require_web_and_the_exports_worker_to_share_export_files():
    document = copy.deepcopy(DOCUMENT)
    document["services"]["worker-exports"]["volumes"] = []
    errors = compose.rule_errors(document)
    assert "worker-exports: must mount the exports volume at /var/lib/portal/exports" in errors
