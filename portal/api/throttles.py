"""Per-user request rates on the API. Over the rate: 429 with Retry-After, and the audit event says so."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle


class UserDataThrottle(UserRateThrottle):
    """API_USER_THROTTLE_RATE per authenticated user, counted in the shared cache (Redis when configured), so
    every web process and thread counts against the same budget."""

    scope = "user"

    def get_rate(self) -> str:
        # Read at request time, not at import: the rate is a deployment setting.
        return settings.API_USER_THROTTLE_RATE


class LoginThrottle(ScopedRateThrottle):
    """Token requests per client address (LOGIN_THROTTLE_RATE), on top of the per-username lockout."""

    def get_rate(self) -> str:
        return settings.LOGIN_THROTTLE_RATE
