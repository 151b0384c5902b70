"""The audit trail over the API: event search, chain verification, signed checkpoints, and the per-consumer
access log. Reads of the trail are themselves audited by the middleware."""

from __future__ import annotations

import base64
import re
from datetime import datetime, tzinfo
from typing import Any

import orjson
from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from audit import chain, checkpoints, cosigning, receipts, selectors, tiles, verify
from audit.models import AuditCheckpoint, AuditEvent
from portal.access import policy
from portal.access.models import Permission
from portal.access.selectors import shown_grant_purposes
from portal.accounts.models import Role
from portal.api import params
from portal.api.pagination import Keyset
from portal.api.renderers import FastJSONRenderer, PortalJSONRenderer, TlogProofRenderer
from portal.api.schema import paginated
from portal.api.views.base import NOT_FOUND, PortalView
from portal.api.views.records import CURSOR_PARAMS, GRANT_HEADER_PARAM

EVENT_PAGES = Keyset("-occurred_at", "-id")
CHECKPOINT_PAGES = Keyset("-chain_position")


class AuditEventSerializer(serializers.ModelSerializer):
    subjects = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        # Every recorded field but the internal user id, with the event's own hash and its subjects.
        fields = [name for name in chain.EVENT_FIELDS if name != "actor_id"] + ["hash", "subjects"]

    def get_subjects(self, event: AuditEvent) -> list[str]:
        return [s.public_id for s in event.subjects.all()]


def _local_time(value: datetime | None, zone: tzinfo) -> str | None:
    """DRF's DateTimeField output: ISO 8601 in the current zone, `Z` for UTC."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def event_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AuditEventSerializer's output for rows of selectors.EVENT_LIST_FIELDS and `subject_ids`, byte for byte
    (same fields in the same order; times in the current zone), without a model instance, a field tree and a
    prefetch cache per event: on a page of 50 that was most of the request's time."""
    zone = timezone.get_current_timezone()
    shaped = []
    for row in rows:
        event = dict(row)
        event["occurred_at"] = _local_time(row["occurred_at"], zone)
        event["sealed_at"] = _local_time(row["sealed_at"], zone)
        del event["subject_ids"]
        event["subjects"] = orjson.loads(row["subject_ids"])
        shaped.append(event)
    return shaped


class AccessLogSerializer(serializers.ModelSerializer):
    # The grant this consumer was shown under (per subject: a list may span grants), and its purpose.
    grant_id = serializers.IntegerField(source="shown_grant_id", allow_null=True)
    purpose = serializers.CharField(source="shown_purpose")
    # A receipt: the event's leaf in the transparency log (null until sealed) and where its proof is.
    leaf_index = serializers.SerializerMethodField()
    inclusion_proof = serializers.SerializerMethodField()
    receipt = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [*selectors.ACCESS_LOG_FIELDS, "leaf_index", "inclusion_proof", "receipt"]

    def get_leaf_index(self, event: AuditEvent) -> int | None:
        return None if event.chain_position is None else event.chain_position - 1

    def get_inclusion_proof(self, event: AuditEvent) -> str | None:
        if event.chain_position is None:
            return None
        return f"{reverse('api:audit-log-inclusion')}?index={event.chain_position - 1}"

    def get_receipt(self, event: AuditEvent) -> str | None:
        """This row's c2sp.org/tlog-proof file (once the event is in a checkpoint)."""
        if event.chain_position is None:
            return None
        return f"{self.context['path']}?format=tlog-proof&index={event.chain_position - 1}"


ACCESS_LOG_PAGE = inline_serializer(
    name="PaginatedAccessLogList",
    fields={
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
        "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
        "results": AccessLogSerializer(many=True),
        "other_organisations_entries": serializers.IntegerField(
            help_text="Entries of other organisations than the caller's, not listed (0 for an auditor)."
        ),
    },
)


