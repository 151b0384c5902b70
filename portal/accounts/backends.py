"""The one authentication path for the web login form and the API token endpoint: password, organisation and
second factor. Both call `django.contrib.auth.authenticate(request, username=…, password=…, otp=…)`, so the
lockout (Axes, the backend before this one) and the audit of failures cover both alike.
"""

from __future__ import annotations

from typing import Any

from axes.utils import reset
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from audit.recorder import note_for
from portal.accounts import mfa, tokens
from portal.accounts.models import User


class PortalBackend(ModelBackend):
    """ModelBackend plus: a non-administrator without an organisation cannot log in, and a user who has
    enrolled a second factor (an authenticator app or recovery codes) needs a valid `otp`.

    A user who must use one (`mfa.mfa_required_for`) but has not enrolled yet is let in with
    `otp_device = None`: the session is then kept to the enrolment pages (MfaEnrolmentMiddleware), and the
    token endpoint issues no token.
    """

    def user_can_authenticate(self, user: Any) -> bool:
        if not super().user_can_authenticate(user):
            return False
        return user.organisation_id is not None or user.role == User.Role.ADMIN

    def get_user(self, user_id: Any) -> User | None:
        """The session's user, with whether their membership is in force (no second query per request)."""
        user = tokens.user_with_membership(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        otp: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not isinstance(user, User):
            return None
        device = None
        # Whoever has enrolled a second factor must present it, whatever MFA_REQUIRED says.
        if mfa.has_second_factor(user):
            if not otp:
                return None
            device = mfa.second_factor_verify(user=user, otp=otp)
            if device is None:
                return None
        # The login signal (accounts.apps) stores this device in the session: the session counts as verified.
        user.otp_device = device  # type: ignore[attr-defined]
        # Both factors passed: earlier failures of this username no longer count towards a lockout.
        reset(username=user.get_username())
        if request is not None:
            note = note_for(request)
            note.action, note.resource_kind = "auth.login", "session"
        return user
