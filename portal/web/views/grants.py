"""The grant workflow on screens: regulators request access and follow their requests; compliance requests
on behalf of a state shareholder, approves or rejects others' requests (four eyes) and revokes grants;
auditors and administrators read every grant."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_POST

from audit.models import AuditEvent
from portal.access import services
from portal.access.models import AccessGrant
from portal.access.selectors import grants_for
from portal.accounts.models import Role, User
from portal.records.models import Consumer
from portal.web import pages
from portal.web.forms import DecisionForm, GrantRequestForm, RejectForm, RevokeForm
from portal.web.paging import Keyset, SortedList

LIST_ROWS = 100
# The decided, ended and expired grants grow without end: sorted, filtered by status, counted and paged.
CLOSED_LIST = SortedList(
    {
        "-pk": Keyset("-pk"),
        "pk": Keyset("pk"),
        "valid_until": Keyset("valid_until", "pk"),
        "-valid_until": Keyset("-valid_until", "-pk"),
    },
    default="-pk",
)

# The grant service's refusals, so that their translations are in the catalogue.
SERVICE_MESSAGES = (
    gettext_noop("Four eyes: the requester cannot approve their own grant."),
    gettext_noop("Four eyes: the requester cannot decide on their own grant."),
    gettext_noop("This grant's end has passed; it can only be rejected."),
    gettext_noop("Only a compliance officer decides on grants."),
    gettext_noop("Say why the grant is revoked."),
    gettext_noop("A grant may start at most one year ahead."),
)
STATE_MESSAGES = {
    "approve": gettext_noop("Only a requested grant can be approved."),
    "reject": gettext_noop("Only a requested grant can be rejected."),
    "revoke": gettext_noop("Only an approved grant can be revoked."),
}


def _grants_page(
    request: HttpRequest, *, errors: dict[int, str] | None = None, status: int = 200
) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind = "grant"
    user = pages.user_of(request)
    now = timezone.now()
    grants = grants_for(user)
    pending = list(
        grants.filter(status=AccessGrant.Status.REQUESTED).order_by("requested_at", "pk")[:LIST_ROWS]
    )
    active = list(
        grants.filter(status=AccessGrant.Status.APPROVED, valid_until__gt=now).order_by("valid_until", "pk")[
            :LIST_ROWS
        ]
    )
    closed = grants.exclude(pk__in=[g.pk for g in pending + active])
    listing = CLOSED_LIST.read(request, closed, choices={"status": AccessGrant.Status.values})
    if listing.invalid:
        status = 400
    return render(
        request,
        "web/grants.html",
        {
            "pending": pending,
            "active": active,
            "closed": listing.page.results,
            "listing": listing,
            "status_filter": request.GET.get("status") or "",
            "statuses": AccessGrant.Status.choices,
            "errors": errors or {},
            "can_decide": user.role == Role.COMPLIANCE,
            "can_request": user.role in (Role.REGULATOR, Role.COMPLIANCE),
            "now": now,
        },
        status=status,
    )


@pages.page("grants_read", "grant.list")
def grant_list(request: HttpRequest) -> HttpResponse:
    return _grants_page(request)


@pages.page("grants_request", "grant.request")
def grant_request(request: HttpRequest) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind = "grant"
    user = pages.user_of(request)
    if request.method != "POST":
        return render(request, "web/grant_request.html", {"form": GrantRequestForm(requester=user)})
    form = GrantRequestForm(request.POST, requester=user)
    if form.is_valid():
        data = form.cleaned_data
        consumer = None
        if data["target_kind"] == "consumer":
            note.requested_id = data["consumer"]
            # Any existing consumer may be asked for: a request grants nothing until approved.
            consumer = Consumer.objects.filter(public_id=data["consumer"]).first()
            if consumer is None:
                form.add_error("consumer", _("Unknown consumer."))
        if not form.errors:
            try:
                grant = services.grant_request(
                    requester=user,
                    permissions=data["permissions"],
                    purpose=data["purpose"],
                    legal_basis=data["legal_basis"],
                    case_reference=data["case_reference"],
                    valid_from=data["valid_from_at"],
                    valid_until=data["valid_until_at"],
                    segment=data["segment"] if data["target_kind"] == "segment" else None,
                    consumer=consumer,
                    grantee_organisation=data.get("grantee_organisation"),
                    for_requester_only=data.get("for_requester_only", False),
                )
            except services.GrantError as error:
                field = error.field if error.field in form.fields else None
                form.add_error(field, _(error.message))
            else:
                pages.attribute(request, grant)
                messages.success(
                    request, _("Your request #%(id)s is waiting for a compliance officer.") % {"id": grant.pk}
                )
                return redirect("web:grants")
    # A form refused by validation changed nothing and was not an access refusal: recorded as such.
    note.action, note.outcome = "grant.request_invalid", AuditEvent.Outcome.ALLOWED
    return render(request, "web/grant_request.html", {"form": form}, status=400)


def _grant_or_404(queryset: QuerySet[AccessGrant], grant_id: str) -> AccessGrant:
    grant = (
        queryset.filter(pk=int(grant_id)).first()
        if grant_id.isascii() and grant_id.isdigit() and len(grant_id) <= 18
        else None
    )
    if grant is None:
        raise pages.NotFound
    return grant


ACCESS_ROWS = 50


@pages.page("grants_read", "grant.read")
def grant_detail(request: HttpRequest, grant_id: str) -> HttpResponse:
    """Everything about one grant the user may read: its terms, its history and the requests made under it
    (newest first, within its validity, so that only those months of the trail are read)."""
    note = pages.note(request)
    note.resource_kind, note.requested_id = "grant", grant_id[:100]
    user = pages.user_of(request)
    grant = _grant_or_404(grants_for(user), grant_id)
    accesses = list(
        AuditEvent.objects.filter(
            grant_id=grant.pk,
            occurred_at__gte=min(grant.valid_from, grant.requested_at),
            occurred_at__lte=max(grant.valid_until, grant.revoked_at or grant.valid_until),
        ).order_by("-occurred_at", "-id")[: ACCESS_ROWS + 1]
    )
    return render(
        request,
        "web/grant_detail.html",
        {
            "grant": grant,
            "accesses": accesses[:ACCESS_ROWS],
            "more_accesses": len(accesses) > ACCESS_ROWS,
            "can_decide": user.role == Role.COMPLIANCE and grant.requested_by_id != user.pk,
            "own_request": grant.requested_by_id == user.pk,
            "organisation_names": pages.organisation_names(),
        },
    )


CONFIRM_TITLES = {
    "approve": gettext_noop("Approve grant #%(id)s?"),
    "reject": gettext_noop("Reject grant #%(id)s?"),
    "revoke": gettext_noop("Revoke grant #%(id)s?"),
}


def _decide(request: HttpRequest, grant_id: str, verb: str) -> HttpResponse:
    """A decision is taken in two steps: the first POST (from the list or the grant's page) shows what is
    about to happen, with the note or reason to confirm; the second, with `confirm=yes`, takes it."""
    note = pages.note(request)
    note.resource_kind, note.requested_id = "grant", grant_id[:100]
    user = pages.user_of(request)
    grant = _grant_or_404(grants_for(user), grant_id)
    pages.attribute(request, grant)
    confirmed = request.POST.get("confirm") == "yes"
    form: DecisionForm | RejectForm | RevokeForm
    if verb == "revoke":
        form = RevokeForm(request.POST)
    elif verb == "reject":
        form = RejectForm(request.POST)
    else:
        form = DecisionForm(request.POST)
    if not confirmed:
        note.action = f"grant.{verb}_confirm"
        refusal = _refusal(grant, user, verb)
        if refusal is not None:
            message, status = refusal
            return _grants_page(request, errors={grant.pk: message}, status=status)
        form = type(form)(initial={key: request.POST.get(key, "") for key in ("note", "reason")})
        return _confirm_page(request, grant, verb, form)
    if not form.is_valid():
        return _confirm_page(request, grant, verb, form, status=400)
    try:
        if verb == "approve":
            services.grant_approve(grant=grant, approver=user, note=form.cleaned_data["note"])
        elif verb == "reject":
            services.grant_reject(grant=grant, approver=user, note=form.cleaned_data["note"])
        else:
            services.grant_revoke(grant=grant, revoker=user, reason=form.cleaned_data["reason"])
    except services.GrantConflict as error:
        message = _(STATE_MESSAGES[verb]) if error.field == "status" else _(error.message)
        return _grants_page(request, errors={grant.pk: message}, status=409)
    except services.GrantError as error:
        status = 403 if error.code in ("forbidden", "four_eyes") else 400
        return _grants_page(request, errors={grant.pk: _(error.message)}, status=status)
    done = {
        "approve": _("Grant #%(id)s approved."),
        "reject": _("Grant #%(id)s rejected."),
        "revoke": _("Grant #%(id)s revoked."),
    }[verb]
    messages.success(request, done % {"id": grant.pk})
    return redirect("web:grants")


def _refusal(grant: AccessGrant, user: User, verb: str) -> tuple[str, int] | None:
    """What the service would refuse, told before the confirmation is asked for."""
    if user.role != Role.COMPLIANCE:
        return _("Only a compliance officer decides on grants."), 403
    if grant.requested_by_id == user.pk:
        text = (
            "Four eyes: the requester cannot approve their own grant."
            if verb == "approve"
            else "Four eyes: the requester cannot decide on their own grant."
        )
        return _(text), 403
    wanted = AccessGrant.Status.APPROVED if verb == "revoke" else AccessGrant.Status.REQUESTED
    if grant.status != wanted:
        return _(STATE_MESSAGES[verb]), 409
    return None


def _confirm_page(
    request: HttpRequest, grant: AccessGrant, verb: str, form: forms.Form, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "web/grant_confirm.html",
        {
            "grant": grant,
            "verb": verb,
            "form": form,
            "title": _(CONFIRM_TITLES[verb]) % {"id": grant.pk},
            "action_url": f"/grants/{grant.pk}/{verb}/",
        },
        status=status,
    )


@require_POST
@pages.page("grants_decide", "grant.approve")
def grant_approve(request: HttpRequest, grant_id: str) -> HttpResponse:
    return _decide(request, grant_id, "approve")


@require_POST
@pages.page("grants_decide", "grant.reject")
def grant_reject(request: HttpRequest, grant_id: str) -> HttpResponse:
    return _decide(request, grant_id, "reject")


@require_POST
@pages.page("grants_decide", "grant.revoke")
def grant_revoke(request: HttpRequest, grant_id: str) -> HttpResponse:
    return _decide(request, grant_id, "revoke")
