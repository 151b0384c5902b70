"""POST/DELETE /api/v1/auth/token/: the second factor, lockout after failed logins, the per-user throttle, and
tokens that stop working (expired, revoked, deactivated user, lost organisation, changed password)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from audit.models import AuditEvent
from portal.accounts.models import ApiToken
from portal.accounts.tokens import token_create
from portal.api.throttles import UserDataThrottle
from tests.security.conftest import PASSWORD, current_code

pytestmark = pytest.mark.postgres

TOKEN_URL = "/api/v1/auth/token/"


def ask_token(client: Client, username: str, password: str, otp: str | None = None):
    body: dict[str, str] = {"username": username, "password": password}
    if otp is not None:
        body["otp"] = otp
    return client.post(TOKEN_URL, json.dumps(body), content_type="application/json")


def bearer(secret: str) -> Client:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def actions(username: str) -> list[str]:
    return list(
        AuditEvent.objects.filter(actor_username=username).order_by("pk").values_list("action", flat=True)
    )


# --- The second factor


def test_a_user_with_an_authenticator_needs_the_code(client, enrolled, regulator):
    response = ask_token(client, "wei", PASSWORD)
    assert response.status_code == 401
    assert not ApiToken.objects.filter(user=regulator).exists()
    assert AuditEvent.objects.filter(
        actor_username="wei", action="auth.login_failed", outcome="denied"
    ).exists()


def test_a_wrong_code_is_refused(client, enrolled):
    wrong = "000000" if current_code(enrolled) != "000000" else "111111"
    assert ask_token(client, "wei", PASSWORD, otp=wrong).status_code == 401


def test_password_and_current_code_give_a_token(client, enrolled):
    response = ask_token(client, "wei", PASSWORD, otp=current_code(enrolled))
    assert response.status_code == 201, response.content
    assert bearer(response.json()["token"]).get("/api/v1/me/").json()["username"] == "wei"
    assert "auth.login" in actions("wei")


def test_a_recovery_code_works_once(client, enrolled, regulator):
    device = StaticDevice.objects.create(user=regulator, name="Recovery codes", confirmed=True)
    StaticToken.objects.create(device=device, token="abcd2345")
    # As people copy it: upper case, with a space.
    assert ask_token(client, "wei", PASSWORD, otp="ABCD 2345").status_code == 201
    assert ask_token(client, "wei", PASSWORD, otp="abcd2345").status_code == 401


def test_where_mfa_is_required_a_user_without_a_second_factor_gets_no_token(client, regulator, settings):
    settings.MFA_REQUIRED = True
    response = ask_token(client, "wei", PASSWORD)
    assert response.status_code == 403
    assert "/accounts/mfa/" in response.json()["detail"]
    assert not ApiToken.objects.filter(user=regulator).exists()
    assert actions("wei")[-1] == "auth.mfa_enrolment_required"


def test_demo_accounts_skip_the_second_factor_only_in_a_demo_run(client, regulator, settings):
    settings.MFA_REQUIRED = True
    regulator.is_demo = True
    regulator.save(update_fields=["is_demo"])
    settings.PORTAL_DEMO = False
    assert ask_token(client, "wei", PASSWORD).status_code == 403
    settings.PORTAL_DEMO = True
    assert ask_token(client, "wei", PASSWORD).status_code == 201


def test_a_non_demo_account_is_not_exempt_in_a_demo_run(client, regulator, settings):
    settings.MFA_REQUIRED = True
    settings.PORTAL_DEMO = True
    assert ask_token(client, "wei", PASSWORD).status_code == 403


# --- Lockout


def test_the_sixth_wrong_password_is_refused_as_locked_and_every_step_is_audited(client, regulator):
    for _attempt in range(4):
        assert ask_token(client, "wei", "wrong password").status_code == 401
    # The fifth failure reaches the limit: refused, and the lockout is an event of its own.
    fifth = ask_token(client, "wei", "wrong password")
    assert fifth.status_code == 429
    sixth = ask_token(client, "wei", "wrong password")
    assert sixth.status_code == 429
    assert int(sixth["Retry-After"]) > 0
    # Even the right password is refused while the username is locked.
    assert ask_token(client, "wei", PASSWORD).status_code == 429
    assert not ApiToken.objects.filter(user=regulator).exists()
    assert actions("wei") == [
        *["auth.login_failed"] * 4,
        "auth.locked_out",  # written as the fifth failure locked the username
        "auth.login_failed",  # the fifth request itself
        "auth.login_locked",
        "auth.login_locked",
    ]
    events = AuditEvent.objects.filter(actor_username="wei")
    assert set(events.values_list("outcome", flat=True)) == {"denied"}
    assert events.filter(action="auth.login_locked", status=429).count() == 2


def test_a_success_before_the_limit_forgets_earlier_failures(client, regulator):
    for _attempt in range(4):
        ask_token(client, "wei", "wrong password")
    assert ask_token(client, "wei", PASSWORD).status_code == 201
    for _attempt in range(4):
        assert ask_token(client, "wei", "wrong password").status_code == 401


def test_the_lockout_covers_the_web_login_form_too(client, regulator):
    """The admin's login form calls authenticate(request, …) like the portal's login page does."""
    for _attempt in range(5):
        page = client.post("/admin/login/", {"username": "wei", "password": "wrong password"})
    assert page.status_code == 429
    assert "Too many failed logins" in page.content.decode()
    assert int(page["Retry-After"]) > 0
    assert ask_token(client, "wei", PASSWORD).status_code == 429
    assert actions("wei").count("auth.locked_out") == 1


# --- Tokens that stop working


@pytest.fixture
def live_token(regulator) -> tuple[str, ApiToken]:
    return token_create(user=regulator)


def test_a_live_token_works(live_token):
    assert bearer(live_token[0]).get("/api/v1/me/").status_code == 200


def test_an_expired_token_gets_401(live_token):
    secret, token = live_token
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(secret).get("/api/v1/me/").status_code == 401


def test_a_revoked_token_gets_401(live_token):
    secret, _token = live_token
    client = bearer(secret)
    assert client.delete(TOKEN_URL).status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


def test_the_token_of_a_deactivated_user_gets_401(live_token, regulator):
    regulator.is_active = False
    regulator.save(update_fields=["is_active"])
    assert bearer(live_token[0]).get("/api/v1/me/").status_code == 401


def test_the_token_of_a_user_who_lost_their_organisation_gets_401(live_token, regulator):
    regulator.organisation = None
    regulator.save()
    assert bearer(live_token[0]).get("/api/v1/me/").status_code == 401


def test_a_password_change_ends_earlier_tokens(live_token, regulator):
    regulator.set_password("another long passphrase")
    regulator.save()
    assert bearer(live_token[0]).get("/api/v1/me/").status_code == 401
    fresh, _token = token_create(user=regulator)
    assert bearer(fresh).get("/api/v1/me/").status_code == 200


# --- Per-user throttle


@pytest.mark.redis
def test_a_throttled_client_gets_429_with_retry_after_and_the_event_is_audited(live_token, settings):
    settings.API_USER_THROTTLE_RATE = "3/min"
    UserDataThrottle.cache.delete(f"throttle_user_{live_token[1].user_id}")  # a count left by an earlier run
    client = bearer(live_token[0])
    assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/me/")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    event = AuditEvent.objects.latest("pk")
    assert (event.action, event.outcome, event.status, event.actor_username) == (
        "api.throttled",
        "denied",
        429,
        "wei",
    )
