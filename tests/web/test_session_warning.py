"""The idle-session warning's server side: every signed-in page carries the seconds left as the server counts
them, "Stay signed in" restarts the idle count, and an ended or forged request gets nothing."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from audit.models import AuditEvent
from portal.accounts.middleware import SEEN_KEY, STARTED_KEY

pytestmark = pytest.mark.postgres


def seconds_left(html: str) -> int:
    found = re.search(r'data-seconds-left="(\d+)"', html)
    assert found, "the page carries no session timer"
    return int(found.group(1))


def age(client: Client, key: str, seconds: int) -> None:
    session = client.session
    session[key] -= seconds
    session.save()


def test_a_signed_in_page_carries_the_seconds_left_from_the_server(client_for, settings):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 600
    settings.SESSION_WARNING_SECONDS = 90
    regulator = client_for("regulator")
    regulator.get("/dashboard/")  # stamps the session
    age(regulator, SEEN_KEY, 50)  # 50 s idle, under the once-a-minute activity write
    html = regulator.get("/dashboard/").content.decode()
    assert 540 <= seconds_left(html) <= 550
    assert 'data-warning-seconds="90"' in html and 'role="alertdialog"' in html
    assert "/static/web/session.js" in html
    # The absolute lifetime counts too: near it, the sooner limit is what the page says.
    age(regulator, STARTED_KEY, settings.SESSION_COOKIE_AGE - 100)
    assert 95 <= seconds_left(regulator.get("/dashboard/").content.decode()) <= 100


def test_the_login_page_has_no_timer_and_names_an_ended_session(client, db):
    html = client.get("/accounts/login/").content.decode()
    assert "data-seconds-left" not in html and "session.js" not in html
    html = client.get("/accounts/login/?expired=1").content.decode()
    assert 'data-notice="session-expired"' in html


def test_the_warning_is_translated(client_for):
    html = client_for("regulator", language="zh-hans").get("/dashboard/").content.decode()
    assert "会话即将结束" in html and "保持登录" in html and "剩余时间：" in html


def test_stay_signed_in_restarts_the_idle_count(client_for, settings):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 600
    regulator = client_for("regulator")
    regulator.get("/dashboard/")
    # Under the once-a-minute activity write: only the keep-alive itself can move the stamp.
    age(regulator, SEEN_KEY, 30)
    assert 565 <= seconds_left(regulator.get("/dashboard/").content.decode()) <= 570
    before = AuditEvent.objects.count()
    response = regulator.post("/accounts/session/extend/")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    assert 598 <= response.json()["seconds_left"] <= 600
    # The server's own record moved, not just the answer.
    assert time.time() - regulator.session[SEEN_KEY] < 5
    event = AuditEvent.objects.order_by("id")[before:].get()
    assert (event.action, event.outcome, event.resource_kind) == ("auth.session_extend", "allowed", "session")
    assert not event.subjects.exists() and event.row_count == 0


def test_stay_signed_in_cannot_pass_the_absolute_lifetime(client_for, settings):
    regulator = client_for("regulator")
    regulator.get("/dashboard/")
    age(regulator, STARTED_KEY, settings.SESSION_COOKIE_AGE - 30)
    assert regulator.post("/accounts/session/extend/").json()["seconds_left"] <= 30


def test_an_ended_session_is_not_revived(client_for, settings):
    regulator = client_for("regulator")
    regulator.get("/dashboard/")
    old_key = regulator.session.session_key
    age(regulator, SEEN_KEY, settings.SESSION_IDLE_TIMEOUT_SECONDS + 1)
    response = regulator.post("/accounts/session/extend/")
    assert response.status_code == 401
    assert not Session.objects.filter(session_key=old_key).exists()
    assert regulator.get("/dashboard/").status_code == 302  # still signed out
    assert AuditEvent.objects.filter(action="auth.session_extend", outcome="denied").exists()


def test_the_keep_alive_needs_a_post_with_the_csrf_token(world, settings):
    from portal.accounts.models import User

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="regulator"))
    browser.get("/dashboard/")
    age(browser, SEEN_KEY, 30)  # under the once-a-minute activity write
    seen = browser.session[SEEN_KEY]
    assert browser.get("/accounts/session/extend/").status_code == 405
    assert browser.post("/accounts/session/extend/").status_code == 403  # a cross-site form gets nowhere
    assert browser.session[SEEN_KEY] == seen


def test_anonymous_keep_alive_is_refused(client, db):
    assert client.post("/accounts/session/extend/").status_code == 401
