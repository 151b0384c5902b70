"""GET /healthz: is the database reachable, the broker up, a worker listening and beat firing?

It serves no consumer data, so it is on the audit trail's reviewed list of unaudited URLs.
"""

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit import triggers as audit_triggers
from audit.selectors import chain_status
from portal.celery import app
from portal.tasks import BEAT_HEARTBEAT_KEY


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "engine": connection.vendor}
    except Exception as exc:
        return {"ok": False, "engine": connection.vendor, "error": type(exc).__name__}


def _broker() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "in-process"}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "mode": "redis"}
    except Exception as exc:
        return {"ok": False, "mode": "redis", "error": type(exc).__name__}


def _workers() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "in-process"}
    try:
        replies = app.control.ping(timeout=1.0, limit=1) or []
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": bool(replies), "responding": [name for reply in replies for name in reply]}


def _audit() -> dict:
    """The trail's guards and its sealing: a missing trigger fails the check (the trail could be altered);
    a backlog of unsealed events only warns (sealing catches up)."""
    try:
        # Every trigger of the rule, on the audit tables and on each monthly partition of the events and
        # subjects tables.
        missing = audit_triggers.problems(connection)
        partitions = audit_triggers.all_partitions(connection)
        status = chain_status()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {
        "ok": not missing,
        "triggers_missing": sorted(str(t) for t in missing),
        "partitions_checked": len(partitions),
        "subject_partitions_checked": sum(table == audit_triggers.SUBJECT_TABLE for table, _ in partitions),
        "sealed": status.sealed,
        "pending": status.pending,
        "pending_warning": status.pending_warning,
        "checkpoint_age_seconds": None
        if status.checkpoint_age_seconds is None
        else round(status.checkpoint_age_seconds),
        "checkpoint_warning": status.checkpoint_warning,
        # Witnesses never make the portal unavailable: one that is behind or refusing is a warning.
        "witnesses": [
            {
                "name": w["name"],
                "ok": w["ok"],
                "cosigned_size": w["cosigned_size"],
                "last_attempt": (w["last_attempt"] or {}).get("outcome"),
            }
            for w in status.witnesses
        ],
        "witness_warning": status.witness_warning,
    }


def _beat() -> dict:
    raw = cache.get(BEAT_HEARTBEAT_KEY)
    if raw is None:
        return {"ok": False, "last_heartbeat": None}
    age = (timezone.now() - datetime.fromisoformat(raw)).total_seconds()
    return {"ok": age < 3 * settings.BEAT_HEARTBEAT_SECONDS, "last_heartbeat": raw, "age_seconds": round(age)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _database(),
        "broker": _broker(),
        "worker": _workers(),
        "beat": _beat(),
        "audit": _audit(),
    }
    # Beat only degrades: a web node must keep serving (200) while the singleton beat restarts, but the
    # answer does not say "ok" while periodic work (sealing, expiry, refreshes) is not being fired.
    healthy = all(checks[name]["ok"] for name in ("database", "broker", "worker", "audit"))
    warnings = [name for name in ("beat",) if not checks[name]["ok"]]
    if checks["audit"].get("checkpoint_warning"):
        warnings.append("audit_checkpoint")  # the newest valid checkpoint is too old, or there is none
    if checks["audit"].get("witness_warning"):
        warnings.append("audit_witness")  # a witness has not cosigned the latest checkpoint
    if not healthy:
        status = "unavailable"
    elif warnings:
        status = "degraded"
    else:
        status = "ok"
    return JsonResponse({"status": status, "warnings": warnings, **checks}, status=200 if healthy else 503)
