"""The one recorder on every URL: each request outside the reviewed exempt list writes its audit event after
the view has produced its response and before any byte of it leaves. If the write fails, the response is
replaced by a 503 that carries no data (fail-closed, SPEC §4).

Views do not run inside a request-wide transaction (no ATOMIC_REQUESTS), so a denial that a view answers with
403 or 404 is never rolled back with the view's work: the event commits on its own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from audit import recorder

REQUEST_ID_HEADER = "X-Request-ID"


def is_exempt(path: str) -> bool:
    """Whether a routed path (`request.path_info`: what the URL resolver matches, never the client-supplied
    SCRIPT_NAME in front of it) is on the reviewed list of unaudited URLs. A listed prefix covers itself and
    what lies below it as a path segment: "/healthz" covers "/healthz/", never "/healthzandconsumers"."""
    for prefix in settings.AUDIT_EXEMPT_PATH_PREFIXES:
        stem = prefix.rstrip("/")
        if path == stem or path.startswith(stem + "/"):
            return True
    return False


def _request_id(request: HttpRequest) -> str:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    if supplied and len(supplied) <= 64 and supplied.replace("-", "").isalnum():
        return supplied
    return uuid.uuid4().hex


def _action(request: HttpRequest, note: recorder.AuditNote) -> str:
    if note.action:
        return note.action
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        return match.view_name
    return "http.unresolved"


def _discard(response: HttpResponse) -> None:
    """Release what a withheld response holds (an open file, a generator) without `close()`: that would also
    announce the end of the request (request_finished) before the 503 that replaces it has even left."""
    closers = getattr(response, "_resource_closers", [])
    for closer in closers:
        # As HttpResponseBase.close() does: a closer that fails must not stop the 503.
        with contextlib.suppress(Exception):
            closer()
    closers.clear()


def _unavailable() -> HttpResponse:
    failed = JsonResponse(
        {"detail": "The audit trail is unavailable, so no data can be served. Try again later."},
        status=503,
    )
    failed["Retry-After"] = "30"
    return failed


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # path_info, not path: behind gunicorn a client's SCRIPT_NAME header is prepended to `path` but not
        # routed, so "/healthz" + "/api/v1/consumers/" would otherwise serve data unrecorded.
        if is_exempt(request.path_info):
            return self.get_response(request)
        request_id = _request_id(request)
        note = recorder.note_for(request)
        context = recorder.RequestContext(
            method=request.method or "",
            path=request.path,
            request_id=request_id,
            client_ip=recorder.client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        with recorder.serving(context):
            response = self.get_response(request)
        user = getattr(request, "user", None)
        try:
            recorder.record(
                actor=user,
                actor_username=note.actor_username,
                action=_action(request, note),
                outcome=note.outcome or recorder.outcome_for_status(response.status_code),
                method=request.method or "",
                path=request.path,
                query=recorder.sanitised_query(request),
                status=response.status_code,
                request_id=request_id,
                client_ip=recorder.client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
                grant_id=note.grant_id,
                purpose=note.purpose,
                resource_kind=note.resource_kind,
                requested_id=note.requested_id,
                subjects=note.subjects,
                subject_grants=note.subject_grants,
                row_count=note.row_count if note.row_count is not None else len(note.subjects),
                search_term=note.search_term,
                export_sha256=note.export_sha256,
            )
        except Exception:
            # Whatever stopped the event (the database, or a request too odd to describe), nothing leaves.
            _discard(response)
            failed = _unavailable()
            failed[REQUEST_ID_HEADER] = request_id
            return failed
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A decision whose event could not be written was rolled back with it (the service raised inside
        its transaction): the caller learns that nothing happened, and why, as 503 (this request's own
        event is then attempted as for any response)."""
        if isinstance(exception, recorder.AuditWriteError):
            return _unavailable()
        return None
