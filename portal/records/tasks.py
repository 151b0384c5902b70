"""Periodic upkeep of the records tables (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connection

from portal.celery import app
from portal.records import partitions

logger = logging.getLogger(__name__)


@app.task(
    name="records.create_partitions",
    ignore_result=True,
    soft_time_limit=240,
    time_limit=300,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=3,
)
def create_partitions(months_ahead: int = partitions.MONTHS_AHEAD) -> list[str]:
    """Create the transactions table's monthly partitions ahead of time (idempotent; nothing on SQLite)."""
    created = partitions.transaction_partitions_create(connection, months_ahead=months_ahead)
    if created:
        logger.info("created transaction partitions %s", ", ".join(created))
    return created