class AuditEventListView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "audit"
    action = "audit.events.read"

    @extend_schema(
        parameters=[
            OpenApiParameter("actor", OpenApiTypes.STR, description="Username."),
            OpenApiParameter("organisation", OpenApiTypes.STR, description="Organisation name as recorded."),
            OpenApiParameter("consumer", OpenApiTypes.STR, description="A consumer's public id."),
            OpenApiParameter("action", OpenApiTypes.STR),
            OpenApiParameter("outcome", OpenApiTypes.STR, enum=AuditEvent.Outcome.values),
            OpenApiParameter("since", OpenApiTypes.STR),
            OpenApiParameter("until", OpenApiTypes.STR),
            *CURSOR_PARAMS,
        ],
        responses=paginated(AuditEventSerializer),
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(
            request, {"actor", "organisation", "consumer", "action", "outcome", "since", "until"}
        )
        self.note.resource_kind = "audit_event"
        since, until = params.period(request)
        texts = {
            name: params.single(request, name) for name in ("actor", "organisation", "consumer", "action")
        }
        for name, value in texts.items():
            if value is not None and len(value) > 200:
                raise params.bad(name, "At most 200 characters.")
        given = {**texts, "outcome": params.choice(request, "outcome", AuditEvent.Outcome.values)}
        # Only the filters that filter (event_list ignores an empty text), and the period's bounds.
        inputs: dict[str, Any] = {name: value for name, value in given.items() if value}
        for name, bound in (("since", since), ("until", until)):
            if bound is not None:
                inputs[name] = bound

        def build(filters: dict[str, Any]) -> QuerySet:
            events = selectors.event_list(**filters)
            return selectors.with_subject_ids(events).values(*selectors.EVENT_LIST_FIELDS, "subject_ids")

        page = EVENT_PAGES.paginate_statement(request, "audit.events", AuditEvent, build, inputs)
        self.note.row_count = len(page.results)
        return Response(page.as_dict(event_rows(page.results)))


class AuditVerifyView(PortalView):
    gate = "audit"
    action = "audit.verify"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, set())
        self.note.resource_kind = "audit_chain"
        return Response(verify.chain_verify().as_dict())


class AuditCheckpointListView(PortalView):
    """Signed checkpoints (chain position, head hash, time) and the public key that verifies them: a
    regulator keeps them and can later prove that history was not rewritten."""

    gate = "audit_checkpoints"
    action = "audit.checkpoints.read"

    @extend_schema(
        operation_id="v1_audit_checkpoints_list", parameters=CURSOR_PARAMS, responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, set())
        self.note.resource_kind = "audit_checkpoint"
        page = CHECKPOINT_PAGES.paginate(request, selectors.checkpoint_list())
        body = page.as_dict([checkpoints.checkpoint_document(c) for c in page.results])
        key = checkpoints.public_key()
        return Response(
            {**body, "public_key": key, "public_key_fingerprint": checkpoints.public_key_fingerprint(key)}
        )


class AuditCheckpointDetailView(PortalView):
    gate = "audit_checkpoints"
    action = "audit.checkpoint.download"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, position: str) -> Response:
        self.note.resource_kind, self.note.requested_id = "audit_checkpoint", position[:100]
        checkpoint = (
            AuditCheckpoint.objects.filter(chain_position=int(position)).first()
            if params.is_id(position)
            else None
        )
        if checkpoint is None:
            raise NotFound(NOT_FOUND)
        response = Response(checkpoints.checkpoint_document(checkpoint))
        response["Content-Disposition"] = f'attachment; filename="audit-checkpoint-{position}.json"'
        return response


