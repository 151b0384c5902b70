"""The Celery app, and the embedded beat that fires the schedule in-process when there is no broker."""

import logging
import os
import threading
from datetime import UTC, datetime

from celery import Celery
from celery.schedules import schedule as every

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "portal.beat_heartbeat"


class EmbeddedBeat(threading.Thread):
    """Fires CELERY_BEAT_SCHEDULE in this process, for the embedded default (eager tasks, no broker).

    It uses Celery's own schedule objects, so an entry behaves the same here as under `celery beat`.
    A task that fails is logged and tried again at its next due time, as beat would.
    """

    def __init__(self, tick_seconds: float = 1.0) -> None:
        super().__init__(name="embedded-beat", daemon=True)
        self.tick_seconds = tick_seconds
        self.stopping = threading.Event()

    @staticmethod
    def entries() -> dict[str, dict]:
        """The schedule, with every app's tasks module imported first: a worker does that when it starts,
        and without it this process would not know the tasks the schedule names."""
        app.loader.import_default_modules()
        return {name: dict(app.conf.beat_schedule[name]) for name in app.conf.beat_schedule}

    def run(self) -> None:
        entries = self.entries()
        last_run: dict[str, datetime] = {}
        # The heartbeat fires at once, as the thread starts: /healthz can tell that beat runs from the first
        # second, not only after the heartbeat's first interval.
        for name, entry in entries.items():
            if entry["task"] == HEARTBEAT_TASK:
                last_run[name] = datetime.now(UTC)
                self.fire(name, entry)
        while not self.stopping.wait(self.tick_seconds):
            for name, entry in entries.items():
                schedule = entry["schedule"]
                if not hasattr(schedule, "is_due"):
                    schedule = entry["schedule"] = every(schedule, app=app)
                previous = last_run.setdefault(name, datetime.now(UTC))
                if schedule.is_due(previous).is_due:
                    last_run[name] = datetime.now(UTC)
                    self.fire(name, entry)

    def fire(self, name: str, entry: dict) -> None:
        from django.db import close_old_connections

        try:
            app.tasks[entry["task"]].apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
        except Exception:
            logger.exception("periodic task %s failed", name)
        finally:
            close_old_connections()
