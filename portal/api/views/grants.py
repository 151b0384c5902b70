"""The grant workflow over the API: regulators request, compliance decides (four eyes), everyone reads what
their role allows."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import services
from portal.access.models import AccessGrant
from portal.access.selectors import grants_for
from portal.accounts.models import Organisation
from portal.api import params
from portal.api.pagination import Keyset
from portal.api.schema import paginated
from portal.api.serializers import (
    GrantDecisionSerializer,
    GrantRequestSerializer,
    GrantRevokeSerializer,
    GrantSerializer,
)
from portal.api.views.base import NOT_FOUND, PortalView
from portal.api.views.records import CURSOR_PARAMS
from portal.records.models import Consumer, Segment

GRANT_PAGES = Keyset("-id")


def _raise(error: services.GrantError):
    if error.code in ("forbidden", "four_eyes"):
        raise PermissionDenied(error.message)
    if isinstance(error, services.GrantConflict):
        return Response({error.field: [error.message]}, status=status.HTTP_409_CONFLICT)
    raise ValidationError({error.field: [error.message]})


class GrantListView(PortalView):
    gates = {"GET": "grants_read", "POST": "grants_request"}

    @extend_schema(parameters=[*CURSOR_PARAMS], responses=paginated(GrantSerializer))
    def get(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "grant.list", "grant"
        params.reject_unknown(request, {"status"})
        grants = grants_for(self.user)
        state = params.choice(request, "status", AccessGrant.Status.values)
        if state is not None:
            grants = grants.filter(status=state)
        page = GRANT_PAGES.paginate(request, grants)
        return Response(page.as_dict(GrantSerializer(page.results, many=True).data))

    @extend_schema(request=GrantRequestSerializer, responses={201: GrantSerializer})
    def post(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "grant.request", "grant"
        form = GrantRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organisation = None
        if data.get("grantee_organisation"):
            organisation = Organisation.objects.filter(short_name=data["grantee_organisation"]).first()
            if organisation is None:
                raise ValidationError({"grantee_organisation": ["Unknown organisation."]})
        if "consumer" in data:
            self.note.requested_id = data["consumer"]
        try:
            services.grant_request_check(
                requester=self.user,
                permissions=data["permissions"],
                purpose=data["purpose"],
                legal_basis=data["legal_basis"],
                case_reference=data["case_reference"],
                valid_from=data.get("valid_from") or timezone.now(),
                valid_until=data["valid_until"],
                target_kind="segment" if "segment" in data else "consumer",
                grantee_organisation=organisation,
                for_requester_only=data["for_requester_only"],
            )
        except services.GrantError as error:
            return _raise(error)
        segment = consumer = None
        if "segment" in data:
            segment = Segment.objects.filter(pk=data["segment"]).first()
            if segment is None:
                raise ValidationError({"segment": ["Unknown segment."]})
        else:
            consumer = Consumer.objects.filter(public_id=data["consumer"]).first()
            if consumer is None:
                raise ValidationError({"consumer": ["Unknown consumer."]})
        try:
            grant = services.grant_request(
                requester=self.user,
                permissions=data["permissions"],
                purpose=data["purpose"],
                legal_basis=data["legal_basis"],
                case_reference=data["case_reference"],
                valid_from=data.get("valid_from"),
                valid_until=data["valid_until"],
                segment=segment,
                consumer=consumer,
                grantee_organisation=organisation,
                for_requester_only=data["for_requester_only"],
            )
        except services.GrantError as error:
            return _raise(error)
        self.note.grant_id, self.note.purpose = grant.pk, grant.purpose
        return Response(GrantSerializer(grants_for(self.user).get(pk=grant.pk)).data, status=201)


class GrantActionView(PortalView):
    gate = "grants_decide"
    verb = ""
    form_class: type[serializers.Serializer] = GrantDecisionSerializer

    def _grant(self, grant_id: str) -> AccessGrant:
        self.note.resource_kind, self.note.requested_id = "grant", grant_id[:100]
        grant = AccessGrant.objects.filter(pk=int(grant_id)).first() if params.is_id(grant_id) else None
        if grant is None:
            raise NotFound(NOT_FOUND)
        self.note.grant_id, self.note.purpose = grant.pk, grant.purpose
        return grant

    def post(self, request: Request, grant_id: str) -> Response:
        self.note.action = f"grant.{self.verb}"
        grant = self._grant(grant_id)
        form = self.form_class(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            grant = self.decide(grant, form.validated_data)
        except services.GrantError as error:
            return _raise(error)
        return Response(GrantSerializer(grants_for(self.user).get(pk=grant.pk)).data)

    def decide(self, grant: AccessGrant, data: dict) -> AccessGrant:
        raise NotImplementedError


@extend_schema_view(post=extend_schema(request=GrantDecisionSerializer, responses=GrantSerializer))
class GrantApproveView(GrantActionView):
    verb = "approve"

    def decide(self, grant: AccessGrant, data: dict) -> AccessGrant:
        return services.grant_approve(grant=grant, approver=self.user, note=data.get("note", ""))


@extend_schema_view(post=extend_schema(request=GrantDecisionSerializer, responses=GrantSerializer))
class GrantRejectView(GrantActionView):
    verb = "reject"

    def decide(self, grant: AccessGrant, data: dict) -> AccessGrant:
        return services.grant_reject(grant=grant, approver=self.user, note=data.get("note", ""))


@extend_schema_view(post=extend_schema(request=GrantRevokeSerializer, responses=GrantSerializer))
class GrantRevokeView(GrantActionView):
    verb = "revoke"
    form_class = GrantRevokeSerializer

    def decide(self, grant: AccessGrant, data: dict) -> AccessGrant:
        return services.grant_revoke(grant=grant, revoker=self.user, reason=data["reason"])
