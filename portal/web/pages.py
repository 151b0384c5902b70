"""What every page view shares: the role gate (SPEC §6, the table in portal.access.gates: 403 for a role that
may never use a page), the per-user data rate, the caller's scope from the access policy (once per request),
and the request's audit note."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from audit.models import AuditEvent
from audit.recorder import AuditNote, note_for
from portal.access import policy
from portal.access.gates import ADMIN, AUDITOR, COMPLIANCE, REGULATOR, SHAREHOLDER, allows_user
from portal.access.models import AccessGrant
from portal.access.throttles import UserDataThrottle
from portal.accounts.models import User
from portal.prepared import prepared

# Pages of these gates serve consumer data: they count against the same per-user budget as the API
# (API_USER_THROTTLE_RATE, one bucket per user in the shared cache).
THROTTLED_GATES = frozenset({"records"})

# Where each role starts.
HOME: dict[str, str] = {
    REGULATOR: "web:dashboard",
    SHAREHOLDER: "web:overview",
    COMPLIANCE: "web:grants",
    AUDITOR: "web:audit-events",
    ADMIN: "web:grants",
}


class NotFound(Http404):
    """Unknown, malformed and out-of-scope ids alike."""


def page(gate: str, action: str) -> Callable:
    """Sign-in, then the role gate; the audit action is set first so a refusal is recorded as this page."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            note_for(request).action = action
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not allows_user(gate, cast(User, request.user)):
                raise PermissionDenied
            if gate in THROTTLED_GATES:
                refused = _throttled(request)
                if refused is not None:
                    return refused
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _throttled(request: HttpRequest) -> HttpResponse | None:
    """None within the user's rate; over it, 429 with Retry-After, recorded as a refused `web.throttled`."""
    throttle = UserDataThrottle()
    # DRF's user throttle reads only `request.user` (and the client address): a Django request will do.
    if throttle.allow_request(cast(Any, request), cast(Any, None)):
        return None
    audit = note_for(request)
    audit.action, audit.outcome = "web.throttled", AuditEvent.Outcome.DENIED
    seconds = max(1, math.ceil(throttle.wait() or 1))
    response = render(request, "429.html", {"seconds": seconds}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def user_of(request: HttpRequest) -> User:
    return cast(User, request.user)


def note(request: HttpRequest) -> AuditNote:
    return note_for(request)


def scope(request: HttpRequest) -> policy.Scope:
    cached = getattr(request, "_portal_scope", None)
    if cached is None:
        cached = policy.scope_for(request.user)
        request._portal_scope = cached  # type: ignore[attr-defined]
    return cached


def attribute(request: HttpRequest, grant: AccessGrant | None) -> None:
    """Tell the trail which grant (and purpose) the page relied on."""
    if grant is not None:
        audit = note_for(request)
        audit.grant_id, audit.purpose = grant.pk, grant.purpose


def consumer_access(request: HttpRequest, public_id: str, permission: str = policy.RECORDS):
    """The consumer in the path, or the same 404 for unknown, malformed and out-of-scope ids."""
    audit = note_for(request)
    audit.resource_kind, audit.requested_id = "consumer", public_id[:100]
    try:
        access = policy.consumer_access(scope(request), public_id, permission)
    except policy.NotVisible:
        raise NotFound from None
    attribute(request, access.grant)
    return access


@contextmanager
def planned_once() -> Iterator[None]:
    """Every statement run inside is marked (portal.prepared): on PostgreSQL each is planned once per
    connection instead of on every request. For a page whose statements are all of one consumer or one
    user (a consumer's transactions and their count, segments, scores, accounts, access log): their plans
    do not depend on the values, and planning them over the transactions' and the trail's monthly
    partitions costs more than running them. The ORM still writes every statement; only how the server
    plans it changes, and where it cannot be prepared it runs as before (portal.pgconnection)."""

    def mark(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        return execute(sql if many else prepared(sql), params, many, context)

    with connection.execute_wrapper(mark):
        yield


def organisation_names() -> dict[str, str]:
    """Organisation names as the trail records them (English) -> the name in the page's language."""
    from django.utils.translation import get_language

    from portal.accounts.models import Organisation

    if not (get_language() or "").startswith("zh"):
        return {}
    return {name: name_zh for name, name_zh in Organisation.objects.values_list("name", "name_zh") if name_zh}


def chinese() -> bool:
    from django.utils.translation import get_language

    return (get_language() or "").startswith("zh")
