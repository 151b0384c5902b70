"""The idle-session warning in Chromium: it opens before the server ends the session, "Stay signed in"
(from the keyboard) extends the session on the server, and a session left to end lands on the login page."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from portal.accounts.middleware import SEEN_KEY
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def session_key(page, settings) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)


def server_session(page, settings) -> dict:
    """The session as the server holds it, for the browser's cookie."""
    return SessionStore(session_key=session_key(page, settings)).load()


def test_the_warning_opens_stay_signed_in_extends_and_an_ended_session_lands_on_login(
    sign_in, demo_world, settings
):
    # The live server runs in this process: these settings are the server's.
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 40
    settings.SESSION_WARNING_SECONDS = 36
    page = sign_in("regulator")
    page.goto(f"{demo_world}/dashboard/")
    dialog = page.get_by_role("alertdialog", name="Your session is about to end")
    expect(dialog).to_be_visible(timeout=30_000)
    screenshot(page, "en", "session-warning")
    # Focus is in the dialog, on its first action; the keyboard works it.
    assert page.evaluate("document.activeElement.dataset.stay") == ""
    assert re.fullmatch(r"\d+:\d\d", dialog.locator("[data-countdown]").inner_text())
    seen_before = server_session(page, settings)[SEEN_KEY]
    time.sleep(1.1)  # so that a refreshed stamp is a later second than the login's
    with page.expect_response(lambda r: r.url.endswith("/accounts/session/extend/")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(dialog).to_be_hidden()
    assert server_session(page, settings)[SEEN_KEY] > seen_before  # extended on the server, not just the page

    # A much shorter limit: the next page says so, warns at once, and goes to login when the time is up.
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 5
    ending = session_key(page, settings)
    page.goto(f"{demo_world}/consumers/")
    expect(dialog).to_be_visible()
    page.wait_for_url(re.compile(r"/accounts/login/\?expired=1&next=/consumers/$"), timeout=30_000)
    expect(page.locator("[data-notice=session-expired]")).to_be_visible()
    assert not Session.objects.filter(session_key=ending).exists()  # ended on the server too
    screenshot(page, "en", "session-ended")


def test_the_warning_speaks_chinese(sign_in, demo_world, settings):
    settings.SESSION_IDLE_TIMEOUT_SECONDS = 40
    settings.SESSION_WARNING_SECONDS = 39
    page = sign_in("auditor", language="zh-hans")
    page.goto(f"{demo_world}/audit/events/")
    dialog = page.get_by_role("alertdialog", name="会话即将结束")
    expect(dialog).to_be_visible(timeout=30_000)
    expect(dialog.get_by_role("button", name="保持登录")).to_be_focused()
    screenshot(page, "zh-hans", "session-warning")
