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


def test_rules_require_the_identifier_keys_as_mounted_secrets():
    document = copy.deepcopy(DOCUMENT)
    del document["services"]["beat"]["environment"]["IDENTIFIER_KEYS_FILE"]
    document["services"]["web"]["secrets"].remove("identifier_hmac_key")
    del document["secrets"]["identifier_hmac_key"]
    errors = compose.rule_errors(document)
    assert "beat: IDENTIFIER_KEYS_FILE is not set (production refuses to start without it)" in errors
    assert (
        "web: IDENTIFIER_HMAC_KEY_FILE reads the secret identifier_hmac_key, which the service does not mount"
    ) in errors
    assert (
        "migrate: IDENTIFIER_HMAC_KEY_FILE reads the secret identifier_hmac_key, "
        "which is not declared under secrets"
    ) in errors


def test_rules_connect_each_service_as_its_database_role():
    document = copy.deepcopy(DOCUMENT)
    audit = document["services"]["worker-audit"]
    audit["environment"]["DATABASE_URL_FILE"] = "/run/secrets/database_url_app"
    audit["secrets"].append("database_url_app")
    document["services"]["web"]["secrets"].append("database_url_owner")
    document["services"]["migrate"]["environment"]["DATABASE_URL_FILE"] = "/run/secrets/database_url_app"
    errors = compose.rule_errors(document)
    assert "worker-audit: must connect with the secret database_url_sealer (DATABASE_URL_FILE)" in errors
    assert "web: mounts the database URL of another role: database_url_owner" in errors
    assert "migrate: must connect with the secret database_url_owner (DATABASE_URL_FILE)" in errors


def test_rules_rerun_the_roles_script_after_migrate():
    document = copy.deepcopy(DOCUMENT)
    del document["services"]["roles"]["depends_on"]
    del document["services"]["worker-default"]["depends_on"]["roles"]
    errors = compose.rule_errors(document)
    assert "roles: a one-shot service (restart: no) running create-roles.sh once migrate completed" in errors
    assert "worker-default: must wait for the roles service to complete" in errors


def test_postgres_init_folder_holds_only_what_the_image_may_run(tmp_path):
    document = copy.deepcopy(DOCUMENT)
    assert compose.initdb_errors(document["services"], DEPLOY) == []
    # The whole of deploy/postgres/ there: the image would run create-roles.sh without its argument.
    document["services"]["postgres"]["volumes"][1] = "./postgres:/docker-entrypoint-initdb.d:ro"
    errors = compose.initdb_errors(document["services"], DEPLOY)
    assert (
        "postgres: /docker-entrypoint-initdb.d holds create-roles.sh, which the image would run or trip over"
        in errors
    )
    assert (
        "postgres: /docker-entrypoint-initdb.d holds README.md, which the image would run or trip over"
        in errors
    )
    folder = tmp_path / "initdb"
    folder.mkdir()
    (folder / "10-roles.sh").write_text("#!/bin/sh\n")
    document["services"]["postgres"]["volumes"][1] = "./initdb:/docker-entrypoint-initdb.d:ro"
    errors = compose.initdb_errors(document["services"], tmp_path)
    assert errors == [
        "postgres: /docker-entrypoint-initdb.d/10-roles.sh is not executable (the image would source it)"
    ]
