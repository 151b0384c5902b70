"""Browser sessions end after 15 idle minutes and after their absolute lifetime; the end is audited and the
old cookie is worthless afterwards."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from audit.models import AuditEvent
from portal.accounts.middleware import SEEN_KEY, STARTED_KEY
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.postgres


def shift(client, key: str, seconds: int) -> None:
    """Move a session timestamp into the past, as if that much time had gone by."""
    session = client.session
    session[key] -= seconds
    session.save()


def test_login_stamps_the_session(client, regulator):
    client.force_login(regulator)
    assert isinstance(client.session[STARTED_KEY], int)
    assert client.session[SEEN_KEY] == client.session[STARTED_KEY]


def test_a_session_in_use_stays(client, regulator, settings):
    client.force_login(regulator)
    shift(client, SEEN_KEY, settings.SESSION_IDLE_TIMEOUT_SECONDS - 60)
    assert client.get("/api/v1/me/").status_code == 200
    # The request counted as activity.
    assert client.get("/api/v1/me/").status_code == 200


def test_the_session_ends_after_the_idle_timeout(client, regulator, settings):
    assert settings.SESSION_IDLE_TIMEOUT_SECONDS == 15 * 60
    client.force_login(regulator)
    old_key = client.session.session_key
    shift(client, SEEN_KEY, 15 * 60 + 1)
    assert client.get("/api/v1/me/").status_code in (401, 403)
    event = AuditEvent.objects.get(action="auth.session_expired")
    assert (event.actor_username, event.requested_id) == ("wei", "idle")
    # The session is gone server-side: replaying the old cookie gets nowhere.
    assert not Session.objects.filter(session_key=old_key).exists()


def test_the_session_ends_after_its_absolute_lifetime_however_active(client, regulator, settings):
    client.force_login(regulator)
    shift(client, STARTED_KEY, settings.SESSION_COOKIE_AGE + 1)
    assert client.get("/api/v1/me/").status_code in (401, 403)
    assert AuditEvent.objects.get(action="auth.session_expired").requested_id == "lifetime"


def test_the_session_cookie_is_http_only_and_same_site(client, regulator, settings):
    regulator.is_staff = True
    regulator.save(update_fields=["is_staff"])
    response = client.post("/admin/login/", {"username": "wei", "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["max-age"]  # ends with the browser, and at the latest after SESSION_COOKIE_AGE
