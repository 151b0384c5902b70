"""Request rates on the API: the per-user data budget (shared with the web pages, portal.access.throttles) and
the per-address budget of token requests. Over a rate: 429 with Retry-After, and the audit event says so."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle

from audit.recorder import client_ip
from portal.access.throttles import UserDataThrottle

__all__ = ["LoginThrottle", "UserDataThrottle"]


class LoginThrottle(ScopedRateThrottle):
    """Token requests per client address (LOGIN_THROTTLE_RATE), on top of the per-username lockout. The
    address is the one the audit trail and the lockout use: behind the reverse proxy, the nearest
    X-Forwarded-For hop that is not a trusted proxy (TRUSTED_PROXIES); from any other peer, the peer itself,
    whatever it forwards. So each client has its own budget and none can pick another's."""

    def get_rate(self) -> str:
        return settings.LOGIN_THROTTLE_RATE

    def get_ident(self, request) -> str:
        # The peer address is unparseable only on a misconfigured server: such requests share one budget.
        return client_ip(request) or "unknown"
