"""The auditor's screens: event search, the per-consumer access log, chain status with the latest signed
checkpoint, and checkpoint downloads. Reading the trail is itself audited by the middleware."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit import checkpoints, selectors
from audit.models import AuditCheckpoint, AuditEvent, AuditSubject
from portal.access.selectors import shown_grant_purposes
from portal.web import pages
from portal.web.forms import AccessLogForm, EventFilterForm
from portal.web.paging import BadCursor, Keyset

EVENT_PAGES = Keyset("-occurred_at", "-id")
CHECKPOINT_ROWS = 20


@pages.page("audit", "audit.events.read")
def event_list(request: HttpRequest) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind = "audit_event"
    form = EventFilterForm(request.GET)
    status = 200
    if form.is_valid():
        events = selectors.event_list(**form.filters()).prefetch_related("subjects")
    else:
        events, status = selectors.event_list().none(), 400
    query = request.GET.copy()
    query.pop("cursor", None)
    try:
        page = EVENT_PAGES.paginate(events, request.GET.get("cursor"))
    except BadCursor:
        page, status = EVENT_PAGES.paginate(events.none(), None), 400
    note.row_count = len(page.results)
    return render(
        request,
        "web/audit_events.html",
        {
            "form": form,
            "page": page,
            "filter_query": query.urlencode(),
            "organisation_names": pages.organisation_names(),
        },
        status=status,
    )


@pages.page("audit", "audit.event.read")
def event_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    """One event, every field: who, from where, what, under which grant, the consumers it named, and where
    it stands in the sealed chain (its neighbours and the first signed checkpoint that covers it)."""
    note = pages.note(request)
    note.resource_kind, note.requested_id = "audit_event", event_id[:100]
    event = (
        AuditEvent.objects.filter(pk=int(event_id)).first()
        if event_id.isascii() and event_id.isdigit() and len(event_id) <= 18
        else None
    )
    if event is None:
        raise pages.NotFound
    subjects = list(
        AuditSubject.objects.filter(event_id=event.pk, occurred_at=event.occurred_at)
        .order_by("public_id")
        .values_list("public_id", flat=True)
    )
    checkpoint = None
    if event.chain_position is not None:
        checkpoint = (
            AuditCheckpoint.objects.filter(chain_position__gte=event.chain_position)
            .order_by("chain_position")
            .first()
        )
    return render(
        request,
        "web/audit_event.html",
        {
            "event": event,
            "subjects": subjects,
            "checkpoint": checkpoint,
            "query_json": json.dumps(event.query, ensure_ascii=False, sort_keys=True) if event.query else "",
            "organisation_names": pages.organisation_names(),
        },
    )


@pages.page("audit", "consumer.access_log")
def access_log(request: HttpRequest) -> HttpResponse:
    """Who accessed one consumer's data, when, under which grant and purpose. The auditor reads the trail
    for any public id: no consumer data is shown, only the events that name it."""
    note = pages.note(request)
    note.resource_kind = "consumer"
    form = AccessLogForm(request.GET) if "consumer" in request.GET else AccessLogForm()
    status, page, query = 200, None, ""
    if form.is_bound:
        if form.is_valid():
            public_id = form.cleaned_data["consumer"]
            note.requested_id = public_id
            events = selectors.consumer_access_log(public_id=public_id)
            query = f"consumer={public_id}"
            try:
                page = EVENT_PAGES.paginate(events, request.GET.get("cursor"))
            except BadCursor:
                status = 400
            else:
                note.row_count = len(page.results)
                shown_grant_purposes(page.results)
        else:
            status = 400
    return render(
        request,
        "web/audit_access_log.html",
        {
            "form": form,
            "page": page,
            "filter_query": query,
            "organisation_names": pages.organisation_names(),
        },
        status=status,
    )


@pages.page("audit", "audit.chain.read")
def chain(request: HttpRequest) -> HttpResponse:
    pages.note(request).resource_kind = "audit_chain"
    return render(
        request,
        "web/audit_chain.html",
        {
            "status": selectors.chain_status(),
            "checkpoints": list(selectors.checkpoint_list()[:CHECKPOINT_ROWS]),
        },
    )


@pages.page("audit_checkpoints", "audit.checkpoint.download")
def checkpoint_download(request: HttpRequest, position: str) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind, note.requested_id = "audit_checkpoint", position[:100]
    checkpoint = (
        AuditCheckpoint.objects.filter(chain_position=int(position)).first()
        if position.isascii() and position.isdigit() and len(position) <= 18
        else None
    )
    if checkpoint is None:
        raise pages.NotFound
    body = json.dumps(checkpoints.checkpoint_document(checkpoint), indent=2, sort_keys=True) + "\n"
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-checkpoint-{checkpoint.chain_position}.json"'
    )
    return response
