"""Memberships and credentials (SPEC §3): no one alone gives an account its organisation, role, password or
second factor.

- A membership (organisation and role) is requested by an administrator or a compliance officer and takes
  effect when a compliance officer whose own membership is in force, and who is neither the requester nor the
  account, approves it. Compliance officers decide because a membership hands the account its organisation's
  grants: it weighs as much as a grant, which they already decide with four eyes; administrators run
  accounts but never decide alone, and a compliance account made by anyone decides nothing until an existing
  officer approved it.
- Deactivation is immediate and needs one person: closing a door is never the risk.
- A lost password or second factor is a reset request, approved the same way; approval revokes the
  account's tokens, sessions and devices and yields a single-use, expiring enrolment link.

Every step writes its audit event in the same transaction as the change: if the event cannot be written,
nothing changes (the recorder raises AuditWriteError).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import recorder
from audit.models import AuditEvent
from portal.accounts.models import ApiToken, CredentialReset, Membership, Organisation, Role, User

ENROLMENT_PREFIX = "enr_"


class AccountError(Exception):
    """A membership or credential action refused; `field` names the input at fault (or "non_field_errors");
    `code`: "forbidden" or "four_eyes" for who may not act, "conflict" for a state that does not allow it."""

    def __init__(self, field: str, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.field, self.message, self.code = field, message, code


def _event(*, actor: User | None, action: str, kind: str, obj: Any, subject: User, **extra: Any) -> None:
    """The step's event, inside the caller's transaction: it commits with the change, or neither does."""
    recorder.record(
        actor=actor,
        action=action,
        outcome=AuditEvent.Outcome.ALLOWED,
        resource_kind=kind,
        requested_id=f"{obj.pk}:{subject.get_username()}",
        **extra,
    )


def _fail(field: str, message: str, code: str = "invalid") -> AccountError:
    return AccountError(field, message, code=code)


def _require_requester(user: User) -> None:
    if not user.is_active:
        raise _fail("non_field_errors", "An inactive account requests nothing.", "forbidden")
    if user.is_superuser and user.role == Role.ADMIN:
        return
    if user.role in (Role.ADMIN, Role.COMPLIANCE) and user.membership_in_force:
        return
    raise _fail(
        "non_field_errors", "Only an administrator or a compliance officer requests this.", "forbidden"
    )


def _require_approver(*, approver: User, requester_id: int | None, subject: User) -> None:
    if approver.role != Role.COMPLIANCE or not approver.membership_in_force:
        raise _fail(
            "non_field_errors", "Only a compliance officer whose membership is in force decides.", "forbidden"
        )
    if approver.pk == requester_id:
        raise _fail(
            "non_field_errors", "Four eyes: the requester cannot decide on their own request.", "four_eyes"
        )
    if approver.pk == subject.pk:
        raise _fail("non_field_errors", "Four eyes: nobody decides on their own account.", "four_eyes")


def _check_placement(role: str, organisation: Organisation | None) -> None:
    if role not in Role.values:
        raise _fail("role", f"Not a role: {role}.")
    if organisation is None:
        if role != Role.ADMIN:
            raise _fail("organisation", "Every user but an administrator needs an organisation.")
        return
    if organisation.kind not in User.ROLE_ORGANISATION_KINDS[Role(role)]:
        raise _fail("role", "This role does not belong to an organisation of that kind.")


def _reason(reason: str, field: str = "reason") -> str:
    if not reason or not reason.strip():
        raise _fail(field, "Say why.")
    return reason.strip()


# --- Accounts and memberships ---------------------------------------------------------------------------
@transaction.atomic
def account_create(
    *,
    requester: User,
    username: str,
    email: str,
    role: str,
    organisation: Organisation | None,
    reason: str,
    first_name: str = "",
    last_name: str = "",
) -> tuple[User, Membership]:
    """A new account and the request for its membership. The account has no password (its owner sets one
    through a credential reset's link once the membership is approved) and no scope until then."""
    _require_requester(requester)
    reason = _reason(reason)
    _check_placement(role, organisation)
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        role=role,
        organisation=organisation,
    )
    user.set_unusable_password()
    try:
        user.full_clean()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise _fail(field, " ".join(messages)) from None
    user.save()
    membership = Membership.objects.create(
        user=user, organisation=organisation, role=role, reason=reason, requested_by=requester
    )
    _event(actor=requester, action="account.create", kind="account", obj=user, subject=user)
    _event(actor=requester, action="membership.request", kind="membership", obj=membership, subject=user)
    return user, membership


