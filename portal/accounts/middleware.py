"""Session hygiene and the second factor for browser sessions; the headers Django has no setting for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from audit import recorder
from audit.models import AuditEvent

logger = logging.getLogger(__name__)

STARTED_KEY = "_portal_auth_started"
SEEN_KEY = "_portal_auth_seen"
# Activity is written back to the session at most once a minute, not on every request.
SEEN_GRANULARITY_SECONDS = 60

MFA_PREFIX = "/accounts/mfa/"
# What a session that still has to enrol a second factor may reach.
ENROLMENT_ALLOWED_PREFIXES = (MFA_PREFIX, "/accounts/login/", "/accounts/logout/", "/static/", "/i18n/")


def session_started(session: Any) -> None:
    """Stamp a new login's session (user_logged_in): the absolute lifetime counts from here."""
    now = int(time.time())
    session[STARTED_KEY] = now
    session[SEEN_KEY] = now


def session_seconds_left(session: Any) -> int | None:
    """Seconds until SessionLifetimeMiddleware ends this logged-in session (the sooner of the idle and the
    absolute limit), as the server counts them; None for a session without the stamps."""
    started, seen = session.get(STARTED_KEY), session.get(SEEN_KEY)
    if not isinstance(started, int) or not isinstance(seen, int):
        return None
    now = int(time.time())
    idle_left = settings.SESSION_IDLE_TIMEOUT_SECONDS - (now - seen)
    lifetime_left = settings.SESSION_COOKIE_AGE - (now - started)
    return max(0, min(idle_left, lifetime_left))


def session_extend(session: Any) -> None:
    """The user asked to stay signed in: the idle limit counts from now (never past the absolute one)."""
    session[SEEN_KEY] = int(time.time())


class SessionLifetimeMiddleware:
    """Ends a logged-in session after SESSION_IDLE_TIMEOUT_SECONDS without a request, or SESSION_COOKIE_AGE
    after login whatever the activity; the session row is deleted, so the cookie is worthless afterwards."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and session.session_key and SESSION_KEY in session:
            self._check(request, session)
        return self.get_response(request)

    def _check(self, request: HttpRequest, session: Any) -> None:
        now = int(time.time())
        started, seen = session.get(STARTED_KEY), session.get(SEEN_KEY)
        if not isinstance(started, int) or not isinstance(seen, int):
            session_started(session)
            return
        idle = now - seen > settings.SESSION_IDLE_TIMEOUT_SECONDS
        if idle or now - started > settings.SESSION_COOKIE_AGE:
            user = request.user
            logout(request)
            try:
                recorder.record(
                    actor=user,
                    action="auth.session_expired",
                    outcome=AuditEvent.Outcome.ALLOWED,
                    method=request.method or "",
                    path=request.path,
                    client_ip=recorder.client_ip(request),
                    user_agent=request.headers.get("User-Agent", ""),
                    resource_kind="session",
                    requested_id="idle" if idle else "lifetime",
                )
            except recorder.AuditWriteError:
                # The session is gone either way and the request goes on as anonymous: nothing is served.
                logger.warning("the end of an expired session could not be audited")
            return
        if now - seen >= SEEN_GRANULARITY_SECONDS:
            session[SEEN_KEY] = now


class MfaEnrolmentMiddleware:
    """When MFA is required, a logged-in session without a verified second factor reaches only the enrolment
    pages (and logout): the API answers 403, pages redirect to enrolment. Needs OTPMiddleware before it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.MFA_REQUIRED and self._confined(request):
            if request.path_info.startswith("/api/"):
                return JsonResponse(
                    {"detail": "Set up two-factor authentication before using the portal."}, status=403
                )
            return redirect(MFA_PREFIX)
        return self.get_response(request)

    @staticmethod
    def _confined(request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        if session is None or not session.session_key or SESSION_KEY not in session:
            return False  # no session login: bearer tokens are checked at issue
        # The routed path: a client-supplied SCRIPT_NAME prefix must not count as an enrolment page.
        if request.path_info.startswith(ENROLMENT_ALLOWED_PREFIXES):
            return False
        user: Any = request.user
        if not user.is_authenticated or user.is_verified():
            return False
        return not (settings.PORTAL_DEMO and user.is_demo)


class PermissionsPolicyMiddleware:
    """The Permissions-Policy header (no camera, microphone, geolocation …): Django has no setting."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
