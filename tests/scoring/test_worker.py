"""Score runs across processes and threads. Through real Celery workers (PostgreSQL and Redis): a full run
completes; a worker killed mid-run is replaced and the run finishes without rescoring done chunks. And two
full runs started at the same instant cannot both proceed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditEvent
from portal.records import loader
from portal.records.models import Consumer
from scoring import services
from scoring.models import CreditScore, ScoreChunk, ScoreRun
from tests.conftest import ROOT
from tests.scoring.conftest import END

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition: Callable[[], bool], seconds: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def run_status(run: ScoreRun) -> str:
    run.refresh_from_db()
    return run.status


def start_worker() -> subprocess.Popen:
    """A second worker like conftest's celery_worker_process, for replacing one this test killed."""
    db = django_settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    env = {
        **os.environ,
        "PORTAL_EMBEDDED_BEAT": "false",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "-l", "WARNING",
         "--hostname", f"test-replacement-{os.getpid()}@%h", "--queues", "scoring",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.worker
def test_full_run_completes_in_a_worker_process(celery_worker_process, scorecard, settings):
    settings.SCORING_CHUNK_SIZE = 50
    loader.load(seed=11, consumers=200, end=END)
    run = services.score_run_start(kind="full")
    wait_for(lambda: run_status(run) == "finished", what="the run to finish")
    assert (run.chunks_done, run.chunks_total, run.consumers_scored) == (4, 4, 200)
    scores = CreditScore.objects.filter(run=run)
    assert scores.count() == Consumer.objects.count() == 200
    assert not scores.values("consumer").annotate(n=Count("id")).filter(n__gt=1).exists()
    # Every score names the worker's task that wrote it, one per chunk.
    chunk_tasks = set(ScoreChunk.objects.filter(run=run).values_list("celery_task_id", flat=True))
    assert set(scores.values_list("celery_task_id", flat=True)) == chunk_tasks and len(chunk_tasks) == 4
    assert not Consumer.objects.filter(current_score__isnull=True).exists()
    run.refresh_from_db()
    drift = set() if run.monitoring["level"] == "stable" else {f"scoring.run.psi_{run.monitoring['level']}"}
    assert set(AuditEvent.objects.filter(requested_id=str(run.pk)).values_list("action", flat=True)) == {
        "scoring.run.started",
        "scoring.run.finished",
        *drift,
    }


@pytest.mark.postgres
@pytest.mark.worker
def test_killed_worker_is_replaced_and_done_chunks_are_not_rescored(
    celery_worker_process, scorecard, settings
):
    settings.SCORING_CHUNK_SIZE = 20
    loader.load(seed=11, consumers=200, end=END)
    ids = list(Consumer.objects.order_by("id").values_list("id", flat=True))
    blocked = ids[80:100]  # the fifth chunk
    # Hold the fifth chunk's consumers from another connection: the worker gets through four chunks, then
    # waits inside the fifth, its claim committed and its writes not, which is when it is killed.
    import psycopg2  # the PostgreSQL driver is installed only where this test runs (DATABASE_URL set)

    db = django_settings.DATABASES["default"]
    locker = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    replacement = None
    try:
        with locker.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM records_consumer WHERE id BETWEEN %s AND %s FOR UPDATE",
                [blocked[0], blocked[-1]],
            )
        run = services.score_run_start(kind="full")
        fifth = ScoreChunk.objects.get(run=run, first_consumer_id=blocked[0])
        wait_for(
            lambda: ScoreChunk.objects.get(pk=fifth.pk).status == "running",
            what="the worker to claim the fifth chunk",
        )
        run.refresh_from_db()
        assert (run.status, run.chunks_done, run.consumers_scored) == ("running", 4, 80)
        done_before = list(
            CreditScore.objects.filter(run=run)
            .order_by("id")
            .values_list("id", "computed_at", "celery_task_id")
        )
        assert len(done_before) == 80

        celery_worker_process.send_signal(signal.SIGKILL)
        celery_worker_process.wait(timeout=30)
        locker.rollback()  # the dead worker's transaction now runs into its closed socket and is rolled back
        # The claim outlives the worker until its lease runs out; pretend the lease time has passed.
        ScoreChunk.objects.filter(run=run, status__in=["pending", "running"]).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        wait_for(
            lambda: not _backend_of_dead_worker_alive(blocked),
            seconds=30,
            what="the killed worker's session to end",
        )
        replacement = start_worker()
        assert set(services.score_chunks_requeue_expired()) >= {fifth.pk}
        wait_for(
            lambda: run_status(run) == "finished", what="the run to finish after the worker was replaced"
        )

        assert (run.chunks_done, run.consumers_scored) == (10, 200)
        scores = CreditScore.objects.filter(run=run)
        assert scores.count() == 200
        assert not scores.values("consumer").annotate(n=Count("id")).filter(n__gt=1).exists()
        # The four chunks done before the kill kept their rows, times and task ids: nothing was rescored.
        assert (
            list(
                scores.filter(consumer_id__lt=blocked[0])
                .order_by("id")
                .values_list("id", "computed_at", "celery_task_id")
            )
            == done_before
        )
        attempts = dict(ScoreChunk.objects.filter(run=run).values_list("first_consumer_id", "attempts"))
        assert [attempts[ids[k]] for k in (0, 20, 40, 60)] == [1, 1, 1, 1]
        assert attempts[blocked[0]] == 2
    finally:
        locker.close()
        if replacement is not None:
            replacement.terminate()
            replacement.wait(timeout=30)


def _backend_of_dead_worker_alive(blocked: list[int]) -> bool:
    """Whether a session still writes the blocked chunk (PostgreSQL ends it once it meets the dead socket)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE %s",
            ["%scoring_creditscore%"],
        )
        return cursor.fetchone()[0] > 0


def test_two_full_runs_started_together_cannot_both_proceed(scorecard, monkeypatch):
    """On PostgreSQL the advisory lock queues the second start; on SQLite its IMMEDIATE transaction does."""
    loader.load(seed=11, consumers=30, end=END)
    monkeypatch.setattr(services, "_enqueue", lambda chunk_id: None)  # no worker here: keep the queue clean
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def start() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(services.score_run_start(kind="full"))
        except services.RunAlreadyRunning as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(type(o).__name__ for o in outcomes) == ["RunAlreadyRunning", "ScoreRun"]
    assert ScoreRun.objects.filter(kind="full").count() == 1
    assert AuditEvent.objects.filter(action="scoring.run.started").count() == 1