@transaction.atomic
def membership_request(
    *, requester: User, user: User, role: str, organisation: Organisation | None, reason: str
) -> Membership:
    """Ask for `user` to hold `role` in `organisation`: a first membership, a move, a new role, or the return
    of a deactivated account. Nothing changes until a second person approves."""
    _require_requester(requester)
    reason = _reason(reason)
    _check_placement(role, organisation)
    user = User.objects.select_for_update().get(pk=user.pk)
    if Membership.objects.filter(user=user, status=Membership.Status.REQUESTED).exists():
        raise _fail("user", "This account already has a membership request waiting.", "conflict")
    if (
        user.is_active
        and user.membership_in_force
        and (user.role, user.organisation_id)
        == (
            role,
            organisation.pk if organisation else None,
        )
    ):
        raise _fail("role", "This account already holds this membership.", "conflict")
    membership = Membership.objects.create(
        user=user, organisation=organisation, role=role, reason=reason, requested_by=requester
    )
    _event(actor=requester, action="membership.request", kind="membership", obj=membership, subject=user)
    return membership


def _locked_membership(membership: Membership) -> Membership:
    return (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "organisation")
        .get(pk=membership.pk)
    )


@transaction.atomic
def membership_approve(*, membership: Membership, approver: User, note: str = "") -> Membership:
    """Put the membership in force: the account takes its organisation and role (and is active again), and
    the membership it held before ends."""
    membership = _locked_membership(membership)
    user = User.objects.select_for_update().get(pk=membership.user_id)
    _require_approver(approver=approver, requester_id=membership.requested_by_id, subject=user)
    if membership.status != Membership.Status.REQUESTED:
        raise _fail(
            "status",
            f"Only a requested membership can be approved; this one is {membership.status}.",
            "conflict",
        )
    _approve(membership, user, approver=approver, note=note)
    _event(actor=approver, action="membership.approve", kind="membership", obj=membership, subject=user)
    return membership


def _approve(membership: Membership, user: User, *, approver: User, note: str) -> None:
    now = timezone.now()
    Membership.objects.filter(user=user, status=Membership.Status.APPROVED).update(
        status=Membership.Status.ENDED,
        ended_by=approver,
        ended_at=now,
        end_reason="Superseded by a new membership.",
    )
    membership.status = Membership.Status.APPROVED
    membership.decided_by, membership.decided_at, membership.decision_note = approver, now, note
    membership.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    user.organisation, user.role, user.is_active = membership.organisation, membership.role, True
    # The admin console is the administrators' (and only theirs), from the approval of that role on.
    user.is_staff = membership.role == Role.ADMIN
    user.save(update_fields=["organisation", "role", "is_active", "is_staff"])


@transaction.atomic
def membership_reject(*, membership: Membership, approver: User, note: str = "") -> Membership:
    membership = _locked_membership(membership)
    _require_approver(approver=approver, requester_id=membership.requested_by_id, subject=membership.user)
    if membership.status != Membership.Status.REQUESTED:
        raise _fail(
            "status",
            f"Only a requested membership can be rejected; this one is {membership.status}.",
            "conflict",
        )
    membership.status = Membership.Status.REJECTED
    membership.decided_by, membership.decided_at, membership.decision_note = approver, timezone.now(), note
    membership.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _event(
        actor=approver, action="membership.reject", kind="membership", obj=membership, subject=membership.user
    )
    return membership


