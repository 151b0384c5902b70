"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a live server on PostgreSQL
with the demo world. Screenshots of every page go to $PORTAL_VAR_DIR/screenshots/ (var/screenshots/)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.VAR_DIR) / "screenshots"

# Playwright's synchronous API keeps an event loop in the test thread, which Django's ORM takes for async
# code; the tests' database calls (set-up, seeding, assertions) are plain synchronous ones. Test-only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("browser") and not CHROMIUM.exists():
        if settings.PORTAL_REQUIRE_SERVICES:
            pytest.fail(f"PORTAL_REQUIRE_SERVICES is set and this test needs Chromium at {CHROMIUM}")
        pytest.skip(f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium instead of a browser that Playwright would download."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture
def demo_world(live_server) -> Iterator[str]:
    """The demo world on the live server's database, scored in this process; yields the server's URL.

    seed_demo takes the shipped scorecard through its lifecycle (importing it again if the flush after an
    earlier live-server test removed the data migration's row), so that the demo world is scored."""
    from portal.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        call_command("seed_demo", "--consumers", "300", verbosity=0)
    finally:
        app.conf.task_always_eager = saved
    yield live_server.url


@pytest.fixture
def sign_in(browser, demo_world) -> Iterator[Callable]:
    """sign_in("regulator", language="zh-hans") -> a Playwright page signed in through the login form."""
    contexts = []

    def open_as(username: str, language: str = "en"):
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-GB")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{demo_world}/accounts/login/")
        if language != "en":
            page.get_by_role("button", name="简体中文").click()
            page.wait_for_load_state()
        page.fill("#id_username", username)
        page.fill("#id_password", settings.DEMO_PASSWORD)
        page.locator("form[action='/accounts/login/'] button[type=submit]").click()
        page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page, language: str, name: str) -> Path:
    folder = SCREENSHOTS / language
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
