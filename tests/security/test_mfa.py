"""Two-factor login through the one authentication path, `authenticate(request, username, password, otp)`, as
the web login form calls it, and the enrolment pages (QR code, confirmation, recovery codes, turning off)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from audit.recorder import note_for
from portal.accounts import mfa
from tests.security.conftest import PASSWORD, current_code

pytestmark = pytest.mark.postgres


def login_request():
    return RequestFactory().post("/accounts/login/", REMOTE_ADDR="10.1.2.3")


# --- authenticate()


def test_without_mfa_required_or_enrolled_the_password_is_enough(regulator):
    user = authenticate(login_request(), username="wei", password=PASSWORD)
    assert user == regulator
    assert getattr(user, "otp_device", "unset") is None


def test_where_mfa_is_required_a_login_without_the_second_factor_is_refused(enrolled, settings):
    settings.MFA_REQUIRED = True
    assert authenticate(login_request(), username="wei", password=PASSWORD) is None
    assert authenticate(login_request(), username="wei", password=PASSWORD, otp="") is None


def test_an_enrolled_user_needs_the_code_even_where_mfa_is_not_required(enrolled, settings):
    settings.MFA_REQUIRED = False
    assert authenticate(login_request(), username="wei", password=PASSWORD) is None


def test_the_right_code_logs_in_and_names_the_device(enrolled):
    user = authenticate(login_request(), username="wei", password=PASSWORD, otp=current_code(enrolled))
    assert user is not None
    assert getattr(user, "otp_device", None) == enrolled


def test_a_code_is_accepted_once(enrolled):
    code = current_code(enrolled)
    assert authenticate(login_request(), username="wei", password=PASSWORD, otp=code) is not None
    assert authenticate(login_request(), username="wei", password=PASSWORD, otp=code) is None


def test_the_code_does_not_rescue_a_wrong_password(enrolled):
    assert authenticate(login_request(), username="wei", password="wrong", otp=current_code(enrolled)) is None


def test_a_user_without_an_organisation_cannot_log_in(regulator):
    regulator.organisation = None
    regulator.save()
    assert authenticate(login_request(), username="wei", password=PASSWORD) is None


def test_failed_web_logins_are_audited_and_lock_the_username(regulator, client):
    request = login_request()
    assert authenticate(request, username="wei", password="wrong") is None
    note = note_for(request)
    assert (note.action, note.outcome, note.actor_username) == ("auth.login_failed", "denied", "wei")
    for _attempt in range(4):
        authenticate(login_request(), username="wei", password="wrong")
    assert AuditEvent.objects.filter(action="auth.locked_out", actor_username="wei").count() == 1
    refused = login_request()
    assert authenticate(refused, username="wei", password=PASSWORD) is None
    assert note_for(refused).action == "auth.login_locked"


# --- Enrolment pages


def test_enrolment_shows_a_local_qr_code_and_confirming_it_gives_recovery_codes(client, regulator):
    client.force_login(regulator)
    assert client.get("/accounts/mfa/").status_code == 200
    response = client.post("/accounts/mfa/totp/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/mfa/totp/confirm/"
    page = client.get("/accounts/mfa/totp/confirm/")
    assert page.status_code == 200
    html = page.content.decode()
    # The QR code is inline SVG, drawn with no inline script or style (CSP): scripts only from static files.
    assert "<svg" in html and not re.search(r"<script(?![^>]*\bsrc=)", html) and "style=" not in html
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=regulator)
    assert not device.confirmed

    done = client.post("/accounts/mfa/totp/confirm/", {"otp": current_code(device)})
    assert done.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    codes = done.context["codes"]
    assert len(codes) == 10
    assert all(code in done.content.decode() for code in codes)
    # This session presented the new factor.
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert "auth.mfa.enrolled" in AuditEvent.objects.values_list("action", flat=True)
    # A recovery code stands in for the app, once.
    assert authenticate(login_request(), username="wei", password=PASSWORD, otp=codes[0]) is not None
    assert authenticate(login_request(), username="wei", password=PASSWORD, otp=codes[0]) is None


def test_a_wrong_code_does_not_confirm_the_authenticator(client, regulator):
    client.force_login(regulator)
    client.post("/accounts/mfa/totp/")
    device = TOTPDevice.objects.get(user=regulator)
    wrong = "000000" if current_code(device) != "000000" else "111111"
    assert client.post("/accounts/mfa/totp/confirm/", {"otp": wrong}).status_code == 400
    device.refresh_from_db()
    assert not device.confirmed and not mfa.has_second_factor(regulator)


def test_an_unverified_session_cannot_replace_or_remove_an_existing_factor(client, regulator, enrolled):
    client.force_login(regulator)  # a session that never presented the second factor
    assert client.post("/accounts/mfa/totp/").status_code == 403
    assert client.post("/accounts/mfa/recovery-codes/").status_code == 403
    assert client.post("/accounts/mfa/disable/", {"otp": current_code(enrolled)}).status_code == 403
    assert TOTPDevice.objects.filter(user=regulator, confirmed=True).count() == 1


def verified_client(client, user, device):
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def test_a_verified_session_makes_new_recovery_codes_and_old_ones_stop_working(client, regulator, enrolled):
    first = mfa.recovery_codes_generate(user=regulator)
    response = verified_client(client, regulator, enrolled).post("/accounts/mfa/recovery-codes/")
    assert response.status_code == 200
    assert not StaticToken.objects.filter(token__in=first).exists()
    assert StaticToken.objects.filter(token__in=response.context["codes"]).count() == 10


def test_turning_it_off_with_a_current_code(client, regulator, enrolled):
    client = verified_client(client, regulator, enrolled)
    assert client.get("/accounts/mfa/disable/").status_code == 200
    assert client.post("/accounts/mfa/disable/", {"otp": current_code(enrolled)}).status_code == 302
    assert not mfa.has_second_factor(regulator)


def test_turning_it_off_with_a_wrong_code_keeps_it(client, regulator, enrolled):
    client = verified_client(client, regulator, enrolled)
    wrong = "000000" if current_code(enrolled) != "000000" else "111111"
    assert client.post("/accounts/mfa/disable/", {"otp": wrong}).status_code == 400
    assert mfa.has_second_factor(regulator)


def test_where_mfa_is_required_an_unenrolled_session_reaches_only_enrolment(client, regulator, settings):
    settings.MFA_REQUIRED = True
    client.force_login(regulator)
    assert client.get("/api/v1/me/").status_code == 403
    page = client.get("/admin/")
    assert page.status_code == 302 and page["Location"] == "/accounts/mfa/"
    assert client.get("/accounts/mfa/").status_code == 200
    client.post("/accounts/mfa/totp/")
    device = TOTPDevice.objects.get(user=regulator)
    assert client.post("/accounts/mfa/totp/confirm/", {"otp": current_code(device)}).status_code == 200
    assert client.get("/api/v1/me/").status_code == 200


def test_demo_accounts_are_not_kept_to_enrolment_in_a_demo_run(client, regulator, settings):
    settings.MFA_REQUIRED = True
    settings.PORTAL_DEMO = True
    regulator.is_demo = True
    regulator.save(update_fields=["is_demo"])
    client.force_login(regulator)
    assert client.get("/api/v1/me/").status_code == 200


def test_enrolment_pages_need_a_login(client, db):
    response = client.get("/accounts/mfa/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
