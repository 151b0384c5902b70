"""Memberships and credential resets over the API (SPEC §3): administrators and compliance request,
compliance decides (four eyes, never on their own request or account), everyone's steps are events."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from audit.recorder import AuditWriteError
from portal.accounts import services
from portal.accounts.models import CredentialReset, Membership, Organisation, User
from portal.api import params
from portal.api.pagination import Keyset
from portal.api.schema import paginated
from portal.api.serializers import (
    AccountCreateSerializer,
    AccountDeactivateSerializer,
    CredentialResetIssuedSerializer,
    CredentialResetRequestSerializer,
    CredentialResetSerializer,
    GrantDecisionSerializer,
    MembershipRequestSerializer,
    MembershipSerializer,
)
from portal.api.views.base import NOT_FOUND, PortalView
from portal.api.views.records import CURSOR_PARAMS

PAGES = Keyset("-id")
UNAVAILABLE = {"detail": "The audit trail is unavailable, so nothing was changed. Try again later."}


def _answer(call: Any) -> Any:
    """Run a service; its refusals become 403 (who), 409 (state), 400 (input); an event that cannot be
    written (and so a change that did not happen) becomes 503."""
    try:
        return call()
    except services.AccountError as error:
        if error.code in ("forbidden", "four_eyes"):
            raise PermissionDenied(error.message) from None
        if error.code == "conflict":
            return Response({error.field: [error.message]}, status=status.HTTP_409_CONFLICT)
        raise ValidationError({error.field: [error.message]}) from None
    except AuditWriteError:
        return Response(UNAVAILABLE, status=status.HTTP_503_SERVICE_UNAVAILABLE)


def _organisation(short_name: str | None) -> Organisation | None:
    if not short_name:
        return None
    organisation = Organisation.objects.filter(short_name=short_name).first()
    if organisation is None:
        raise ValidationError({"organisation": ["Unknown organisation."]})
    return organisation


def _account(username: str, field: str = "user") -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({field: ["Unknown account."]})
    return user


def _memberships() -> QuerySet[Membership]:
    return Membership.objects.select_related("user", "organisation", "requested_by", "decided_by", "ended_by")


def _resets() -> QuerySet[CredentialReset]:
    return CredentialReset.objects.select_related("user", "requested_by", "decided_by")


class _ListView(PortalView):
    gates = {"GET": "accounts_read", "POST": "accounts_request"}
    kind = ""
    statuses: list[str] = []

    def listing(self, request: Request, rows: QuerySet, serializer: type[serializers.Serializer]) -> Response:
        self.note.action, self.note.resource_kind = f"{self.kind}.list", self.kind
        params.reject_unknown(request, {"status", "user"})
        state = params.choice(request, "status", self.statuses)
        if state is not None:
            rows = rows.filter(status=state)
        username = params.single(request, "user")
        if username is not None:
            rows = rows.filter(user__username=username)
        page = PAGES.paginate(request, rows)
        return Response(page.as_dict(serializer(page.results, many=True).data))


class MembershipListView(_ListView):
    kind = "membership"
    statuses = Membership.Status.values

    @extend_schema(parameters=[*CURSOR_PARAMS], responses=paginated(MembershipSerializer))
    def get(self, request: Request) -> Response:
        return self.listing(request, _memberships(), MembershipSerializer)

    @extend_schema(request=MembershipRequestSerializer, responses={201: MembershipSerializer})
    def post(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "membership.request", "membership"
        form = MembershipRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = _account(data["user"])
        self.note.requested_id = user.get_username()
        made = _answer(
            lambda: services.membership_request(
                requester=self.user,
                user=user,
                role=data["role"],
                organisation=_organisation(data.get("organisation")),
                reason=data["reason"],
            )
        )
        if isinstance(made, Response):
            return made
        return Response(MembershipSerializer(_memberships().get(pk=made.pk)).data, status=201)


class _DecisionView(PortalView):
    gate = "accounts_decide"
    kind = ""
    verb = ""
    model: Any = None

    def target(self, pk: str) -> Any:
        self.note.action = f"{self.kind}.{self.verb}"
        self.note.resource_kind, self.note.requested_id = self.kind, pk[:100]
        found = self.model.objects.filter(pk=int(pk)).first() if params.is_id(pk) else None
        if found is None:
            raise NotFound(NOT_FOUND)
        return found


@extend_schema_view(post=extend_schema(request=GrantDecisionSerializer, responses=MembershipSerializer))
class MembershipDecisionView(_DecisionView):
    kind, model = "membership", Membership

    def post(self, request: Request, membership_id: str) -> Response:
        membership = self.target(membership_id)
        form = GrantDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        decide = services.membership_approve if self.verb == "approve" else services.membership_reject
        note = form.validated_data.get("note", "")
        done = _answer(lambda: decide(membership=membership, approver=self.user, note=note))
        if isinstance(done, Response):
            return done
        return Response(MembershipSerializer(_memberships().get(pk=done.pk)).data)


class MembershipApproveView(MembershipDecisionView):
    verb = "approve"


class MembershipRejectView(MembershipDecisionView):
    verb = "reject"


class AccountListView(PortalView):
    """POST: a new account, with its membership requested (no password, no scope until approved)."""

    gate = "accounts_request"

    @extend_schema(request=AccountCreateSerializer, responses={201: MembershipSerializer})
    def post(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "account.create", "account"
        form = AccountCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        self.note.requested_id = data["username"]
        if User.objects.filter(username=data["username"]).exists():
            raise ValidationError({"username": ["An account with this username exists."]})
        organisation = _organisation(data.pop("organisation", None))
        made = _answer(
            lambda: services.account_create(requester=self.user, organisation=organisation, **data)
        )
        if isinstance(made, Response):
            return made
        _user, membership = made
        return Response(MembershipSerializer(_memberships().get(pk=membership.pk)).data, status=201)


class AccountDeactivateView(PortalView):
    gate = "accounts_request"

    @extend_schema(request=AccountDeactivateSerializer, responses={204: None})
    def post(self, request: Request, username: str) -> Response:
        self.note.action, self.note.resource_kind = "account.deactivate", "account"
        self.note.requested_id = username[:100]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise NotFound(NOT_FOUND)
        form = AccountDeactivateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        done = _answer(
            lambda: services.account_deactivate(user=user, by=self.user, reason=form.validated_data["reason"])
        )
        if isinstance(done, Response):
            return done
        return Response(status=status.HTTP_204_NO_CONTENT)


class CredentialResetListView(_ListView):
    kind = "credential_reset"
    statuses = CredentialReset.Status.values

    @extend_schema(parameters=[*CURSOR_PARAMS], responses=paginated(CredentialResetSerializer))
    def get(self, request: Request) -> Response:
        return self.listing(request, _resets(), CredentialResetSerializer)

    @extend_schema(request=CredentialResetRequestSerializer, responses={201: CredentialResetSerializer})
    def post(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "credential_reset.request", "credential_reset"
        form = CredentialResetRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = _account(form.validated_data["user"])
        self.note.requested_id = user.get_username()
        made = _answer(
            lambda: services.credential_reset_request(
                requester=self.user, user=user, reason=form.validated_data["reason"]
            )
        )
        if isinstance(made, Response):
            return made
        return Response(CredentialResetSerializer(_resets().get(pk=made.pk)).data, status=201)


@extend_schema_view(
    post=extend_schema(request=GrantDecisionSerializer, responses=CredentialResetIssuedSerializer)
)
class CredentialResetApproveView(_DecisionView):
    kind, model, verb = "credential_reset", CredentialReset, "approve"

    def post(self, request: Request, reset_id: str) -> Response:
        reset = self.target(reset_id)
        form = GrantDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        note = form.validated_data.get("note", "")
        done = _answer(lambda: services.credential_reset_approve(reset=reset, approver=self.user, note=note))
        if isinstance(done, Response):
            return done
        reset, secret = done
        body = dict(CredentialResetSerializer(_resets().get(pk=reset.pk)).data)
        # The secret rides in the query string, which the audit trail never stores (`token` is a secret
        # parameter), rather than in the path, which it does.
        body["enrolment_url"] = request.build_absolute_uri(f"{reverse('web:enrol')}?token={secret}")
        return Response(body)


@extend_schema_view(post=extend_schema(request=GrantDecisionSerializer, responses=CredentialResetSerializer))
class CredentialResetRejectView(_DecisionView):
    kind, model, verb = "credential_reset", CredentialReset, "reject"

    def post(self, request: Request, reset_id: str) -> Response:
        reset = self.target(reset_id)
        form = GrantDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        note = form.validated_data.get("note", "")
        done = _answer(lambda: services.credential_reset_reject(reset=reset, approver=self.user, note=note))
        if isinstance(done, Response):
            return done
        return Response(CredentialResetSerializer(_resets().get(pk=done.pk)).data)