class ConsumerAccessLogView(PortalView):
    """Who accessed this consumer's data, when, under which grant and purpose (PIPL art. 44/45; FCRA §609).
    A regulator needs view_records on the consumer; an auditor reads the trail for any public id."""

    gate = "access_log"
    action = "consumer.access_log"
    renderer_classes = [PortalJSONRenderer, TlogProofRenderer]

    @extend_schema(
        parameters=[
            *CURSOR_PARAMS,
            GRANT_HEADER_PARAM,
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json", "tlog-proof"],
                description="tlog-proof: the rows' c2sp.org/tlog-proof receipts against the latest "
                "checkpoint, a zip of <leaf index>.tlog-proof for the page, or the one file of `index`.",
            ),
            OpenApiParameter(
                "index", OpenApiTypes.INT, description="With format=tlog-proof: one row's leaf."
            ),
        ],
        responses={
            200: ACCESS_LOG_PAGE,
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "text/plain"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request, public_id: str) -> Response | HttpResponse:
        """An auditor sees every entry; anyone else their own organisation's entries in full and only the
        number of other organisations' (`other_organisations_entries`)."""
        params.reject_unknown(request, {"format", "index"})
        receipts_wanted = params.single(request, "format") == "tlog-proof"
        if not receipts_wanted and params.single(request, "index") is not None:
            raise params.bad("index", "Only with format=tlog-proof.")
        organisation: str | None = None
        if self.user.role == Role.AUDITOR:
            self.note.resource_kind, self.note.requested_id = "consumer", public_id[:100]
        else:
            self.consumer_access(public_id, Permission.VIEW_RECORDS)
            self.note.subjects = [public_id]
            organisation = str(self.user.organisation or "")
        others = 0
        if policy.PUBLIC_ID_PATTERN.fullmatch(public_id):
            events = selectors.consumer_access_log(public_id=public_id, organisation=organisation)
            if organisation is not None:
                others = selectors.consumer_access_log_others(public_id=public_id, organisation=organisation)
        else:
            events = AuditEvent.objects.none()  # no event names a malformed id as its subject
        if receipts_wanted:
            return self._receipts(request, public_id, events)
        page = EVENT_PAGES.paginate(request, events)
        shown_grant_purposes(page.results)
        context = {"path": request.path}
        body = page.as_dict(AccessLogSerializer(page.results, many=True, context=context).data)
        return Response({**body, "other_organisations_entries": others})

    def _receipts(self, request: Request, public_id: str, events: QuerySet[AuditEvent]) -> HttpResponse:
        """One row's tlog-proof (`index`), or a zip of the page's, against the latest checkpoint; a row
        outside the caller's log, or not yet in a checkpoint, is 404."""
        checkpoint = _latest_note()
        name = re.sub(r"[^A-Za-z0-9_-]", "", public_id)[:40]
        if params.single(request, "index") is not None:
            index = _size(request, "index")
            event = events.filter(chain_position=index + 1).first()
            proof = None
            if event is not None:
                proof = receipts.receipt(
                    event=event, checkpoint=checkpoint, note=receipts.served_note(checkpoint)
                )
            if proof is None:
                raise NotFound(NOT_FOUND)
            self.note.row_count = 1
            response = _text(receipts.encode(proof))
            response["Content-Disposition"] = f'attachment; filename="{name}-{index}.tlog-proof"'
            return response
        page = EVENT_PAGES.paginate(request, events)
        body, count = receipts.receipts_zip(events=page.results, checkpoint=checkpoint)
        self.note.row_count = count
        response = _text(body, "application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}-receipts.zip"'
        if page.next:
            response["Link"] = f'<{page.next}>; rel="next"'
        return response


# --- The transparency log (SPEC §4 "Verifiable by outsiders") ---------------------------------------------

# C2SP tlog-tiles tile index: groups of three digits, all but the last prefixed with "x".
_TILE_INDEX = re.compile(r"(?:x\d{3}/)*\d{3}")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _text(body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


def _latest_note() -> AuditCheckpoint:
    """The checkpoint the log serves (checkpoints.latest_served), or 404 while there is none."""
    checkpoint = checkpoints.latest_served()
    if checkpoint is None:
        raise NotFound("No checkpoint has been published yet.")
    return checkpoint


def _size(request: Request, name: str, *, default: int | None = None) -> int:
    value = params.single(request, name)
    if value is None:
        if default is None:
            raise params.bad(name, "This parameter is required.")
        return default
    if not params.is_id(value) or len(value) > 19:
        raise params.bad(name, "A non-negative integer.")
    return int(value)


class LogView(PortalView):
    gate = "audit_checkpoints"


class LogCheckpointView(LogView):
    """The latest checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint), with the cosignatures of the
    witnesses that have cosigned it (c2sp.org/tlog-cosignature)."""

    action = "audit.log.checkpoint"

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        params.reject_unknown(request, set())
        self.note.resource_kind = "audit_checkpoint"
        checkpoint = _latest_note()
        self.note.requested_id = str(checkpoint.chain_position)
        return _text(checkpoint.note + cosigning.cosignature_lines(checkpoint))


class LogKeyView(LogView):
    """The log's verifier key in golang.org/x/mod/sumdb/note form."""

    action = "audit.log.key"

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        params.reject_unknown(request, set())
        self.note.resource_kind = "audit_checkpoint"
        return _text(checkpoints.log_verifier_key() + "\n")


class LogInclusionView(LogView):
    """The RFC 6962 inclusion proof of leaf `index` (chain position index + 1) in the tree of `size`."""

    action = "audit.log.inclusion"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "index", OpenApiTypes.INT, required=True, description="Leaf index (position - 1)."
            ),
            OpenApiParameter(
                "size", OpenApiTypes.INT, description="Tree size (default: the latest checkpoint's)."
            ),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, {"index", "size"})
        self.note.resource_kind = "audit_event"
        index = _size(request, "index")
        size_given = params.single(request, "size") is not None
        size = _size(request, "size", default=0) if size_given else _latest_note().tree_size or 0
        sealed = tiles.size()
        if size_given and not 0 < size <= sealed:
            raise params.bad("size", f"Between 1 and the log's size ({sealed}).")
        if index >= size:
            raise params.bad("index", f"Less than the tree size ({size}).")
        link = next(iter(chain.iter_sealed(after_position=index, until_position=index + 1)), None)
        if link is None or not self._may_read(link.event_id):
            raise NotFound(NOT_FOUND)
        self.note.requested_id = str(link.event_id)
        proof = tiles.inclusion_proof(index, size)
        return Response(
            {"index": index, "size": size, "leaf": _b64(link.canonical), "hashes": [_b64(h) for h in proof]}
        )

    def _may_read(self, event_id: int) -> bool:
        """An auditor any event; a regulator its own organisation's events only. The leaf is the whole
        event (user, purpose, subjects): another organisation's read of a consumer this regulator holds
        shows in its access log as a count only (SPEC §4), so its proof, which would name them, is not
        handed out either."""
        if self.user.role == Role.AUDITOR:
            return True
        organisation = getattr(self.user, "organisation", None)
        if organisation is None:
            return False
        return AuditEvent.objects.filter(pk=event_id, actor_organisation=str(organisation)).exists()


