"""The API docs page in Chromium: Swagger UI renders the schema under the portal's Content-Security-Policy
without a single violation, and the browser finds the site's icon."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_api_docs_render_without_a_policy_violation(page, live_server):
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(str(error)))
    icons: list[int] = []
    page.on("response", lambda r: icons.append(r.status) if r.url.endswith("/favicon.ico") else None)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .information-container", timeout=20_000)
    assert [m for m in messages if "Content Security Policy" in m or "violates" in m] == []
    icon = page.request.get(f"{live_server.url}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    assert all(status == 200 for status in icons)
