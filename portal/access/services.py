"""The grant workflow (SPEC §3): request, four-eyes approval, rejection, revocation, expiry, and keeping
guardian's tables equal to what the approved, unexpired grants imply.

Every state change writes its audit event in its own transaction (audit.recorder.record_decision): if the
event cannot be written, AuditWriteError propagates and the change is rolled back with it, whoever called
(a view, a shell, a task, seed_demo)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.recorder import record_decision
from portal.access.models import (
    CONSUMER_PERMISSIONS,
    SEGMENT_PERMISSIONS,
    AccessGrant,
    ConsumerGroupObjectPermission,
    ConsumerUserObjectPermission,
    Permission,
    SegmentGroupObjectPermission,
    SegmentUserObjectPermission,
)
from portal.accounts.models import Organisation, User
from portal.records.models import Consumer, Segment

MAX_GRANT_LENGTH = timedelta(days=365)
# A request may start a little in the past (clock skew between client and server), never more.
START_TOLERANCE = timedelta(minutes=5)

Role = User.Role


class GrantError(Exception):
    """A grant action refused; `field` names the input at fault (or "non_field_errors")."""

    def __init__(self, field: str, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.field, self.message, self.code = field, message, code


class GrantConflict(GrantError):
    """The grant is not in a state that allows the action."""


def grant_request(
    *,
    requester: User,
    permissions: Iterable[str],
    purpose: str,
    legal_basis: str,
    case_reference: str,
    valid_until: datetime,
    valid_from: datetime | None = None,
    segment: Segment | None = None,
    consumer: Consumer | None = None,
    grantee_organisation: Organisation | None = None,
    for_requester_only: bool = False,
) -> AccessGrant:
    """A regulator asks for access for their organisation (or only themselves); compliance asks on behalf of a
    state shareholder. Nothing is granted until another compliance officer approves."""
    if (segment is None) == (consumer is None):
        raise GrantError("target", "Name exactly one target: a segment or a consumer.")
    valid_from = valid_from or timezone.now()
    wanted, grantee_organisation, grantee_user = grant_request_check(
        requester=requester,
        permissions=permissions,
        purpose=purpose,
        legal_basis=legal_basis,
        case_reference=case_reference,
        valid_from=valid_from,
        valid_until=valid_until,
        target_kind="segment" if segment is not None else "consumer",
        grantee_organisation=grantee_organisation,
        for_requester_only=for_requester_only,
    )
    with transaction.atomic():
        grant = AccessGrant.objects.create(
            grantee_organisation=grantee_organisation,
            grantee_user=grantee_user,
            segment=segment,
            consumer=consumer,
            permissions=wanted,
            purpose=purpose.strip(),
            legal_basis=legal_basis.strip(),
            case_reference=case_reference.strip(),
            valid_from=valid_from,
            valid_until=valid_until,
            requested_by=requester,
        )
        _record(grant, requester, "grant.requested", requested=True)
    return grant


def _record(grant: AccessGrant, actor: User | None, action: str, *, requested: bool = False, **detail: Any):
    """The grant's decision event, in the caller's transaction. A request's event describes the whole
    grant (its target, holder, permissions and period), so that the trail alone tells what was asked."""
    if requested:
        target = (
            f"segment:{grant.segment_id}"
            if grant.segment_id is not None
            else f"consumer:{grant.consumer.public_id if grant.consumer else ''}"
        )
        holder = (
            f"user:{grant.grantee_user.username}"
            if grant.grantee_user is not None
            else f"organisation:{grant.grantee_organisation.short_name if grant.grantee_organisation else ''}"
        )
        detail = {
            "target": target,
            "grantee": holder,
            "permissions": list(grant.permissions),
            "legal_basis": grant.legal_basis,
            "case_reference": grant.case_reference,
            "valid_from": timezone.localtime(grant.valid_from).isoformat(),
            "valid_until": timezone.localtime(grant.valid_until).isoformat(),
            **detail,
        }
    record_decision(
        actor=actor, action=action, resource_kind="grant", resource_id=grant.pk, grant=grant, detail=detail
    )


def grant_request_check(
    *,
    requester: User,
    permissions: Iterable[str],
    purpose: str,
    legal_basis: str,
    case_reference: str,
    valid_from: datetime,
    valid_until: datetime,
    target_kind: str,
    grantee_organisation: Organisation | None,
    for_requester_only: bool,
) -> tuple[list[str], Organisation | None, User | None]:
    """Every rule of a request but the target's existence: (permissions, grantee organisation, grantee user).

    Checked before the target is looked up, so that the answer to a request cannot tell whether a consumer
    exists without the request being complete enough to be recorded.
    """
    now = timezone.now()
    wanted = sorted(set(permissions))
    segment_target = target_kind == "segment"
    if not wanted:
        raise GrantError("permissions", "Ask for at least one permission.")
    allowed = SEGMENT_PERMISSIONS if segment_target else CONSUMER_PERMISSIONS
    unknown = [p for p in wanted if p not in allowed]
    if unknown:
        kind = "a segment" if segment_target else "a consumer"
        raise GrantError("permissions", f"Not a permission on {kind}: {', '.join(unknown)}.")
    for field, value in (
        ("purpose", purpose),
        ("legal_basis", legal_basis),
        ("case_reference", case_reference),
    ):
        if not value or not value.strip():
            raise GrantError(field, "This field is required.")
    if valid_from < now - START_TOLERANCE:
        raise GrantError("valid_from", "A grant cannot start in the past.")
    if valid_from > now + MAX_GRANT_LENGTH:
        # Without this a far-off start with an end close behind it passes the length cap.
        raise GrantError("valid_from", "A grant may start at most one year ahead.")
    if valid_until <= valid_from:
        raise GrantError("valid_until", "The end must come after the start.")
    if valid_until - valid_from > MAX_GRANT_LENGTH:
        raise GrantError("valid_until", "A grant may last at most one year.")

    grantee_user: User | None = None
    if not requester.membership_in_force:
        # An account nobody approved yet (or one that ended) asks for nothing, whatever its role says.
        raise GrantError("non_field_errors", "This account's membership is not in force.", code="forbidden")
    if requester.role == Role.REGULATOR:
        if grantee_organisation is not None and grantee_organisation.pk != requester.organisation_id:
            raise GrantError(
                "grantee_organisation", "A regulator requests access for their own organisation."
            )
        if for_requester_only:
            grantee_user, grantee_organisation = requester, None
        else:
            grantee_organisation = requester.organisation
    elif requester.role == Role.COMPLIANCE:
        if grantee_organisation is None or grantee_organisation.kind != Organisation.Kind.SHAREHOLDER:
            raise GrantError(
                "grantee_organisation", "Compliance requests access on behalf of a state shareholder."
            )
        if for_requester_only:
            raise GrantError("for_requester_only", "A shareholder's grant goes to the organisation.")
    else:
        raise GrantError("non_field_errors", "This role cannot request access.", code="forbidden")
    shareholder = (
        grantee_organisation is not None and grantee_organisation.kind == Organisation.Kind.SHAREHOLDER
    )
    # Shareholders never see personal data, masked or not (SPEC §1).
    if shareholder and (wanted != [Permission.VIEW_AGGREGATES] or not segment_target):
        raise GrantError("permissions", "A state shareholder may only be granted aggregates of a segment.")
    return wanted, grantee_organisation, grantee_user


def _locked(grant: AccessGrant) -> AccessGrant:
    # FOR UPDATE OF the grant alone: the organisation is joined (nullable side) only to be read.
    return (
        AccessGrant.objects.select_for_update(of=("self",))
        .select_related("grantee_organisation")
        .get(pk=grant.pk)
    )


def _require_compliance(user: User) -> None:
    # A compliance account decides only once another officer approved its membership (SPEC §3).
    if user.role != Role.COMPLIANCE or not user.membership_in_force:
        raise GrantError("non_field_errors", "Only a compliance officer decides on grants.", code="forbidden")


@transaction.atomic
def grant_approve(*, grant: AccessGrant, approver: User, note: str = "") -> AccessGrant:
    _require_compliance(approver)
    grant = _locked(grant)
    if grant.requested_by_id == approver.pk:
        raise GrantError(
            "non_field_errors", "Four eyes: the requester cannot approve their own grant.", code="four_eyes"
        )
    if grant.status != AccessGrant.Status.REQUESTED:
        raise GrantConflict("status", f"Only a requested grant can be approved; this one is {grant.status}.")
    now = timezone.now()
    if grant.valid_until <= now:
        raise GrantConflict("valid_until", "This grant's end has passed; it can only be rejected.")
    grant.status = AccessGrant.Status.APPROVED
    grant.decided_by, grant.decided_at, grant.decision_note = approver, now, note
    grant.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _sync_target(grant)
    _record(grant, approver, "grant.approved", note=note)
    return grant


@transaction.atomic
def grant_reject(*, grant: AccessGrant, approver: User, note: str = "") -> AccessGrant:
    _require_compliance(approver)
    grant = _locked(grant)
    if grant.requested_by_id == approver.pk:
        raise GrantError(
            "non_field_errors", "Four eyes: the requester cannot decide on their own grant.", code="four_eyes"
        )
    if grant.status != AccessGrant.Status.REQUESTED:
        raise GrantConflict("status", f"Only a requested grant can be rejected; this one is {grant.status}.")
    grant.status = AccessGrant.Status.REJECTED
    grant.decided_by, grant.decided_at, grant.decision_note = approver, timezone.now(), note
    grant.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _record(grant, approver, "grant.rejected", note=note)
    return grant


@transaction.atomic
def grant_revoke(*, grant: AccessGrant, revoker: User, reason: str) -> AccessGrant:
    _require_compliance(revoker)
    if not reason or not reason.strip():
        raise GrantError("reason", "Say why the grant is revoked.")
    grant = _locked(grant)
    if grant.requested_by_id == revoker.pk:
        raise GrantError(
            "non_field_errors", "Four eyes: the requester cannot decide on their own grant.", code="four_eyes"
        )
    if grant.status != AccessGrant.Status.APPROVED:
        raise GrantConflict("status", f"Only an approved grant can be revoked; this one is {grant.status}.")
    grant.status = AccessGrant.Status.REVOKED
    grant.revoked_by, grant.revoked_at, grant.revocation_reason = revoker, timezone.now(), reason.strip()
    grant.save(update_fields=["status", "revoked_by", "revoked_at", "revocation_reason"])
    _sync_target(grant)
    _record(grant, revoker, "grant.revoked", reason=grant.revocation_reason)
    from portal.access.exports import exports_discard

    # Its exports' files go with it (clear personal data must not outlive the grant it was exported under).
    exports_discard(grant_id=grant.pk)
    return grant


@transaction.atomic
def grants_expire(*, now: datetime | None = None) -> int:
    """Mark approved grants whose end has passed as expired, drop what they assigned, and record one
    `grant.expire` event per grant ended (its id and purpose), all in one transaction. Idempotent: returns
    how many grants this call ended."""
    now = now or timezone.now()
    expired = list(
        AccessGrant.objects.select_for_update(of=("self",))
        .filter(status=AccessGrant.Status.APPROVED, valid_until__lte=now)
        .select_related("grantee_organisation")
        .order_by("pk")
    )
    if expired:
        AccessGrant.objects.filter(pk__in=[g.pk for g in expired]).update(status=AccessGrant.Status.EXPIRED)
        permissions_reconcile(now=now)
        for grant in expired:
            grant.status = AccessGrant.Status.EXPIRED
            _record(
                grant, None, "grant.expire", valid_until=timezone.localtime(grant.valid_until).isoformat()
            )
    return len(expired)


# --- Guardian's tables ----------------------------------------------------------------------------------
Row = tuple[str, int, int, int]  # (table key, holder id, permission id, object id)
TABLES: dict[str, tuple[Any, str]] = {
    "segment_user": (SegmentUserObjectPermission, "user_id"),
    "segment_group": (SegmentGroupObjectPermission, "group_id"),
    "consumer_user": (ConsumerUserObjectPermission, "user_id"),
    "consumer_group": (ConsumerGroupObjectPermission, "group_id"),
}


def _permission_ids() -> dict[tuple[str, str], int]:
    """(model, codename) -> auth Permission id, for the object permissions of Segment and Consumer."""
    types = ContentType.objects.get_for_models(Segment, Consumer)
    rows = AuthPermission.objects.filter(
        content_type__in=types.values(), codename__in=[p.value for p in Permission]
    ).values_list("content_type_id", "codename", "pk")
    names = {ct.pk: str(model._meta.model_name) for model, ct in types.items()}
    return {(names[ct], codename): pk for ct, codename, pk in rows}


def _holder(grant: AccessGrant) -> tuple[str, int]:
    """("user", user id) for a personal grant, ("group", the organisation's group id) otherwise."""
    if grant.grantee_user_id is not None:
        return "user", grant.grantee_user_id
    if grant.grantee_organisation is None:
        raise ValueError(f"grant {grant.pk} has no grantee")
    return "group", grant.grantee_organisation.group_id


def _target(grant: AccessGrant) -> tuple[str, int]:
    if grant.segment_id is not None:
        return "segment", grant.segment_id
    if grant.consumer_id is None:
        raise ValueError(f"grant {grant.pk} has no target")
    return "consumer", grant.consumer_id


def _desired_rows(grants: Iterable[AccessGrant], permission_ids: dict[tuple[str, str], int]) -> set[Row]:
    rows: set[Row] = set()
    for grant in grants:
        model, target = _target(grant)
        holder_kind, holder = _holder(grant)
        for codename in grant.permissions:
            rows.add((f"{model}_{holder_kind}", holder, permission_ids[(model, codename)], target))
    return rows


def _existing_rows(filters: dict[str, dict]) -> dict[Row, int]:
    existing: dict[Row, int] = {}
    for key, (model, holder_field) in TABLES.items():
        if key not in filters:
            continue
        for pk, holder, permission, target in model.objects.filter(**filters[key]).values_list(
            "pk", holder_field, "permission_id", "content_object_id"
        ):
            existing[(key, holder, permission, target)] = pk
    return existing


def _apply(desired: set[Row], existing: dict[Row, int]) -> tuple[int, int]:
    missing = desired - existing.keys()
    extra = [pk_row for pk_row in existing.items() if pk_row[0] not in desired]
    for key, (model, holder_field) in TABLES.items():
        stale = [pk for row, pk in extra if row[0] == key]
        if stale:
            model.objects.filter(pk__in=stale).delete()
        new = [
            model(**{holder_field: holder, "permission_id": permission, "content_object_id": target})
            for row_key, holder, permission, target in missing
            if row_key == key
        ]
        if new:
            model.objects.bulk_create(new)
    return len(missing), len(extra)


def _active_grants():
    return AccessGrant.objects.filter(status=AccessGrant.Status.APPROVED).select_related(
        "grantee_organisation"
    )


def _sync_target(grant: AccessGrant) -> None:
    """Make guardian's rows for this grant's holder and object equal what the approved grants imply.

    Two grants may assign the same permission; revoking one must leave the row the other still needs.
    """
    model, target = _target(grant)
    holder_kind, holder = _holder(grant)
    same_holder = (
        Q(grantee_user_id=holder) if holder_kind == "user" else Q(grantee_organisation__group_id=holder)
    )
    desired = _desired_rows(
        _active_grants().filter(same_holder, **{f"{model}_id": target}), _permission_ids()
    )
    holder_field = "user_id" if holder_kind == "user" else "group_id"
    existing = _existing_rows({f"{model}_{holder_kind}": {holder_field: holder, "content_object_id": target}})
    _apply(desired, existing)


@transaction.atomic
def permissions_reconcile(*, now: datetime | None = None) -> tuple[int, int]:
    """Rebuild guardian's object-permission rows from the approved grants: add what is missing, remove what
    no approved grant implies. Returns (added, removed). Idempotent; leaves other permissions' rows alone."""
    permission_ids = _permission_ids()
    desired = _desired_rows(_active_grants(), permission_ids)
    ours = {"permission_id__in": list(permission_ids.values())}
    existing = _existing_rows({key: ours for key in TABLES})
    return _apply(desired, existing)