@transaction.atomic
def account_deactivate(*, user: User, by: User, reason: str) -> User:
    """Immediate, and one person is enough: the account stops at once (tokens revoked, sessions refused), its
    membership ends and any waiting request with it. Only a newly approved membership brings it back."""
    _require_requester(by)
    reason = _reason(reason)
    user = User.objects.select_for_update().get(pk=user.pk)
    if by.pk == user.pk:
        raise _fail("user", "Ask someone else to deactivate your own account.", "forbidden")
    if not user.is_active:
        raise _fail("user", "This account is already inactive.", "conflict")
    now = timezone.now()
    Membership.objects.filter(
        user=user, status__in=[Membership.Status.APPROVED, Membership.Status.REQUESTED]
    ).update(status=Membership.Status.ENDED, ended_by=by, ended_at=now, end_reason=reason)
    CredentialReset.objects.filter(
        user=user, status__in=[CredentialReset.Status.REQUESTED, CredentialReset.Status.APPROVED]
    ).update(status=CredentialReset.Status.REJECTED, decided_by=by, decided_at=now, decision_note=reason)
    user.is_active = False
    user.save(update_fields=["is_active"])
    _revoke_tokens(user, now)
    _event(actor=by, action="account.deactivate", kind="account", obj=user, subject=user)
    return user


@transaction.atomic
def memberships_bootstrap(*, first: User, second: User, reason: str) -> list[Membership]:
    """The first two compliance officers of a fresh installation, while no compliance membership is in force
    anywhere: each one's membership is requested by themselves and approved by the other. Refused as soon as
    any compliance officer is in force: from then on, officers are approved by officers."""
    reason = _reason(reason)
    if Membership.objects.filter(status=Membership.Status.APPROVED, role=Role.COMPLIANCE).exists():
        raise _fail("non_field_errors", "A compliance officer is in force: ask them to approve.", "conflict")
    if first.pk == second.pk:
        raise _fail("second", "Two different people.", "four_eyes")
    made = []
    for subject, approver in ((first, second), (second, first)):
        subject = User.objects.select_for_update().get(pk=subject.pk)
        if subject.role != Role.COMPLIANCE or not subject.is_active:
            raise _fail("user", f"{subject.get_username()} is not an active compliance account.")
        _check_placement(subject.role, subject.organisation)
        Membership.objects.filter(user=subject, status=Membership.Status.REQUESTED).update(
            status=Membership.Status.ENDED, ended_at=timezone.now(), end_reason="Replaced by the bootstrap."
        )
        membership = Membership.objects.create(
            user=subject,
            organisation=subject.organisation,
            role=subject.role,
            reason=reason,
            requested_by=subject,
        )
        _event(actor=subject, action="membership.request", kind="membership", obj=membership, subject=subject)
        made.append((membership, subject, approver))
    for membership, subject, approver in made:
        _approve(
            membership, subject, approver=approver, note="Bootstrap of the first two compliance officers."
        )
        _event(
            actor=approver, action="membership.approve", kind="membership", obj=membership, subject=subject
        )
    return [m for m, _s, _a in made]


# --- Credential resets ----------------------------------------------------------------------------------
def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _revoke_tokens(user: User, now: Any) -> int:
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)


@transaction.atomic
def credential_reset_request(*, requester: User, user: User, reason: str) -> CredentialReset:
    """Ask for a new password and second factor for `user` (who lost one). Nothing changes until approved."""
    _require_requester(requester)
    reason = _reason(reason)
    if not user.is_active:
        raise _fail("user", "An inactive account gets no credentials.", "conflict")
    if CredentialReset.objects.filter(user=user, status=CredentialReset.Status.REQUESTED).exists():
        raise _fail("user", "This account already has a reset request waiting.", "conflict")
    reset = CredentialReset.objects.create(user=user, reason=reason, requested_by=requester)
    _event(
        actor=requester, action="credential_reset.request", kind="credential_reset", obj=reset, subject=user
    )
    return reset


def _locked_reset(reset: CredentialReset) -> CredentialReset:
    return CredentialReset.objects.select_for_update(of=("self",)).select_related("user").get(pk=reset.pk)


