"""The systemd units: they pass the parser check, the parser catches what systemd-analyze would, and the
units run what the rest of deploy/ expects."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.deploy.conftest import DEPLOY, load_script, write

units = load_script("checks/systemd_units.py")
UNIT_FILES = sorted((DEPLOY / "systemd").glob("*.service"))


DROPINS = sorted((DEPLOY / "systemd").glob("*.service.d/*.conf"))
SEALER = DEPLOY / "systemd" / "portal-worker@audit.service.d" / "sealer.conf"


def test_shipped_units_pass_the_parser_check():
    assert [u.name for u in UNIT_FILES] == [
        "portal-beat.service",
        "portal-web.service",
        "portal-worker@.service",
    ]
    assert DROPINS == [SEALER]
    for path in [*UNIT_FILES, *DROPINS]:
        assert units.check(units.parse(path)) == [], path


def test_audit_worker_drop_in_reads_the_sealers_environment_after_portal_env():
    worker = units.parse(DEPLOY / "systemd" / "portal-worker@.service")
    assert worker.values("Service", "EnvironmentFile") == ["/etc/portal/portal.env"]
    assert units.parse(SEALER).values("Service", "EnvironmentFile") == ["/etc/portal/sealer.env"]
    readme = (DEPLOY / "postgres" / "README.md").read_text()
    assert "DATABASE_URL_FILE=/etc/portal/database_url_sealer" in readme


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[Service]\nEnvironment=X=1\n", "must add an EnvironmentFile="),
        ("[Service]\nEnvironmentFile=-/etc/portal/sealer.env\n", "must not be optional"),
        ("[Service]\nEnvironmentFile=/etc/portal/sealer.env\nEnvironmentFilee=/x\n", "unknown key"),
        ("[Service]\nEnvironmentFile=/etc/portal/sealer.env\nUser=root\n", "never runs as root"),
        ("", "an empty drop-in"),
    ],
)
def test_parser_check_covers_the_audit_drop_in(tmp_path, text, problem):
    folder = tmp_path / "portal-worker@audit.service.d"
    folder.mkdir()
    problems = units.check(units.parse(write(folder, "sealer.conf", text)))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("ExecStart=/opt/portal/venv/bin/celery", "ExecStart=celery"), "must start with an absolute path"),
        (("User=portal", "User=root"), "never runs as root"),
        (("NoNewPrivileges=true", "NoNewPrivileges=maybe"), "is not a boolean"),
        (("Restart=on-failure", "Restart=sometimes"), "Restart= must be one of"),
        (("RestartSec=5", "RestartSec=soon"), "is not a time span"),
        (("Type=simple", "Type=simple\nExecStartt=/bin/true"), "unknown key ExecStartt="),
        (("[Install]", "[Instal]"), "unknown section [Instal]"),
        (("\nProtectSystem=strict\n", "\nProtectSystem=strict \\\n"), "ProtectSystem= must be one of"),
    ],
)
def test_parser_check_reports_what_systemd_would(tmp_path, change, problem):
    old, new = change
    text = (DEPLOY / "systemd" / "portal-beat.service").read_text()
    assert old in text
    broken = write(tmp_path, "portal-beat.service", text.replace(old, new, 1))
    problems = units.check(units.parse(broken))
    assert any(problem in p for p in problems), problems


def test_continuation_lines_are_joined_like_systemd():
    unit = units.parse(DEPLOY / "systemd" / "portal-worker@.service")
    (exec_start,) = unit.values("Service", "ExecStart")
    assert exec_start.split() == [
        "/opt/portal/venv/bin/celery", "-A", "portal", "worker", "-l", "INFO", "-Q", "%i",
        "--hostname=%i@%H", "--concurrency=${CELERY_CONCURRENCY}", "--max-tasks-per-child=100",
    ]  # fmt: skip


def test_template_unit_must_use_its_instance(tmp_path):
    text = (DEPLOY / "systemd" / "portal-worker@.service").read_text().replace("%i", "default")
    problems = units.check(units.parse(write(tmp_path, "portal-worker@.service", text)))
    assert any("never uses its instance name" in p for p in problems)


def test_units_run_gunicorn_with_the_shipped_config_and_beat_with_a_writable_schedule():
    web = units.parse(DEPLOY / "systemd" / "portal-web.service").values("Service", "ExecStart")[0]
    assert web.split()[1:] == ["-c", "/opt/portal/app/deploy/gunicorn.conf.py", "portal.wsgi:application"]
    beat = units.parse(DEPLOY / "systemd" / "portal-beat.service")
    (command,) = beat.values("Service", "ExecStart")
    schedule = next(a for a in command.split() if a.startswith("--schedule="))
    assert schedule.removeprefix("--schedule=").startswith(beat.values("Service", "ReadWritePaths")[0])


def test_documented_worker_instances_cover_every_routed_queue():
    queues = {"default"} | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    readme = (DEPLOY / "README.md").read_text()
    enabled = {q for q in queues if f"portal-worker@{q}" in readme}
    assert enabled == queues
