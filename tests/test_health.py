"""GET /healthz reports the database, the broker, the workers and beat."""

import os
import subprocess
import sys
import time

import pytest
from django.core.cache import cache
from django.utils import timezone

from portal.celery import EmbeddedBeat, app
from portal.tasks import BEAT_HEARTBEAT_KEY, beat_heartbeat
from tests.conftest import ROOT


@pytest.mark.django_db
def test_healthz_is_public_and_reports_every_part(client, settings):
    response = client.get("/healthz")
    body = response.json()
    assert set(body) == {"status", "warnings", "database", "broker", "worker", "beat", "audit"}
    assert body["audit"]["ok"] is True
    assert body["database"]["ok"] is True
    if settings.CELERY_TASK_ALWAYS_EAGER:
        assert response.status_code == 200
        assert body["worker"]["mode"] == "in-process"


@pytest.mark.postgres
@pytest.mark.django_db
def test_healthz_checks_the_triggers_of_every_event_and_subject_partition(client, settings):
    from django.db import connection

    from audit import partitions, triggers

    audit = client.get("/healthz").json()["audit"]
    subjects = triggers.subject_partitions(connection)
    assert len(subjects) > 1
    assert audit["subject_partitions_checked"] == len(subjects)
    assert audit["partitions_checked"] == len(triggers.event_partitions(connection)) + len(subjects)
    # A subject partition whose rule is switched off fails the check, by name.
    name = partitions.subject_partition_name(partitions.month_start(timezone.now()))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {name} DISABLE TRIGGER audit_auditsubject_append_only_delete")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["audit"]["ok"] is False
    assert response.json()["audit"]["triggers_missing"] == [
        f"audit_auditsubject_append_only_delete on {name}"
    ]
    triggers.install(connection)
    assert client.get("/healthz").json()["audit"]["ok"] is True


@pytest.mark.django_db
def test_healthz_reports_beat_from_its_last_heartbeat(client):
    cache.delete(BEAT_HEARTBEAT_KEY)
    assert client.get("/healthz").json()["beat"]["ok"] is False
    beat_heartbeat()
    assert client.get("/healthz").json()["beat"]["ok"] is True


@pytest.mark.django_db
def test_healthz_is_degraded_not_ok_while_beat_is_silent(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the in-process broker and worker: only beat is in question
    cache.delete(BEAT_HEARTBEAT_KEY)
    response = client.get("/healthz")
    # Still serving (200: a web node stays in its pool while beat restarts), but not "ok".
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["warnings"]) == ("degraded", ["beat"])
    beat_heartbeat()
    response = client.get("/healthz")
    assert (response.json()["status"], response.json()["warnings"]) == ("ok", [])


def test_the_embedded_beat_beats_as_soon_as_it_starts(settings):
    cache.delete(BEAT_HEARTBEAT_KEY)
    app.conf.beat_schedule = {"beat-heartbeat": {"task": "portal.beat_heartbeat", "schedule": 3600}}
    beat = EmbeddedBeat(tick_seconds=0.05)
    try:
        beat.start()
        deadline = time.monotonic() + 5
        while cache.get(BEAT_HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        beat.stopping.set()
        beat.join(timeout=5)
        app.conf.beat_schedule = settings.CELERY_BEAT_SCHEDULE
    assert cache.get(BEAT_HEARTBEAT_KEY) is not None


@pytest.mark.django_db
def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


def test_the_embedded_beat_fires_the_schedule(settings):
    cache.delete(BEAT_HEARTBEAT_KEY)
    app.conf.beat_schedule = {"beat-heartbeat": {"task": "portal.beat_heartbeat", "schedule": 0.2}}
    beat = EmbeddedBeat(tick_seconds=0.05)
    try:
        beat.start()
        beat.join(timeout=1.5)
    finally:
        beat.stopping.set()
        beat.join(timeout=5)
        app.conf.beat_schedule = settings.CELERY_BEAT_SCHEDULE
    assert cache.get(BEAT_HEARTBEAT_KEY) is not None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_healthz_sees_a_real_worker_through_redis(client, celery_worker_process):
    body = client.get("/healthz").json()
    assert body["broker"] == {"ok": True, "mode": "redis"}
    assert body["worker"]["ok"] is True and body["worker"]["responding"]
    # A task sent through the broker runs in the worker, which writes the heartbeat to the shared cache.
    cache.delete(BEAT_HEARTBEAT_KEY)
    beat_heartbeat.delay()  # results are not stored: watch the cache instead
    deadline = time.monotonic() + 20
    while cache.get(BEAT_HEARTBEAT_KEY) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/healthz").json()["beat"]["ok"] is True


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_is_unavailable_without_a_worker(client, monkeypatch):
    monkeypatch.setattr(app.control, "ping", lambda **kwargs: [])
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"]["ok"] is False


def test_the_embedded_beat_knows_every_scheduled_task():
    """In a fresh process (as `manage.py serve` is), every scheduled task resolves."""
    code = (
        "import django; django.setup()\n"
        "from portal.celery import EmbeddedBeat, app\n"
        "missing = [e['task'] for e in EmbeddedBeat.entries().values() if e['task'] not in app.tasks]\n"
        "print(missing)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.django_db
def test_healthz_warns_while_the_newest_valid_checkpoint_is_missing_or_too_old(client, settings, tmp_path):
    from datetime import timedelta

    from audit import chain, checkpoints, recorder
    from audit.models import AuditCheckpoint

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.AUDIT_SIGNING_KEY, settings.VAR_DIR = "", tmp_path
    settings.AUDIT_CHECKPOINT_MAX_AGE = 600
    beat_heartbeat()
    recorder.record(action="test.read", outcome="allowed")
    chain.events_seal()
    body = client.get("/healthz").json()
    assert body["audit"]["checkpoint_warning"] is True and "audit_checkpoint" in body["warnings"]
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    body = client.get("/healthz").json()
    assert body["audit"]["checkpoint_warning"] is False and body["audit"]["checkpoint_age_seconds"] < 60
    # A row far beyond the head, as a forger would write it, does not count as a fresh checkpoint.
    settings.AUDIT_CHECKPOINT_MAX_AGE = -1
    AuditCheckpoint.objects.create(
        chain_position=9000000000000000,
        head_hash="a" * 64,
        created_at=timezone.now() + timedelta(days=1),
        algorithm="Ed25519",
        public_key=checkpoint.public_key,
        signature=checkpoint.signature,
    )
    body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["audit"]["checkpoint_warning"] is True
