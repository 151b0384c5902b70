"""The Dockerfile parses and keeps its rules (there is no Docker daemon to build it in CI)."""

from __future__ import annotations

from tests.deploy.conftest import DEPLOY, load_script, write

dockerfile = load_script("checks/dockerfile.py")
SOURCE = (DEPLOY.parent / "Dockerfile").read_text()


def test_dockerfile_follows_the_rules():
    assert dockerfile.problems(DEPLOY.parent / "Dockerfile") == []


def test_final_stage_must_not_run_as_root(tmp_path):
    broken = write(tmp_path, "Dockerfile", SOURCE.replace("USER portal:portal", "USER root"))
    assert "final stage must end as a non-root USER" in dockerfile.problems(broken)


def test_single_stage_and_compiler_in_runtime_are_refused(tmp_path):
    runtime = SOURCE.replace("libpq5", "libpq5 build-essential")
    problems = dockerfile.problems(write(tmp_path, "a", runtime))
    assert "final stage runtime installs build-essential" in problems
    single = SOURCE[SOURCE.index("FROM ${PYTHON_IMAGE} AS runtime") :]
    assert "not a multi-stage build" in dockerfile.problems(write(tmp_path, "b", single))


def test_exec_forms_must_be_json(tmp_path):
    broken = write(tmp_path, "Dockerfile", SOURCE.replace('CMD ["gunicorn",', "CMD ['gunicorn',"))
    assert any("CMD exec form is not valid JSON" in p for p in dockerfile.problems(broken))


def test_dockerignore_keeps_secrets_and_development_files_out():
    ignored = set((DEPLOY.parent / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "var", "**/*.env"} <= ignored
