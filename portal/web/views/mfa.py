"""Two-factor enrolment pages: an authenticator app (TOTP, QR code drawn here) and single-use recovery codes.

A user who must use a second factor but has none yet is kept to these pages after login
(MfaEnrolmentMiddleware). Changing or removing an existing second factor needs a session that verified one.
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any, cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from audit.recorder import note_for
from portal.accounts import mfa
from portal.accounts.models import User


class CodeForm(forms.Form):
    otp = forms.CharField(
        label=_("Code"),
        max_length=mfa.MAX_OTP_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


def _verified(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_verified", lambda: False)())


def _may_change(request: HttpRequest) -> bool:
    """A second factor already there may only be changed from a session that verified it."""
    return not mfa.has_second_factor(_user(request)) or _verified(request)


def _note(request: HttpRequest, action: str, outcome: str = "") -> None:
    note = note_for(request)
    note.action, note.resource_kind = action, "mfa"
    if outcome:
        note.outcome = outcome


@never_cache
@login_required
def overview(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    _note(request, "auth.mfa.view")
    context: dict[str, Any] = {
        "enrolled": mfa.has_second_factor(user),
        "verified": _verified(request),
        "required": mfa.mfa_required_for(user),
        "recovery_codes_left": mfa.recovery_codes_left(user),
    }
    return render(request, "web/mfa/overview.html", context)


@never_cache
@login_required
@require_POST
def totp_start(request: HttpRequest) -> HttpResponse:
    if not _may_change(request):
        _note(request, "auth.mfa.enrol_start", "denied")
        return render(request, "web/mfa/verify_first.html", status=403)
    _note(request, "auth.mfa.enrol_start")
    mfa.totp_enrolment_start(user=_user(request))
    return redirect("mfa:totp-confirm")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def totp_confirm(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    device = mfa.totp_pending(user)
    if device is None:
        _note(request, "auth.mfa.enrol_confirm", "denied")
        return redirect("mfa:overview")
    if not _may_change(request):
        _note(request, "auth.mfa.enrol_confirm", "denied")
        return render(request, "web/mfa/verify_first.html", status=403)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if mfa.totp_enrolment_confirm(device=device, otp=form.cleaned_data["otp"]):
            _note(request, "auth.mfa.enrolled")
            device.refresh_from_db()
            # This session has now presented the second factor.
            otp_login(request, device)
            codes = mfa.recovery_codes_generate(user=user)
            return render(request, "web/mfa/recovery_codes.html", {"codes": codes, "first": True})
        _note(request, "auth.mfa.enrol_confirm", "denied")
        form.add_error("otp", _("That code is not valid. Check the time on your device and try again."))
    else:
        _note(request, "auth.mfa.enrol_confirm")
    context = {
        "form": form,
        "qr_svg": mfa.qr_svg(device.config_url),
        "secret": b32encode(device.bin_key).decode(),
    }
    return render(request, "web/mfa/totp_confirm.html", context, status=400 if form.errors else 200)


@never_cache
@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not mfa.has_second_factor(user) or not _verified(request):
        _note(request, "auth.mfa.recovery_codes", "denied")
        return render(request, "web/mfa/verify_first.html", status=403)
    _note(request, "auth.mfa.recovery_codes")
    codes = mfa.recovery_codes_generate(user=user)
    return render(request, "web/mfa/recovery_codes.html", {"codes": codes, "first": False})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def disable(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not mfa.has_second_factor(user):
        _note(request, "auth.mfa.disable", "denied")
        return redirect("mfa:overview")
    if not _verified(request):
        _note(request, "auth.mfa.disable", "denied")
        return render(request, "web/mfa/verify_first.html", status=403)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # A current code, not just the session: whoever left a browser open cannot strip the second factor.
        if mfa.second_factor_verify(user=user, otp=form.cleaned_data["otp"]) is not None:
            _note(request, "auth.mfa.disabled")
            mfa.mfa_disable(user=user)
            return redirect("mfa:overview")
        _note(request, "auth.mfa.disable", "denied")
        form.add_error("otp", _("That code is not valid."))
    else:
        _note(request, "auth.mfa.disable")
    return render(
        request,
        "web/mfa/disable.html",
        {"form": form, "required": mfa.mfa_required_for(user)},
        status=400 if form.errors else 200,
    )
