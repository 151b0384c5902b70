"""The per-user rate of consumer-data requests, one budget shared by the API and the web pages (over it: 429
with Retry-After, and the audit event says so)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class UserDataThrottle(UserRateThrottle):
    """API_USER_THROTTLE_RATE per authenticated user, counted in the shared cache (Redis when configured), so
    every web process and thread counts against the same budget."""

    scope = "user"

    def get_rate(self) -> str:
        # Read at request time, not at import: the rate is a deployment setting.
        return settings.API_USER_THROTTLE_RATE
