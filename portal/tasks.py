"""Site-wide periodic tasks."""

from django.core.cache import cache
from django.utils import timezone

from portal.celery import HEARTBEAT_TASK, app

BEAT_HEARTBEAT_KEY = "beat:last-heartbeat"


@app.task(name=HEARTBEAT_TASK, ignore_result=True, time_limit=30, soft_time_limit=20)
def beat_heartbeat() -> None:
    """Record that beat sent, and a worker ran, a periodic task just now (read by /healthz)."""
    cache.set(BEAT_HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)
