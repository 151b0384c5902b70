"""The per-address rate of token requests counts each client on its own behind the reverse proxy: the address
is the one the audit trail and the lockout use (X-Forwarded-For believed only from TRUSTED_PROXIES), so one
client guessing passwords does not block everybody's logins, and nobody escapes the rate by inventing a
forwarded address."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.api.throttles import LoginThrottle

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TOKEN_URL = "/api/v1/auth/token/"
PROXY = "10.20.30.40"
ALICE = "203.0.113.51"
BOB = "203.0.113.52"
STRANGER = "198.51.100.53"


@pytest.fixture
def two_per_minute(settings, db):
    settings.TRUSTED_PROXIES = [PROXY]
    settings.LOGIN_THROTTLE_RATE = "2/min"
    for address in (PROXY, ALICE, BOB, STRANGER, "192.0.2.1", "192.0.2.2", "192.0.2.3"):
        LoginThrottle.cache.delete(f"throttle_login_{address}")  # counts left by an earlier run
    yield
    for address in (PROXY, ALICE, BOB, STRANGER):
        LoginThrottle.cache.delete(f"throttle_login_{address}")


def ask(peer: str, forwarded: str | None = None) -> int:
    """A token request with an empty body (400 when not throttled: the rate is counted before validation)."""
    client = Client(REMOTE_ADDR=peer)
    if forwarded is not None:
        client.defaults["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(TOKEN_URL, "{}", content_type="application/json").status_code


def test_clients_behind_the_trusted_proxy_have_a_bucket_each(two_per_minute):
    assert [ask(PROXY, ALICE) for _ in range(3)] == [400, 400, 429]
    # Another client through the same proxy is not blocked by the first one's requests.
    assert [ask(PROXY, BOB) for _ in range(2)] == [400, 400]
    assert ask(PROXY, BOB) == 429
    # The nearest untrusted hop counts, not an address the client put in front of it.
    assert ask(PROXY, f"192.0.2.9, {ALICE}") == 429


def test_an_untrusted_peer_cannot_choose_its_bucket_with_x_forwarded_for(two_per_minute):
    statuses = [ask(STRANGER, forwarded) for forwarded in ("192.0.2.1", "192.0.2.2", "192.0.2.3")]
    assert statuses == [400, 400, 429]
    assert ask(STRANGER) == 429
    # Its requests counted against its own address only.
    assert ask(PROXY, ALICE) == 400
