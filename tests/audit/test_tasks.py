"""The Celery tasks: registered under the names the beat schedule uses, on the audit queue, and sealing in a
real worker process."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from audit import chain, tasks
from audit.models import AuditCheckpoint, AuditEvent
from audit.verify import chain_verify
from portal.celery import app


def test_the_tasks_are_registered_under_the_scheduled_names_on_the_audit_queue():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for name in ("audit.seal_events", "audit.publish_checkpoint"):
        assert name in scheduled and name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "audit"
    assert app.tasks["audit.seal_events"].time_limit and app.tasks["audit.seal_events"].max_retries == 3


@pytest.mark.django_db
def test_the_tasks_seal_and_publish(make_event):
    make_event()
    make_event()
    assert tasks.seal_events.apply().get() == 2
    assert tasks.seal_events.apply().get() == 0
    assert tasks.publish_checkpoint.apply().get() == 2
    assert tasks.publish_checkpoint.apply().get() is None


def _wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def worker_shares_the_signing_key(settings, monkeypatch) -> None:
    """The worker started after this reads the same development key file as the test (see signing_key_dir)."""
    monkeypatch.setenv("PORTAL_VAR_DIR", str(settings.VAR_DIR))


# PostgreSQL too: the worker process must reach the test database, which it cannot on SQLite.
@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_seals_what_was_written_and_signs_a_checkpoint(
    make_event, worker_shares_the_signing_key, celery_worker_process
):
    events = [make_event(subjects=[f"C{n}"]) for n in range(5)]
    tasks.seal_events.delay()
    assert _wait_for(lambda: not AuditEvent.objects.filter(chain_position__isnull=True).exists())
    positions = AuditEvent.objects.order_by("chain_position").values_list("chain_position", flat=True)
    assert list(positions) == [1, 2, 3, 4, 5]
    assert AuditEvent.objects.get(pk=events[0].pk).chain_position == 1

    tasks.publish_checkpoint.delay()
    assert _wait_for(AuditCheckpoint.objects.exists)
    # The worker signed with the key this installation publishes, and its chain verifies here.
    result = chain_verify()
    assert result.ok and result.sealed == 5 and result.stored_checkpoints_verified == 1
    assert chain.head().position == 5
