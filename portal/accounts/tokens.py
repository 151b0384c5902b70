"""Issuing, checking and revoking API bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from portal.accounts.models import IN_FORCE_FLAG, ApiToken, User, in_force_subquery

TOKEN_PREFIX = "cop_"  # noqa: S105 - makes a leaked token easy to scan for; not a secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: User) -> tuple[str, ApiToken]:
    """A new token for `user`; the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        key_hash=_digest(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        expires_at=timezone.now() + timedelta(seconds=settings.API_TOKEN_TTL_SECONDS),
        auth_hash=user.get_session_auth_hash(),
    )
    return secret, token


def token_check(secret: str) -> ApiToken | None:
    """The live token for this secret, with its user and organisation, or None: a token stops working when it
    expires or is revoked, and when its user is deactivated, loses their organisation or changes password."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    token = (
        ApiToken.objects.select_related("user__organisation")
        .annotate(user_in_force=in_force_subquery("user__"))
        .filter(key_hash=_digest(secret))
        .first()
    )
    if token is None or token.revoked_at is not None or token.expires_at <= timezone.now():
        return None
    user = token.user
    # Read with the token: whether the user's membership is in force costs no query of its own.
    user.__dict__[IN_FORCE_FLAG] = token.user_in_force
    if not user.is_active or (user.organisation_id is None and user.role != User.Role.ADMIN):
        return None
    if not token.auth_hash or not constant_time_compare(token.auth_hash, user.get_session_auth_hash()):
        return None
    return token


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
