"""Session sign-in and sign-out, and the start page that sends each role where its work is."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from audit.recorder import note_for
from portal.accounts import services as accounts
from portal.accounts.middleware import session_extend, session_seconds_left
from portal.web.forms import EnrolmentForm, LoginForm
from portal.web.pages import HOME, user_of


@sensitive_post_parameters("password", "otp")
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    note = note_for(request)
    note.action, note.resource_kind = "auth.login.page", "session"
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = ""
    if request.method == "POST":
        form = LoginForm(request, data=request.POST)
        note.actor_username = (request.POST.get("username") or "")[:150]
        if form.is_valid() and form.user is not None:
            login(request, form.user)
            note.action = "auth.login"
            return redirect(target or "web:home")
        # The lockout handler may have named the event already (auth.login_locked).
        if note.action == "auth.login.page":
            note.action = "auth.login_failed"
        note.outcome = "denied"
        return render(request, "web/login.html", {"form": form, "next": target}, status=401)
    if request.user.is_authenticated:
        return redirect(target or "web:home")
    # The idle-session warning sends an ended session here; the flag only chooses which notice is shown.
    expired = request.GET.get("expired") == "1"
    return render(request, "web/login.html", {"form": LoginForm(request), "next": target, "expired": expired})


@require_POST
@csrf_protect
@never_cache
def session_keepalive(request: HttpRequest) -> HttpResponse:
    """The dialog's "Stay signed in": the idle limit counts again from now; answers the seconds left, as
    the server counts them. A session that has already ended (the lifetime middleware signed it out) gets
    401 and no new one."""
    note = note_for(request)
    note.action, note.resource_kind = "auth.session_extend", "session"
    if not request.user.is_authenticated:
        note.outcome = "denied"
        return JsonResponse({"detail": "The session has ended."}, status=401)
    session_extend(request.session)
    return JsonResponse({"seconds_left": session_seconds_left(request.session)})


@require_POST
@csrf_protect
def logout_view(request: HttpRequest) -> HttpResponse:
    note = note_for(request)
    note.action, note.resource_kind = "auth.logout", "session"
    if request.user.is_authenticated:
        note.actor_username = user_of(request).get_username()
    logout(request)
    return redirect("web:login")


def home(request: HttpRequest) -> HttpResponse:
    note_for(request).action = "web.home"
    if not request.user.is_authenticated:
        return redirect("web:login")
    return redirect(HOME.get(user_of(request).role, "web:grants"))


@sensitive_post_parameters("password1", "password2", "token")
@csrf_protect
@never_cache
def enrol(request: HttpRequest) -> HttpResponse:
    """A credential reset's single-use link (`?token=`): the owner sets a new password, is signed in, and goes
    on to enrol a new second factor. The secret travels in the query string or the form, never the path, so
    the audit trail does not keep it."""
    note = note_for(request)
    note.action, note.resource_kind = "credential_reset.page", "credential_reset"
    secret = (request.POST.get("token") if request.method == "POST" else request.GET.get("token")) or ""
    reset = accounts.credential_reset_for_link(secret)
    if reset is None:
        note.outcome = "denied"
        return render(request, "web/enrol.html", {"gone": True}, status=410)
    if request.method != "POST":
        return render(request, "web/enrol.html", {"form": EnrolmentForm(initial={"token": secret})})
    form = EnrolmentForm(request.POST)
    if form.is_valid():
        try:
            user = accounts.credential_reset_redeem(secret=secret, password=form.cleaned_data["password1"])
        except accounts.AccountError as error:
            if error.field != "password":
                note.outcome = "denied"
                return render(request, "web/enrol.html", {"gone": True}, status=410)
            form.add_error("password1", error.message)
        else:
            logout(request)
            login(request, user, backend="portal.accounts.backends.PortalBackend")
            note.action = "credential_reset.redeem"
            return redirect("mfa:overview")
    note.outcome = "denied"
    return render(request, "web/enrol.html", {"form": form}, status=400)
