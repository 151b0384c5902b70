"""Every page for every persona: role gates (403), sign-in redirects, pages that render, and markup the
Content-Security-Policy allows (no inline script, style or event handler)."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory

from audit.models import AuditEvent
from portal.access import gates
from portal.access.selectors import grants_for
from portal.accounts.models import Role, User
from portal.api.throttles import UserDataThrottle
from portal.records.models import Consumer
from tests.web.conftest import CCF, DELTA

PERSONAS = ("regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin")
REGULATORS = {"regulator", "regulator2"}
RECORDS = REGULATORS | {"shareholder", "admin"}

# (url template, roles that may use the page); every other persona gets 403.
PAGES = [
    ("/dashboard/", REGULATORS),
    ("/consumers/", RECORDS),
    ("/segments/", RECORDS),
    ("/grants/", set(PERSONAS)),
    ("/grants/request/", REGULATORS | {"compliance", "compliance2"}),
    ("/scoring/runs/", {"compliance", "compliance2", "auditor"}),
    ("/scoring/runs/progress.json", {"compliance", "compliance2", "auditor"}),
    ("/audit/events/", {"auditor"}),
    ("/audit/access-log/", {"auditor"}),
    ("/audit/chain/", {"auditor"}),
]
INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    re.compile(r"<style", re.I),
    re.compile(r"\sstyle\s*=", re.I),
    re.compile(r"\son[a-z]+\s*=", re.I),
    re.compile(r"javascript:", re.I),
]


def assert_csp_clean(html: str) -> None:
    for pattern in INLINE:
        assert not pattern.search(html), f"inline code or style: {pattern.pattern}"


@pytest.mark.postgres
def test_role_gates_and_pages_render_for_every_persona(client_for):
    for username in PERSONAS:
        client = client_for(username)
        for url, allowed in PAGES:
            response = client.get(url)
            expected = 200 if username in allowed else 403
            assert response.status_code == expected, (username, url, response.status_code)
            if response["Content-Type"].startswith("text/html"):
                assert_csp_clean(response.content.decode())


@pytest.mark.postgres
def test_start_page_sends_each_role_to_its_work(client_for):
    expected = {
        "regulator": "/dashboard/",
        "shareholder": "/overview/",
        "compliance": "/grants/",
        "auditor": "/audit/events/",
    }
    for username, target in expected.items():
        assert client_for(username).get("/")["Location"] == target


@pytest.mark.postgres
def test_anonymous_visitors_are_sent_to_sign_in(client_for, world):
    client = client_for(None)
    consumer = world.consumer_in(CCF)
    for url in ("/dashboard/", f"/consumers/{consumer.public_id}/", "/audit/events/", "/grants/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.postgres
def test_consumer_pages_out_of_scope_unknown_and_malformed_are_the_same_404(client_for, world):
    client = client_for("regulator")
    outside = world.consumer_outside(CCF)
    unknown = "C" + "0" * 16
    for public_id in (outside.public_id, unknown, "not-an-id", "c" + outside.public_id[1:], "1"):
        response = client.get(f"/consumers/{public_id}/")
        assert response.status_code == 404, public_id
    # A regulator without a grant sees nobody, a shareholder sees no records at all.
    inside = world.consumer_in(CCF)
    assert client_for("regulator2").get(f"/consumers/{inside.public_id}/").status_code == 404
    assert client_for("shareholder").get(f"/consumers/{inside.public_id}/").status_code == 404


@pytest.mark.postgres
def test_segment_pages_need_aggregates_of_that_segment(client_for, world):
    shareholder = client_for("shareholder")
    delta, ccf = world.segment(DELTA), world.segment(CCF)
    assert shareholder.get(f"/segments/{delta.pk}/").status_code == 200
    assert shareholder.get(f"/segments/{ccf.pk}/").status_code == 404
    assert shareholder.get("/segments/99999999/").status_code == 404
    assert shareholder.get("/segments/x1/").status_code == 404
    assert client_for("regulator").get(f"/segments/{ccf.pk}/").status_code == 200
    assert client_for("regulator").get(f"/segments/{delta.pk}/").status_code == 404


@pytest.mark.postgres
def test_consumer_list_shows_only_consumers_in_scope(client_for, world):
    html = client_for("regulator").get("/consumers/").content.decode()
    listed = set(re.findall(r"/consumers/(C[0-9A-Z]{16})/", html))
    assert listed
    in_scope = set(
        Consumer.objects.filter(memberships__segment__slug=CCF).values_list("public_id", flat=True)
    )
    assert listed <= in_scope


@pytest.mark.postgres
def test_sign_in_and_out_through_the_login_page_are_audited(client_for, settings):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    refused = client.post("/accounts/login/", {"username": "regulator", "password": "wrong", "otp": ""})
    assert refused.status_code == 401
    html = refused.content.decode()
    assert "Sign-in failed. Check your username, password and code." in html
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.actor_username) == ("auth.login_failed", "denied", "regulator")
    assert "wrong" not in str(event.query)

    signed_in = client.post(
        "/accounts/login/",
        {"username": "regulator", "password": settings.DEMO_PASSWORD, "next": "/consumers/"},
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/consumers/"
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.actor_username) == ("auth.login", "allowed", "regulator")
    # A redirect off the site is ignored.
    client.post("/accounts/logout/")
    offsite = client.post(
        "/accounts/login/",
        {"username": "regulator", "password": settings.DEMO_PASSWORD, "next": "https://example.org/"},
    )
    assert offsite["Location"] == "/"
    assert client.get("/accounts/logout/").status_code == 405  # sign-out only by POST
    assert client.post("/accounts/logout/").status_code == 302
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.actor_username) == ("auth.logout", "regulator")
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.postgres
@pytest.mark.redis
def test_consumer_pages_share_the_api_per_user_rate(client_for, world, settings):
    """The web's consumer pages and the API count against one per-user budget in the shared cache; over it,
    429 with Retry-After, recorded as a refused web.throttled."""
    settings.API_USER_THROTTLE_RATE = "3/min"
    user = User.objects.get(username="regulator")
    request = RequestFactory().get("/")
    request.user = user
    user_key = UserDataThrottle().get_cache_key(cast(Any, request), cast(Any, None))
    cache.delete(user_key)
    try:
        client = client_for("regulator")
        consumer = world.consumer_in(CCF)
        assert client.get("/api/v1/consumers/").status_code == 200  # the API's request counts too
        assert client.get("/consumers/").status_code == 200
        assert client.get(f"/consumers/{consumer.public_id}/").status_code == 200
        refused = client.get(f"/consumers/{consumer.public_id}/")
        assert refused.status_code == 429
        assert 1 <= int(refused["Retry-After"]) <= 60
        html = refused.content.decode()
        assert "Too many requests" in html and consumer.name not in html
        event = AuditEvent.objects.latest("id")
        assert (event.action, event.outcome, event.status) == ("web.throttled", "denied", 429)
        assert event.actor_username == "regulator" and not event.subjects.exists()
        # Pages that serve no consumer data are not counted.
        assert client.get("/grants/").status_code == 200
        # Another user's budget is their own.
        other = User.objects.get(username="regulator2")
        request.user = other
        cache.delete(UserDataThrottle().get_cache_key(cast(Any, request), cast(Any, None)))
        assert client_for("regulator2").get("/consumers/").status_code == 200
    finally:
        cache.delete(user_key)


@pytest.mark.postgres
def test_web_pages_and_the_api_read_one_role_table(client_for, world, monkeypatch):
    """Narrowing a gate in the one table closes both the page and the endpoint it guards."""
    consumer = world.consumer_in(CCF)
    client = client_for("regulator")
    assert client.get(f"/consumers/{consumer.public_id}/").status_code == 200
    assert client.get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 200
    monkeypatch.setitem(gates.GATES, "records", frozenset({Role.SHAREHOLDER}))
    assert client.get(f"/consumers/{consumer.public_id}/").status_code == 403
    assert client.get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 403


@pytest.mark.postgres
@pytest.mark.parametrize("username", ["regulator", "regulator2", "shareholder", "compliance", "auditor"])
def test_grant_screens_and_the_api_list_the_same_grants(client_for, world, username):
    expected = set(grants_for(User.objects.get(username=username)).values_list("pk", flat=True))
    client = client_for(username)
    listed = {grant["id"] for grant in client.get("/api/v1/grants/?page_size=200").json()["results"]}
    shown = {int(pk) for pk in re.findall(r'data-grant-id="(\d+)"', client.get("/grants/").content.decode())}
    assert listed == shown == expected