class LogConsistencyView(LogView):
    """The RFC 6962 consistency proof between the trees of sizes `old` and `new`."""

    action = "audit.log.consistency"

    @extend_schema(
        parameters=[
            OpenApiParameter("old", OpenApiTypes.INT, required=True),
            OpenApiParameter("new", OpenApiTypes.INT, required=True),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, {"old", "new"})
        self.note.resource_kind = "audit_checkpoint"
        old, new = _size(request, "old"), _size(request, "new")
        sealed = tiles.size()
        if not 0 < new <= sealed:
            raise params.bad("new", f"Between 1 and the log's size ({sealed}).")
        if not 0 < old <= new:
            raise params.bad("old", "Between 1 and new.")
        proof = tiles.consistency_proof(old, new)
        return Response({"old": old, "new": new, "hashes": [_b64(h) for h in proof]})


class LogTileView(LogView):
    """A C2SP tlog-tiles hash tile: /tile/{L}/{N} (256 hashes) or /tile/{L}/{N}.p/{W} (the first W)."""

    action = "audit.log.tile"

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, level: str, index: str) -> HttpResponse:
        params.reject_unknown(request, set())
        self.note.resource_kind, self.note.requested_id = "audit_tile", f"{level}/{index}"[:100]
        width = tiles.TILE_WIDTH
        name, partial, given_width = index.partition(".p/")
        if partial:
            if not params.is_id(given_width) or not 0 < int(given_width) < tiles.TILE_WIDTH:
                raise params.bad("width", "A partial tile's width is 1 to 255.")
            width = int(given_width)
        if not params.is_id(level) or int(level) > 7:
            raise params.bad("level", "A tile level is 0 to 7.")
        if not _TILE_INDEX.fullmatch(name) or len(name) > 30:
            raise params.bad("index", "A tile index is groups of three digits: x001/x234/067.")
        number = int(name.replace("x", "").replace("/", ""))
        body = tiles.tile(int(level), number, width)
        if body is None:
            raise NotFound(NOT_FOUND)
        return _text(body, "application/octet-stream")
