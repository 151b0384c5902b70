"""Login lockout (django-axes) told to the audit trail, and the answer a locked-out client gets.

Every failed login (web form or token endpoint, both through `authenticate()`) is the request's audit event
`auth.login_failed`; an attempt refused because the username is locked is `auth.login_locked`; the failure
that locks a username also writes its own `auth.locked_out` event, so each lockout is one event.
"""

from __future__ import annotations

import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from audit import recorder
from audit.models import AuditEvent

LOGIN_FAILED = "auth.login_failed"
LOGIN_LOCKED = "auth.login_locked"
LOCKED_OUT = "auth.locked_out"


class AuditedAxesHandler(AxesDatabaseHandler):
    def user_login_failed(self, sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
        # Axes' backend marks the request before authenticate() reports the failure when the username was
        # already locked: that attempt was refused unseen, not a new failure.
        already_locked = request is not None and bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None:
            return
        username = str(get_client_username(request, credentials) or "")
        note = recorder.note_for(request)
        note.outcome = AuditEvent.Outcome.DENIED
        note.resource_kind = "session"
        note.actor_username = username
        if already_locked:
            note.action = LOGIN_LOCKED
            return
        note.action = LOGIN_FAILED
        if getattr(request, "axes_locked_out", False):
            # This failure reached the limit: the lockout itself is an event of its own. If it cannot be
            # written, the exception ends the request and the audit middleware answers 503.
            recorder.record(
                action=LOCKED_OUT,
                outcome=AuditEvent.Outcome.DENIED,
                actor_username=username,
                method=request.method or "",
                path=request.path,
                client_ip=recorder.client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
                resource_kind="session",
                requested_id=username,
            )


def retry_after_seconds(request: HttpRequest | None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds())) if cool_off else 3600


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """429 with Retry-After: JSON on the API, a page elsewhere. Says nothing about the password."""
    wait = retry_after_seconds(request)
    message = "Too many failed logins for this username. Try again later."
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "web/mfa/locked_out.html", {"minutes": math.ceil(wait / 60)}, status=429)
    response["Retry-After"] = str(wait)
    return response
