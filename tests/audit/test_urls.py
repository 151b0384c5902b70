"""Every URL of the portal is audited, but for a reviewed list that serves no consumer data.

The walk goes through Django's resolver, includes and all: a URL added under an exempt prefix (or one that
could answer there) fails here until someone reviews it and adds it to the list below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver, path
from django.urls.resolvers import LocalePrefixPattern, RegexPattern, RoutePattern

from audit.middleware import is_exempt
from audit.models import AuditEvent

# Reviewed: the prefixes the middleware does not audit (settings.AUDIT_EXEMPT_PATH_PREFIXES).
REVIEWED_EXEMPT_PREFIXES = ["/healthz", "/static/", "/api/schema/", "/api/docs/", "/favicon.ico"]
# Reviewed, one by one: routes on those prefixes. Each serves no consumer data.
REVIEWED_UNAUDITED_ROUTES = {
    "healthz",  # database, broker and worker status
    "api/schema/",  # the OpenAPI document
    "api/docs/",  # the API documentation page
    "favicon.ico",  # the site's icon, a static file
}
_REGEX_SYNTAX = re.compile(r"[\\^$.|?*+()\[\]{}]")


def _literal(pattern: object) -> tuple[str, bool]:
    """The literal start of one pattern, and whether anything variable follows it."""
    if isinstance(pattern, RoutePattern):
        text = str(pattern)
        cut = text.find("<")
        return (text, False) if cut < 0 else (text[:cut], True)
    if isinstance(pattern, LocalePrefixPattern):
        return pattern.language_prefix, False
    assert isinstance(pattern, RegexPattern), f"unknown pattern type {type(pattern)}"
    text = str(pattern).removeprefix("^")
    text = text.removesuffix(r"\Z").removesuffix("$")
    match = _REGEX_SYNTAX.search(text)
    return (text, False) if match is None else (text[: match.start()], True)


def routes(
    patterns: list, text_prefix: str = "", literal_prefix: str = "", variable: bool = False
) -> Iterator[tuple[str, str, bool]]:
    """(route text, literal start of the path, anything variable after it?) of every URL, through includes."""
    for entry in patterns:
        literal, more = _literal(entry.pattern)
        text = text_prefix + str(entry.pattern)
        start = literal_prefix if variable else literal_prefix + literal
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, text, start, variable or more)
        else:
            assert isinstance(entry, URLPattern)
            yield text, "/" + start, variable or more


def may_be_unaudited(start: str, variable: bool) -> bool:
    if is_exempt(start):
        return True
    # A variable part could reach an exempt prefix: "/<path:page>" also answers "/static/…".
    return variable and any(p.startswith(start) for p in settings.AUDIT_EXEMPT_PATH_PREFIXES)


def test_the_exempt_prefixes_are_the_reviewed_ones():
    assert settings.AUDIT_EXEMPT_PATH_PREFIXES == REVIEWED_EXEMPT_PREFIXES
    assert "audit.middleware.AuditMiddleware" in settings.MIDDLEWARE


def test_every_url_is_audited_but_the_reviewed_ones():
    found = list(routes(get_resolver("portal.urls").url_patterns))
    assert any(text.startswith("admin/") for text, _, _ in found)  # the walk went through includes
    unreviewed = sorted(
        text
        for text, start, variable in found
        if may_be_unaudited(start, variable) and text not in REVIEWED_UNAUDITED_ROUTES
    )
    assert unreviewed == [], f"URLs the audit middleware skips, not on the reviewed list: {unreviewed}"


def probe(route: str) -> URLPattern:
    return path(route, lambda request: HttpResponse())


def test_the_walk_catches_what_it_is_for():
    candidates = [
        probe("healthz/consumers/<str:public_id>/"),
        probe("<path:page>"),
        probe("api/v1/consumers/"),
    ]
    flagged = [text for text, start, variable in routes(candidates) if may_be_unaudited(start, variable)]
    assert flagged == ["healthz/consumers/<str:public_id>/", "<path:page>"]


@pytest.mark.parametrize(
    ("url", "exempt"),
    [
        ("/healthz", True),
        ("/healthz/", True),
        ("/healthzconsumers", False),
        ("/static/app.css", True),
        ("/static", True),
        ("/staticky/", False),
        ("/api/schema/", True),
        ("/api/v1/consumers/", False),
        ("/admin/", False),
    ],
)
def test_an_exempt_prefix_covers_whole_path_segments_only(url, exempt):
    assert is_exempt(url) is exempt


@pytest.mark.django_db
def test_a_request_outside_the_list_writes_one_event_and_one_inside_writes_none(client):
    client.get("/healthz")
    assert not AuditEvent.objects.exists()
    client.get("/admin/login/")
    event = AuditEvent.objects.get()
    assert (event.action, event.path, event.outcome) == ("admin:login", "/admin/login/", "allowed")
