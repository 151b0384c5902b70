"""Credentials are the user's own (SPEC §3): a lost password or second factor is a reset request approved
by a second person; approval revokes the account's tokens, sessions and devices and hands out a single-use,
expiring enrolment link with which the owner sets a new password and enrols a new factor."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from portal.accounts import mfa, services
from portal.accounts.models import CredentialReset, User
from portal.accounts.tokens import token_check, token_create
from tests.api.conftest import ApiClient, api, demo

__all__ = ["api", "demo"]

JSON = "application/json"
NEW_PASSWORD = "a long new passphrase of wei's own"
ENROL = "/accounts/enrol/"


def _user(username: str) -> User:
    return User.objects.get(username=username)


def _approved_link(api, username: str = "regulator") -> str:
    requested = api("admin").post(
        "/api/v1/credential-resets/",
        {"user": username, "reason": "Phone lost; identity checked in person (ticket 88)."},
        content_type=JSON,
    )
    assert requested.status_code == 201, requested.content
    approved = api("compliance").post(
        f"/api/v1/credential-resets/{requested.json()['id']}/approve/", {}, content_type=JSON
    )
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved"
    return approved.json()["enrolment_url"]


def _secret(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


def _redeem(client: Client, secret: str, password: str = NEW_PASSWORD):
    return client.post(ENROL, {"token": secret, "password1": password, "password2": password})


def test_an_approved_reset_revokes_tokens_sessions_and_devices(api, demo):
    regulator = _user("regulator")
    secret, _token = token_create(user=regulator)
    browser = Client()
    browser.force_login(regulator)
    assert browser.get("/dashboard/").status_code == 200
    mfa.recovery_codes_generate(user=regulator)
    TOTPDevice.objects.create(user=regulator, name="phone", confirmed=True)

    _approved_link(api)

    assert token_check(secret) is None
    assert ApiClient(None).get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert browser.get("/dashboard/").status_code == 302  # signed out: to the login page
    assert not TOTPDevice.objects.filter(user=regulator).exists()
    assert not StaticDevice.objects.filter(user=regulator).exists()
    assert not _user("regulator").has_usable_password()
    # The old password no longer signs in.
    signin = Client().post(
        "/api/v1/auth/token/", {"username": "regulator", "password": "portal-demo"}, content_type=JSON
    )
    assert signin.status_code in (400, 401)


def test_the_link_works_once_sets_the_password_and_leads_to_enrolment(api, demo, settings):
    settings.MFA_REQUIRED = True
    url = _approved_link(api)
    secret = _secret(url)
    client = Client()
    assert client.get(url).status_code == 200
    response = _redeem(client, secret)
    assert response.status_code == 302 and response["Location"] == "/accounts/mfa/"
    # Signed in, and kept to enrolling a new second factor.
    assert client.get("/dashboard/").headers["Location"] == "/accounts/mfa/"
    assert _user("regulator").check_password(NEW_PASSWORD)
    assert CredentialReset.objects.get().status == "used"
    # Once.
    assert Client().get(url).status_code == 410
    assert _redeem(Client(), secret, "yet another long passphrase").status_code == 410
    assert _user("regulator").check_password(NEW_PASSWORD)
    # The secret is never in the trail: only its link's path, and the query without it.
    assert not AuditEvent.objects.filter(path__contains=secret).exists()
    assert not any(secret in str(q) for q in AuditEvent.objects.values_list("query", flat=True))
    assert CredentialReset.objects.get().token_hash != secret


def test_the_link_expires(api, demo):
    url = _approved_link(api)
    CredentialReset.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(url).status_code == 410
    assert _redeem(Client(), _secret(url)).status_code == 410
    assert not _user("regulator").has_usable_password()


def test_a_weak_password_is_refused_naming_the_field_and_the_link_still_works(api, demo):
    url = _approved_link(api)
    weak = _redeem(Client(), _secret(url), "123")
    assert weak.status_code == 400
    assert b"password1" in weak.content
    assert _redeem(Client(), _secret(url)).status_code == 302


def test_the_requester_cannot_approve_their_own_reset_nor_anyone_their_own_account(api, demo):
    made = api("compliance").post(
        "/api/v1/credential-resets/", {"user": "regulator", "reason": "Lost phone."}, content_type=JSON
    )
    assert made.status_code == 201
    refused = api("compliance").post(
        f"/api/v1/credential-resets/{made.json()['id']}/approve/", {}, content_type=JSON
    )
    assert refused.status_code == 403
    assert CredentialReset.objects.get(pk=made.json()["id"]).status == "requested"
    assert _user("regulator").check_password("portal-demo")
    own = services.credential_reset_request(
        requester=_user("admin"), user=_user("compliance2"), reason="Lost."
    )
    with pytest.raises(services.AccountError) as four_eyes:
        services.credential_reset_approve(reset=own, approver=_user("compliance2"))
    assert four_eyes.value.code == "four_eyes"
    # Nobody but compliance decides, and nobody but an administrator or compliance asks.
    assert (
        api("admin").post(f"/api/v1/credential-resets/{own.pk}/approve/", {}, content_type=JSON).status_code
        == 403
    )
    asked = api("regulator").post(
        "/api/v1/credential-resets/", {"user": "regulator2", "reason": "x"}, content_type=JSON
    )
    assert asked.status_code == 403


def test_a_rejected_reset_changes_nothing(api, demo):
    made = services.credential_reset_request(
        requester=_user("admin"), user=_user("regulator"), reason="Lost."
    )
    secret, _token = token_create(user=_user("regulator"))
    response = api("compliance2").post(f"/api/v1/credential-resets/{made.pk}/reject/", {}, content_type=JSON)
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    assert "enrolment_url" not in response.json()
    assert token_check(secret) is not None
    assert _user("regulator").check_password("portal-demo")


def test_every_reset_step_is_an_event_in_the_same_transaction(api, demo):
    _redeem(Client(), _secret(_approved_link(api)))
    events = AuditEvent.objects.filter(resource_kind="credential_reset", path="").order_by("pk")
    assert [(e.action, e.actor_username) for e in events] == [
        ("credential_reset.request", "admin"),
        ("credential_reset.approve", "compliance"),
        ("credential_reset.redeem", "regulator"),
    ]


def test_a_reset_whose_event_cannot_be_written_revokes_nothing(api, demo, monkeypatch):
    from audit.recorder import AuditWriteError

    made = services.credential_reset_request(
        requester=_user("admin"), user=_user("regulator"), reason="Lost."
    )
    secret, _token = token_create(user=_user("regulator"))

    def broken(**kwargs):
        raise AuditWriteError("the audit store refuses writes")

    monkeypatch.setattr("audit.recorder.record", broken)
    with pytest.raises(AuditWriteError):
        services.credential_reset_approve(reset=made, approver=_user("compliance"))
    assert CredentialReset.objects.get(pk=made.pk).status == "requested"
    assert token_check(secret) is not None
    assert _user("regulator").check_password("portal-demo")


def test_the_api_lists_resets_without_their_link(api, demo):
    _approved_link(api)
    listed = api("compliance2").get("/api/v1/credential-resets/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert "enrolment_url" not in row and "token_hash" not in row
    assert api("regulator").get("/api/v1/credential-resets/").status_code == 403
    bad = api("admin").post(
        "/api/v1/credential-resets/", {"user": "nobody", "reason": "x"}, content_type=JSON
    )
    assert bad.status_code == 400 and "user" in bad.json()
