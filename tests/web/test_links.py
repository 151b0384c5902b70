"""Every link a persona sees on their landing page, and on the pages it links to, opens: no link leads to a
404 (a requested grant's segment, say) or to an error."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

import pytest

PERSONAS = ["regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin"]
# Links that act rather than show (logout is a POST form; the language switch is a POST too) or that leave
# the portal's pages for the admin console, which tests/test_admin.py covers.
NOT_CRAWLED = ("/accounts/logout/", "/i18n/", "/admin/")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def links_of(body: bytes) -> list[str]:
    parser = _Links()
    parser.feed(body.decode())
    found = []
    for href in parser.hrefs:
        url, _ = urldefrag(href)
        parts = urlsplit(url)
        if not url or parts.scheme or parts.netloc or not parts.path.startswith("/"):
            continue
        if parts.path.startswith(NOT_CRAWLED):
            continue
        found.append(url)
    return sorted(set(found))


@pytest.mark.parametrize("username", PERSONAS)
def test_every_link_two_clicks_from_the_landing_page_opens(client_for, username):
    client = client_for(username)
    landing = client.get("/", follow=True)
    assert landing.status_code == 200
    first = links_of(landing.content)
    assert first, f"{username}'s landing page links nowhere"
    broken: dict[str, int] = {}
    second: set[str] = set()
    for url in first:
        response = client.get(url, follow=True)
        if response.status_code != 200:
            broken[url] = response.status_code
        elif response["Content-Type"].startswith("text/html"):
            second.update(links_of(response.content))
    for url in sorted(second - set(first)):
        response = client.get(url, follow=True)
        if response.status_code != 200:
            broken[url] = response.status_code
    assert broken == {}, f"{username} sees links that do not open: {broken}"


def test_the_site_icon_is_served_at_the_root(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00" and b"PNG" in body[:64]  # an ICO holding one PNG image


def test_the_api_docs_page_carries_no_inline_style(client):
    body = client.get("/api/docs/").content.decode()
    assert "<style" not in body and "style=" not in body
    assert "/static/web/api-docs.css" in body
