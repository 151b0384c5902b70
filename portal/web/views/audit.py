"""The auditor's screens: event search, the per-consumer access log, chain status with the latest signed
checkpoint, and checkpoint downloads. Reading the trail is itself audited by the middleware."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from dataclasses import dataclass, field

from django.db.models import Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from audit import chain as audit_chain
from audit import checkpoints, merkle, notes, selectors, tiles
from audit.models import AuditCheckpoint, AuditEvent, AuditSubject
from portal.access.selectors import shown_grant_purposes
from portal.web import pages
from portal.web.forms import AccessLogForm, EventFilterForm
from portal.web.paging import BadCursor, Keyset, SortedList

EVENT_PAGES = Keyset("-occurred_at", "-id")
# The event search's sortable columns: time either way, or by action or user (then newest first).
EVENT_LIST = SortedList(
    {
        "-occurred_at": EVENT_PAGES,
        "occurred_at": Keyset("occurred_at", "id"),
        "action": Keyset("action", "-occurred_at", "-id"),
        "-action": Keyset("-action", "-occurred_at", "-id"),
        "actor_username": Keyset("actor_username", "-occurred_at", "-id"),
        "-actor_username": Keyset("-actor_username", "-occurred_at", "-id"),
    },
    default="-occurred_at",
)
CHECKPOINT_ROWS = 20
# The newest checkpoints tried, newest first, for the one whose signed note opens: one query, however many
# rows a forger added (a row that does not verify is reported by verification, never relied on here).
CHECKPOINT_CANDIDATES = 20


@dataclass
class Inclusion:
    """An event's place in the transparency log (SPEC §4): its leaf, the latest signed checkpoint, the
    RFC 6962 inclusion proof between them, and whether the proof leads to the checkpoint's signed root."""

    state: str  # "unsealed", "uncovered" (sealed after the latest checkpoint), "verified" or "failed"
    index: int | None = None
    checkpoint: AuditCheckpoint | None = None
    size: int | None = None
    root: str = ""
    leaf_hash: str = ""
    hashes: list[str] = field(default_factory=list)
    problem: str = ""


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _latest_checkpoint() -> tuple[AuditCheckpoint, notes.Checkpoint] | None:
    """The newest checkpoint within the sealed chain whose note opens under this installation's key and
    origin (as the API's checkpoint endpoint serves), with what the note says."""
    head = AuditEvent.objects.filter(chain_position__isnull=False).order_by("-chain_position")
    candidates = (
        AuditCheckpoint.objects.filter(
            public_key=checkpoints.public_key(),
            chain_position__lte=Subquery(head.values("chain_position")[:1]),
        )
        .exclude(note="")
        .order_by("-chain_position")[:CHECKPOINT_CANDIDATES]
    )
    key, origin = checkpoints.log_verifier_key(), notes.origin()
    for checkpoint in candidates:
        try:
            opened = notes.open_note(checkpoint.note, key, expected_origin=origin)
        except notes.NoteInvalid:
            continue
        if opened.size == checkpoint.chain_position == checkpoint.tree_size:
            return checkpoint, opened
    return None


def _inclusion(event: AuditEvent) -> Inclusion:
    """The proof is computed with the log's own functions (audit.tiles, audit.merkle) and checked here, on
    the server, against the root in the signed note; the leaf is hashed from the event as stored now, so an
    event altered after sealing shows as failed."""
    if event.chain_position is None:
        return Inclusion("unsealed")
    index = event.chain_position - 1
    latest = _latest_checkpoint()
    if latest is None or latest[1].size <= index:
        return Inclusion("uncovered", index=index, checkpoint=latest[0] if latest else None)
    checkpoint, opened = latest
    found = Inclusion("failed", index=index, checkpoint=checkpoint, size=opened.size, root=_b64(opened.root))
    link = next(iter(audit_chain.iter_sealed(after_position=index, until_position=index + 1)), None)
    if link is None or link.event_id != event.pk:
        found.problem = "the chain has no such leaf"
        return found
    leaf = merkle.leaf_hash(link.canonical)
    found.leaf_hash = _b64(leaf)
    try:
        proof = tiles.inclusion_proof(index, opened.size)
        found.hashes = [_b64(value) for value in proof]
        merkle.verify_inclusion(index, opened.size, leaf, proof, opened.root)
    except (tiles.TreeMissing, merkle.ProofError) as error:
        found.problem = str(error)
        return found
    found.state = "verified"
    return found


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
    listing = EVENT_LIST.read(request, events, keep=tuple(EventFilterForm.base_fields))
    if listing.invalid:
        status = 400
    note.row_count = len(listing.page.results)
    return render(
        request,
        "web/audit_events.html",
        {
            "form": form,
            "listing": listing,
            "page": listing.page,
            "csv_rows": f"{EVENT_CSV_ROWS:,}",
            "organisation_names": pages.organisation_names(),
        },
        status=status,
    )


# The event search's CSV: the filtered events in the list's order, at most this many (narrow the filters for
# more; the API's cursor pagination serves any number).
EVENT_CSV_ROWS = 10_000
EVENT_CSV_COLUMNS = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_role",
    "actor_organisation",
    "action",
    "outcome",
    "method",
    "path",
    "status",
    "client_ip",
    "grant_id",
    "purpose",
    "resource_kind",
    "requested_id",
    "row_count",
    "chain_position",
    "hash",
)


@pages.page("audit", "audit.events.export")
def event_csv(request: HttpRequest) -> HttpResponse:
    """The event search as CSV, with the same filters and order as the page. The download is itself an
    event: its row count and the SHA-256 of the file are recorded, as for a data export."""
    note = pages.note(request)
    note.resource_kind = "audit_event"
    form = EventFilterForm(request.GET)
    sort = request.GET.get("sort") or EVENT_LIST.default
    if not form.is_valid() or sort not in EVENT_LIST.sorts:
        errors = {name: [str(e) for e in messages] for name, messages in form.errors.items()}
        if sort not in EVENT_LIST.sorts:
            errors["sort"] = ["Not a sortable column."]
        return JsonResponse({"errors": errors}, status=400)
    events = list(
        selectors.event_list(**form.filters())
        .order_by(*EVENT_LIST.sorts[sort].ordering)
        .prefetch_related("subjects")[:EVENT_CSV_ROWS]
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*EVENT_CSV_COLUMNS, "subjects"])
    for event in events:
        values = [getattr(event, name) for name in EVENT_CSV_COLUMNS]
        values[1] = event.occurred_at.isoformat()
        subjects = " ".join(sorted(subject.public_id for subject in event.subjects.all()))
        writer.writerow([*("" if value is None else value for value in values), subjects])
    body = buffer.getvalue().encode("utf-8")
    note.row_count = len(events)
    note.export_sha256 = hashlib.sha256(body).hexdigest()
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
    response["X-Content-SHA256"] = note.export_sha256
    return response


@pages.page("audit", "audit.event.read")
def event_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    """One event, every field: who, from where, what, under which grant, the consumers it named, where it
    stands in the sealed chain (its neighbours and the first signed checkpoint that covers it) and its
    inclusion proof in the latest checkpoint's tree. A fixed number of queries, whatever the log's size."""
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
            "inclusion": _inclusion(event),
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
