"""The base of every API view: role gate, the caller's scope (narrowed by X-Access-Grant), the audit note."""

from __future__ import annotations

from typing import Any, NoReturn, cast

from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.recorder import AuditNote, note_for
from portal.access import policy
from portal.access.models import AccessGrant, Permission
from portal.accounts.models import User
from portal.api.params import bad, is_id
from portal.api.permissions import RoleGate
from portal.api.throttles import UserDataThrottle
from portal.records.models import Segment

GRANT_HEADER = "X-Access-Grant"
NOT_FOUND = "Not found."


class PortalView(APIView):
    permission_classes = [IsAuthenticated, RoleGate]
    throttle_classes = [UserDataThrottle]
    gate: str | None = None
    action = ""  # the audit action; the URL name when empty

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        note = note_for(request)
        note.action = self.action or note.action
        # Authenticate first: DRF negotiates the content type before it authenticates, so a refused Accept
        # header (406) would otherwise be recorded without its actor. A bad credential still answers 401.
        self.perform_authentication(request)
        super().initial(request, *args, **kwargs)

    def throttled(self, request: Request, wait: float) -> NoReturn:
        note = self.note
        note.action = "api.throttled"
        note.outcome = AuditEvent.Outcome.DENIED
        super().throttled(request, wait)

    @property
    def user(self) -> User:
        """The caller; every gated view has authenticated them before its handler runs."""
        return cast(User, self.request.user)

    @property
    def note(self) -> AuditNote:
        return note_for(self.request)

    def scope(self) -> policy.Scope:
        """The caller's scope, once per request; X-Access-Grant narrows it to the grant named."""
        cached = getattr(self.request, "_portal_scope", None)
        if cached is not None:
            return cached
        raw = self.request.headers.get(GRANT_HEADER)
        grant_id = None
        if raw is not None:
            if not is_id(raw):
                raise bad(GRANT_HEADER, "Not a grant id.")
            grant_id = int(raw)
        try:
            scope = policy.scope_for(self.user, grant_id=grant_id)
        except policy.InvalidGrant:
            raise bad(GRANT_HEADER, "Not a valid grant of yours at this moment.") from None
        self.request._portal_scope = scope  # type: ignore[attr-defined]
        return scope

    def attribute(self, grant: AccessGrant | None) -> None:
        if grant is not None:
            self.note.grant_id, self.note.purpose = grant.pk, grant.purpose

    def consumer_access(self, public_id: str, permission: str = policy.RECORDS) -> policy.ConsumerAccess:
        """The consumer in the path, or the same 404 for unknown, malformed and out-of-scope ids."""
        self.note.resource_kind = "consumer"
        self.note.requested_id = public_id[:100]
        try:
            access = policy.consumer_access(self.scope(), public_id, permission)
        except policy.NotVisible:
            raise NotFound(NOT_FOUND) from None
        self.attribute(access.grant)
        return access

    def aggregate_segment(self, segment_id: str) -> Segment:
        """The segment in the path, if the caller holds view_aggregates on it, else the same 404 for unknown,
        malformed and out-of-scope ids; the access is attributed to the covering grant."""
        self.note.resource_kind, self.note.requested_id = "segment", segment_id[:100]
        scope = self.scope()
        if not is_id(segment_id) or Permission.VIEW_AGGREGATES not in scope.segment_permissions(
            int(segment_id)
        ):
            raise NotFound(NOT_FOUND)
        segment = Segment.objects.get(pk=int(segment_id))
        self.attribute(scope.grant_for_segment(segment.pk, Permission.VIEW_AGGREGATES))
        return segment
