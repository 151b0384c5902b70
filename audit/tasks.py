"""Celery tasks of the audit trail (queue "audit"; scheduled in settings.CELERY_BEAT_SCHEDULE). Thin: each
calls one service, is idempotent, and is safe to run twice at once (the services take a lock)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from audit import chain, checkpoints, cosigning, partitions

# A lost database connection is worth a few quick retries; anything else is a bug or tampering, and retrying
# would only repeat it (the next beat tick tries again anyway).
_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 10,
    "retry_jitter": True,
    "max_retries": 3,
}


@shared_task(name="audit.seal_events", ignore_result=True, soft_time_limit=50, time_limit=60, **_RETRY)
def seal_events() -> int:
    """Seal committed events into the hash chain; returns how many were sealed."""
    # A time budget well inside the soft limit: a backlog is worked off over several runs, each committing.
    return chain.events_seal(time_budget=30).sealed


# The first checkpoint of a long trail recomputes all of it; later ones only what was sealed since the last.
@shared_task(
    name="audit.publish_checkpoint", ignore_result=True, soft_time_limit=240, time_limit=300, **_RETRY
)
def publish_checkpoint() -> int | None:
    """Sign the chain's head if it moved; returns the checkpoint's position, or None if nothing was signed."""
    checkpoint = checkpoints.checkpoint_publish()
    if settings.AUDIT_WITNESSES:
        # Also when nothing new was signed: a witness that missed the latest checkpoint is asked again.
        transaction.on_commit(cosign_checkpoint.delay)
    return None if checkpoint is None else checkpoint.chain_position


# Each witness gets AUDIT_WITNESS_TIMEOUT seconds; a witness that is down costs this task, never a read.
@shared_task(
    name="audit.cosign_checkpoint", ignore_result=True, soft_time_limit=120, time_limit=150, **_RETRY
)
def cosign_checkpoint() -> dict[str, str]:
    """Have the witnesses cosign the latest valid checkpoint; what each witness came to."""
    latest = checkpoints.latest_valid(chain.head().position)
    return {} if latest is None else cosigning.checkpoint_cosign(checkpoint=latest)


@shared_task(name="audit.create_partitions", ignore_result=True, soft_time_limit=50, time_limit=60, **_RETRY)
def create_partitions(months_ahead: int = partitions.MONTHS_AHEAD) -> list[str]:
    """Create the events table's monthly partitions ahead of time (idempotent; nothing on SQLite)."""
    return partitions.event_partitions_create(connection, months_ahead=months_ahead)
