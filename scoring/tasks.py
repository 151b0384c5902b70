"""Celery tasks of score refresh: thin wrappers that take ids, call a service, and are safe to run twice."""

from __future__ import annotations

import logging

from portal.celery import app
from scoring import services
from scoring.models import ScoreRun

logger = logging.getLogger(__name__)

# A chunk of thousands of consumers is one set-based statement: seconds, not minutes. The hard limit stays
# below the lease (services.lease_seconds), so a chunk is never taken over from a task still allowed to run.
CHUNK_SOFT_LIMIT = 4 * 60
CHUNK_HARD_LIMIT = 5 * 60


@app.task(
    name="scoring.score_chunk",
    bind=True,
    ignore_result=True,
    soft_time_limit=CHUNK_SOFT_LIMIT,
    time_limit=CHUNK_HARD_LIMIT,
    max_retries=services.MAX_ATTEMPTS - 1,
)
def score_chunk(self, chunk_id: int) -> int | None:
    """Score one chunk of a run. A chunk already done, or claimed by a live task, is left alone."""
    task_id = self.request.id or ""
    try:
        return services.score_chunk_process(chunk_id=chunk_id, task_id=task_id)
    except services.LeaseLost:
        logger.warning("score chunk %s: lease lost to another task; it finishes the chunk", chunk_id)
        return None
    except Exception as exc:  # SoftTimeLimitExceeded included
        logger.exception("score chunk %s failed", chunk_id)
        if services.score_chunk_fail(
            chunk_id=chunk_id, task_id=task_id, error=f"{type(exc).__name__}: {exc}"
        ):
            # Backs off 10 s, 40 s: a deadlock victim or a restarted database usually recovers by then.
            raise self.retry(exc=exc, countdown=10 * 4**self.request.retries) from exc
        return None


@app.task(name="scoring.requeue_expired_chunks", ignore_result=True, soft_time_limit=50, time_limit=60)
def requeue_expired_chunks() -> int:
    """Beat, every minute: resend chunks whose lease lapsed (their worker died)."""
    return len(services.score_chunks_requeue_expired())


@app.task(
    name="scoring.start_incremental_refresh", bind=True, ignore_result=True, soft_time_limit=50, time_limit=60
)
def start_incremental_refresh(self) -> int | None:
    """Beat, every 15 minutes: score consumers with transactions above the last finished run's watermark.
    Nothing new, or an incremental run still running, is a quiet no-op; the next tick tries again."""
    try:
        run = services.score_run_start(kind=ScoreRun.Kind.INCREMENTAL, celery_task_id=self.request.id or "")
    except (services.NothingToScore, services.RunAlreadyRunning) as exc:
        logger.info("incremental score refresh skipped: %s", exc)
        return None
    return run.pk


@app.task(name="scoring.start_full_refresh", bind=True, ignore_result=True, soft_time_limit=50, time_limit=60)
def start_full_refresh(self, version: str | None = None) -> int:
    """Start a full refresh from outside a request (operators, seed_demo with a broker)."""
    return services.score_run_start(
        kind=ScoreRun.Kind.FULL, version=version, celery_task_id=self.request.id or ""
    ).pk
