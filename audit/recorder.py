"""Writing audit events. The middleware calls `record` for every audited request; views describe what they
served by filling the request's AuditNote. A service that changes state (a grant decision, an expiry, an
export request, a membership) calls `record_decision` inside its own transaction, so that the change and its
event commit together or not at all, from a request, a shell or a task alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from audit.models import AuditEvent, AuditSubject

logger = logging.getLogger(__name__)

# Query parameters never stored, not even hashed: they carry secrets, not intent.
SECRET_PARAMETERS = frozenset({"password", "token", "otp", "secret", "key"})
SEARCH_PARAMETER = "q"
MAX_QUERY_VALUE = 200


class AuditWriteError(Exception):
    """The event could not be written; whatever it was about must not be served."""


@dataclass
class AuditNote:
    """What a view served, told to the recorder. Everything is optional; the middleware fills the rest."""

    action: str = ""
    outcome: str = ""  # overrides the outcome derived from the status code
    resource_kind: str = ""
    requested_id: str = ""
    subjects: list[str] = field(default_factory=list)
    # The grant each subject was shown under where it differs from the event's (a list spanning grants).
    subject_grants: dict[str, int] = field(default_factory=dict)
    row_count: int | None = None
    grant_id: int | None = None
    purpose: str = ""
    search_term: str | None = None
    export_sha256: str = ""
    actor_username: str = ""  # for failed logins: the name that was tried


def note_for(request: Any) -> AuditNote:
    """The AuditNote of a request (a Django HttpRequest or a DRF Request wrapping one)."""
    http_request = getattr(request, "_request", request)
    note = getattr(http_request, "audit_note", None)
    if note is None:
        note = http_request.audit_note = AuditNote()
    return note


def search_hash(term: str) -> str:
    return hmac.new(settings.AUDIT_QUERY_HMAC_KEY.encode(), term.encode(), hashlib.sha256).hexdigest()


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in settings.TRUSTED_PROXIES:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip(request: HttpRequest) -> str | None:
    """The peer address; behind trusted proxies, the nearest X-Forwarded-For hop that is not one of them."""
    address = request.META.get("REMOTE_ADDR", "")
    if _trusted(address):
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop
            if not _trusted(hop):
                break
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def sanitised_query(request: HttpRequest) -> dict[str, Any]:
    """The query string as the trail keeps it: the values of the reviewed plain parameters (filters, paging)
    as sent; any other parameter's values only as a keyed hash, since a client may put an identifier in a
    parameter of any name; secrets and the search term not at all (the search term has its own hash)."""
    try:
        keys = list(request.GET)
    except Exception:  # e.g. more parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS: still recorded, unparsed
        return {"_unparsed": True}
    query: dict[str, Any] = {}
    for key in keys:
        if key == SEARCH_PARAMETER or key.lower() in SECRET_PARAMETERS:
            continue
        if key in settings.AUDIT_PLAIN_QUERY_PARAMETERS:
            values = [v[:MAX_QUERY_VALUE] for v in request.GET.getlist(key)]
        else:
            values = ["hmac:" + search_hash(v) for v in request.GET.getlist(key)]
        query[key[:MAX_QUERY_VALUE]] = values[0] if len(values) == 1 else values
    return query


def _text(value: str, limit: int | None = None) -> str:
    """A string as PostgreSQL can store it. A NUL, which a client can put in a path or a header and which
    text and jsonb columns refuse, becomes U+FFFD: the hostile request is recorded rather than a 503."""
    value = value.replace("\x00", "\ufffd")
    return value if limit is None else value[:limit]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def outcome_for_status(status: int) -> str:
    if status >= 500:
        return AuditEvent.Outcome.ERROR
    if status >= 400:
        return AuditEvent.Outcome.DENIED
    return AuditEvent.Outcome.ALLOWED


def record(
    *,
    actor: Any = None,
    action: str,
    outcome: str,
    method: str = "",
    path: str = "",
    query: dict[str, Any] | None = None,
    status: int | None = None,
    request_id: str = "",
    client_ip: str | None = None,
    user_agent: str = "",
    grant_id: int | None = None,
    purpose: str = "",
    resource_kind: str = "",
    requested_id: str = "",
    subjects: list[str] | tuple[str, ...] = (),
    subject_grants: Mapping[str, int] | None = None,
    row_count: int = 0,
    search_term: str | None = None,
    export_sha256: str = "",
    actor_username: str = "",
) -> AuditEvent:
    """Write one event and its subjects durably (committed when this returns, outside any atomic block).

    Each subject records the grant it was shown under: `subject_grants[public_id]`, else the event's grant.
    Raises AuditWriteError when it cannot; the caller must then serve nothing.
    """
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    organisation = getattr(actor, "organisation", None) if authenticated else None
    event = AuditEvent(
        actor=actor if authenticated else None,
        actor_username=_text(actor.get_username() if authenticated else actor_username, 150),
        actor_organisation=_text(str(organisation or ""), 200),
        actor_role=_text(getattr(actor, "role", "") if authenticated else "", 20),
        action=_text(action, 100),
        outcome=outcome,
        method=_text(method, 10),
        path=_text(path, 500),
        query=_clean(query or {}),
        status=status,
        request_id=_text(request_id, 64),
        client_ip=client_ip,
        user_agent=_text(user_agent, 300),
        grant_id=grant_id,
        purpose=_text(purpose),
        resource_kind=_text(resource_kind, 30),
        requested_id=_text(requested_id, 100),
        row_count=row_count,
        search_hash=search_hash(search_term) if search_term else "",
        export_sha256=_text(export_sha256, 64),
    )
    unique_subjects = list(dict.fromkeys(s for s in subjects if s))
    per_subject = subject_grants or {}
    rows = [(_text(public_id, 32), per_subject.get(public_id, grant_id)) for public_id in unique_subjects]
    try:
        connection = transaction.get_connection()
        if connection.vendor == "postgresql":
            _insert_in_one_statement(event, rows)
        else:
            with transaction.atomic():
                event.save(force_insert=True)
                AuditSubject.objects.bulk_create(
                    [
                        # The event's time: the subject lands in the same month's partition as its event.
                        AuditSubject(event=event, occurred_at=event.occurred_at, public_id=p, grant_id=g)
                        for p, g in rows
                    ]
                )
    except Exception as exc:
        logger.exception("audit event %s could not be written", action)
        raise AuditWriteError(str(exc)) from exc
    return event


_EVENT_FIELDS = [f for f in AuditEvent._meta.concrete_fields if f is not AuditEvent._meta.pk]


def _insert_sql() -> tuple[str, str]:
    """The event alone, and the event with its subjects (one data-modifying WITH): PostgreSQL statements."""
    events, subjects = AuditEvent._meta.db_table, AuditSubject._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in _EVENT_FIELDS)
    values = ", ".join(["%s"] * len(_EVENT_FIELDS))
    alone = f'INSERT INTO "{events}" ({columns}) VALUES ({values}) RETURNING "id"'  # noqa: S608 - names from _meta
    with_subjects = (
        f'WITH e AS ({alone}, "occurred_at") '  # noqa: S608 - names from _meta
        f'INSERT INTO "{subjects}" ("event_id", "occurred_at", "public_id", "grant_id") '
        "SELECT e.id, e.occurred_at, s.public_id, s.grant_id FROM e, "
        "unnest(%s::varchar[], %s::bigint[]) WITH ORDINALITY AS s(public_id, grant_id, n) ORDER BY s.n "
        'RETURNING "event_id"'
    )
    return alone, with_subjects


_INSERT_EVENT, _INSERT_EVENT_WITH_SUBJECTS = _insert_sql()


def _insert_in_one_statement(event: AuditEvent, rows: list[tuple[str, int | None]]) -> None:
    """Insert `event` and its subjects (public id, grant id; in the event's time, so that each lands in the
    same month's partition as its event) with one statement: outside a transaction it commits on its own,
    all or nothing, in one round trip to the database instead of four (begin, two inserts, commit), which
    on a page of data was a good part of the request's time. Inside one (a decision's), under a savepoint,
    as Model.save would: a refused write then leaves the caller's transaction usable, to roll back."""
    connection = transaction.get_connection()
    values = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in _EVENT_FIELDS]
    if rows:
        sql = _INSERT_EVENT_WITH_SUBJECTS
        values += [[public_id for public_id, _grant in rows], [grant for _public_id, grant in rows]]
    else:
        sql = _INSERT_EVENT
    in_transaction = connection.in_atomic_block or not connection.get_autocommit()
    savepoint = transaction.atomic() if in_transaction else contextlib.nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(sql, values)
        (event.pk,) = cursor.fetchone()
    event._state.adding, event._state.db = False, connection.alias


