"""The compliance officer's screen for account requests (SPEC §3): memberships and credential resets waiting
for a second person, approved or rejected here. Requests are made in the admin console or over the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.accounts import services
from portal.accounts.models import CredentialReset, Membership
from portal.web import pages
from portal.web.forms import DecisionForm

LIST_ROWS = 100
KINDS: dict[str, Any] = {"membership": Membership, "credential_reset": CredentialReset}


def _page(
    request: HttpRequest, *, error: tuple[str, int, str] | None = None, status: int = 200
) -> HttpResponse:
    pages.note(request).resource_kind = "account_request"
    waiting = Membership.Status.REQUESTED
    memberships = (
        Membership.objects.filter(status=waiting)
        .select_related("user", "organisation", "requested_by")
        .order_by("requested_at", "pk")[:LIST_ROWS]
    )
    resets = (
        CredentialReset.objects.filter(status=CredentialReset.Status.REQUESTED)
        .select_related("user", "requested_by")
        .order_by("requested_at", "pk")[:LIST_ROWS]
    )
    context = {"memberships": memberships, "resets": resets, "error": error}
    return render(request, "web/account_requests.html", context, status=status)


@pages.page("accounts_decide", "account_request.list")
def request_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@pages.page("accounts_decide", "account_request.decide")
def decide(request: HttpRequest, kind: str, pk: str, verb: str) -> HttpResponse:
    note = pages.note(request)
    model = KINDS.get(kind)
    if (
        model is None
        or verb not in ("approve", "reject")
        or not (pk.isascii() and pk.isdigit() and len(pk) < 19)
    ):
        raise pages.NotFound
    note.action, note.resource_kind, note.requested_id = f"{kind}.{verb}", kind, pk
    target = model.objects.filter(pk=int(pk)).first()
    if target is None:
        raise pages.NotFound
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _page(
            request,
            error=(kind, target.pk, " ".join(str(e) for e in form.errors.get("note", []))),
            status=400,
        )
    user, text = pages.user_of(request), form.cleaned_data["note"]
    try:
        if kind == "membership":
            decided = services.membership_approve if verb == "approve" else services.membership_reject
            decided(membership=target, approver=user, note=text)
        elif verb == "reject":
            services.credential_reset_reject(reset=target, approver=user, note=text)
        else:
            _reset, secret = services.credential_reset_approve(reset=target, approver=user, note=text)
            # Shown once, on this answer only (never stored, never redirected through).
            link = request.build_absolute_uri(f"{reverse('web:enrol')}?token={secret}")
            return render(request, "web/account_reset_link.html", {"reset": target, "link": link})
    except services.AccountError as error:
        code = 403 if error.code in ("forbidden", "four_eyes") else 409 if error.code == "conflict" else 400
        return _page(request, error=(kind, target.pk, _(error.message)), status=code)
    messages.success(request, _("Decision recorded."))
    return redirect("web:account-requests")
