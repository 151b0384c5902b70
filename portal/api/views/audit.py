"""The audit trail over the API: event search, chain verification, signed checkpoints, and the per-consumer
access log. Reads of the trail are themselves audited by the middleware."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from audit import chain, checkpoints, selectors, verify
from audit.models import AuditCheckpoint, AuditEvent
from portal.access import policy
from portal.access.models import Permission
from portal.access.selectors import shown_grant_purposes
from portal.accounts.models import Role
from portal.api import params
from portal.api.pagination import Keyset
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


class AccessLogSerializer(serializers.ModelSerializer):
    # The grant this consumer was shown under (per subject: a list may span grants), and its purpose.
    grant_id = serializers.IntegerField(source="shown_grant_id", allow_null=True)
    purpose = serializers.CharField(source="shown_purpose")

    class Meta:
        model = AuditEvent
        fields = list(selectors.ACCESS_LOG_FIELDS)


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
        events = selectors.event_list(
            **texts,
            outcome=params.choice(request, "outcome", AuditEvent.Outcome.values),
            since=since,
            until=until,
        ).prefetch_related("subjects")
        page = EVENT_PAGES.paginate(request, events)
        self.note.row_count = len(page.results)
        return Response(page.as_dict(AuditEventSerializer(page.results, many=True).data))


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

    @extend_schema(parameters=[*CURSOR_PARAMS, GRANT_HEADER_PARAM], responses=ACCESS_LOG_PAGE)
    def get(self, request: Request, public_id: str) -> Response:
        """An auditor sees every entry; anyone else their own organisation's entries in full and only the
        number of other organisations' (`other_organisations_entries`)."""
        params.reject_unknown(request, set())
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
        page = EVENT_PAGES.paginate(request, events)
        shown_grant_purposes(page.results)
        body = page.as_dict(AccessLogSerializer(page.results, many=True).data)
        return Response({**body, "other_organisations_entries": others})