@transaction.atomic
def credential_reset_approve(
    *, reset: CredentialReset, approver: User, note: str = ""
) -> tuple[CredentialReset, str]:
    """Revoke the account's credentials (password, API tokens, every session, every second-factor device)
    and issue the enrolment link's secret, returned once: only its hash is kept."""
    reset = _locked_reset(reset)
    user = User.objects.select_for_update().get(pk=reset.user_id)
    _require_approver(approver=approver, requester_id=reset.requested_by_id, subject=user)
    if reset.status != CredentialReset.Status.REQUESTED:
        raise _fail(
            "status", f"Only a requested reset can be approved; this one is {reset.status}.", "conflict"
        )
    if not user.is_active:
        raise _fail("user", "An inactive account gets no credentials.", "conflict")
    now = timezone.now()
    # Earlier links of the account stop working: one link at a time.
    CredentialReset.objects.filter(user=user, status=CredentialReset.Status.APPROVED).update(
        status=CredentialReset.Status.REJECTED, decision_note="Superseded by a newer reset."
    )
    secret = ENROLMENT_PREFIX + secrets.token_urlsafe(32)
    reset.status = CredentialReset.Status.APPROVED
    reset.decided_by, reset.decided_at, reset.decision_note = approver, now, note
    reset.token_hash = _digest(secret)
    reset.expires_at = now + timedelta(seconds=settings.CREDENTIAL_RESET_TTL_SECONDS)
    reset.save(
        update_fields=["status", "decided_by", "decided_at", "decision_note", "token_hash", "expires_at"]
    )
    # An unusable password changes the session auth hash: every session and token issued before fails its
    # check (django.contrib.auth, accounts.tokens) even before the rows below are touched.
    user.set_unusable_password()
    user.save(update_fields=["password"])
    _revoke_tokens(user, now)
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    _delete_sessions(user)
    _event(
        actor=approver, action="credential_reset.approve", kind="credential_reset", obj=reset, subject=user
    )
    return reset, secret


def _delete_sessions(user: User) -> None:
    """Delete the account's stored sessions (database sessions; a cache backend's die by the hash check)."""
    if settings.SESSION_ENGINE not in (
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
    ):
        return
    stale = [
        s.session_key
        for s in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if s.get_decoded().get(SESSION_KEY) == str(user.pk)
    ]
    Session.objects.filter(session_key__in=stale).delete()


@transaction.atomic
def credential_reset_reject(*, reset: CredentialReset, approver: User, note: str = "") -> CredentialReset:
    reset = _locked_reset(reset)
    _require_approver(approver=approver, requester_id=reset.requested_by_id, subject=reset.user)
    if reset.status != CredentialReset.Status.REQUESTED:
        raise _fail(
            "status", f"Only a requested reset can be rejected; this one is {reset.status}.", "conflict"
        )
    reset.status = CredentialReset.Status.REJECTED
    reset.decided_by, reset.decided_at, reset.decision_note = approver, timezone.now(), note
    reset.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _event(
        actor=approver,
        action="credential_reset.reject",
        kind="credential_reset",
        obj=reset,
        subject=reset.user,
    )
    return reset


def credential_reset_for_link(secret: str) -> CredentialReset | None:
    """The approved, unused, unexpired reset whose link carries `secret`, or None (for any other secret)."""
    if not secret.startswith(ENROLMENT_PREFIX) or len(secret) > 100:
        return None
    reset = (
        CredentialReset.objects.select_related("user")
        .filter(token_hash=_digest(secret), status=CredentialReset.Status.APPROVED, used_at__isnull=True)
        .first()
    )
    if (
        reset is None
        or reset.expires_at is None
        or reset.expires_at <= timezone.now()
        or not reset.user.is_active
    ):
        return None
    return reset


@transaction.atomic
def credential_reset_redeem(*, secret: str, password: str) -> User:
    """Use the link once: set the account's new password. The owner then enrols a new second factor (the
    enrolment pages, to which a session without one is kept when MFA is required)."""
    found = credential_reset_for_link(secret)
    if found is None:
        raise _fail("token", "This link is unknown, used or expired.", "gone")
    reset = _locked_reset(found)
    if reset.status != CredentialReset.Status.APPROVED or reset.used_at is not None:
        raise _fail("token", "This link is unknown, used or expired.", "gone")
    user = User.objects.select_for_update().get(pk=reset.user_id)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise _fail("password", " ".join(error.messages)) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    reset.status, reset.used_at = CredentialReset.Status.USED, timezone.now()
    reset.save(update_fields=["status", "used_at"])
    _event(actor=user, action="credential_reset.redeem", kind="credential_reset", obj=reset, subject=user)
    return user