# --- Decisions: state changes recorded by the service that makes them -------------------------------------


@dataclass(frozen=True)
class RequestContext:
    """What the middleware knows of the request being served, lent to the decisions made while serving it."""

    method: str
    path: str
    request_id: str
    client_ip: str | None
    user_agent: str


_current_request: ContextVar[RequestContext | None] = ContextVar("audit_current_request", default=None)


@contextmanager
def serving(context: RequestContext) -> Iterator[None]:
    """Within: decisions carry this request's method, path, request id, client IP and user agent."""
    token = _current_request.set(context)
    try:
        yield
    finally:
        _current_request.reset(token)


def record_decision(
    *,
    actor: Any,
    action: str,
    resource_kind: str,
    resource_id: Any,
    grant: Any = None,
    detail: Mapping[str, Any] | None = None,
    outcome: str = AuditEvent.Outcome.ALLOWED,
    row_count: int = 0,
) -> AuditEvent:
    """Record a state change in the caller's transaction: the change and its event commit together.

    `actor` is the user who decided (None for the system: a periodic task); `resource_id` names what changed
    (a grant, an export, a user: kept as text); `grant` is the access grant the decision is about or relies
    on (anything with `pk` and `purpose`), recorded with its purpose; `detail` is a small JSON object (the
    decision's note, the old and new role, ...) stored in the event's `query` column, which a decision,
    unlike a request, has no other use for. When called while a request is served, the event carries that
    request's method, path, request id and client.

    Must be called inside `transaction.atomic()`: an event written on its own would let the change commit
    without it (or the event without the change). Raises AuditWriteError when the event cannot be written;
    the caller lets it propagate, which rolls the change back, and answers 503.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            f"record_decision({action!r}) outside a transaction: the change could commit alone"
        )
    context = _current_request.get()
    return record(
        actor=actor,
        action=action,
        outcome=outcome,
        method=context.method if context else "",
        path=context.path if context else "",
        query=dict(detail or {}),
        request_id=context.request_id if context else "",
        client_ip=context.client_ip if context else None,
        user_agent=context.user_agent if context else "",
        grant_id=None if grant is None else grant.pk,
        purpose="" if grant is None else str(grant.purpose),
        resource_kind=resource_kind,
        requested_id="" if resource_id is None else str(resource_id),
        row_count=row_count,
    )
