"""Tokens and the caller's own identity."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from portal.accounts import mfa
from portal.accounts.lockout import LOGIN_FAILED
from portal.accounts.models import ApiToken, User, users_with_membership
from portal.accounts.tokens import token_create, token_revoke
from portal.api.serializers import MeSerializer, TokenRequestSerializer, TokenSerializer
from portal.api.throttles import LoginThrottle
from portal.api.views.base import PortalView


class TokenView(PortalView):
    """POST: exchange username and password for a bearer token. DELETE: revoke the token in use."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    gate = "me"
    throttle_scope = "login"

    def get_throttles(self):
        # Password guessing is throttled per client address; other calls are not throttled here.
        return [LoginThrottle()] if self.request.method == "POST" else []

    def get_authenticators(self):
        # Logging in needs no credentials, and no session (with its CSRF check) is consulted.
        if self.request is not None and self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    @extend_schema(
        request=TokenRequestSerializer,
        responses={201: TokenSerializer},
        description=(
            "Exchange username, password and, for a user with a second factor, `otp` (a TOTP code or a "
            "recovery code) for a bearer token. After 5 failed logins a username is locked for a while (429)."
        ),
    )
    def post(self, request: Request) -> Response:
        self.note.action = "auth.token.create"
        self.note.resource_kind = "session"
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        username = form.validated_data["username"]
        self.note.actor_username = username
        # The same path as the web login form, so the lockout and its audit cover both.
        user = authenticate(
            request._request,
            username=username,
            password=form.validated_data["password"],
            otp=form.validated_data.get("otp") or None,
        )
        if user is None or not isinstance(user, User):
            # The lockout handler has named the event (auth.login_failed or auth.login_locked); a locked
            # username's answer becomes 429 in Axes' middleware.
            self.note.action = (
                self.note.action if self.note.action.startswith("auth.login_") else LOGIN_FAILED
            )
            raise AuthenticationFailed("Invalid username, password or one-time code.")
        request._request.user = user  # the audit event names who logged in
        if mfa.mfa_required_for(user) and getattr(user, "otp_device", None) is None:
            self.note.action = "auth.mfa_enrolment_required"
            raise PermissionDenied(
                "Two-factor authentication is required: set it up at /accounts/mfa/, then ask for a token."
            )
        secret, token = token_create(user=user)
        self.note.action = "auth.login"
        return Response(
            TokenSerializer({"token": secret, "expires_at": token.expires_at}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        self.note.action = "auth.logout"
        self.note.resource_kind = "session"
        if not isinstance(request.auth, ApiToken):
            raise ValidationError({"Authorization": ["Send the bearer token to revoke."]})
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(PortalView):
    gate = "me"
    action = "me.read"

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = users_with_membership(User.objects.select_related("organisation")).get(pk=self.user.pk)
        return Response(MeSerializer(user).data)
