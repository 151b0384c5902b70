from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Organisations, users and their roles; logins, second factors and lockout."""

    name = "portal.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.core import checks

        from portal.accounts import checks as account_checks

        checks.register(account_checks.demo_accounts_check, checks.Tags.database)
        user_logged_in.connect(_stamp_session, dispatch_uid="portal.accounts.session_started")


def _stamp_session(sender, request, user, **kwargs) -> None:
    """A new login's session: the lifetime starts, and a second factor the backend checked (it names the
    device on the user) is remembered, so the session counts as verified whichever login page made it."""
    from django_otp import login as otp_login

    from portal.accounts.middleware import session_started

    if request is not None and hasattr(request, "session"):
        session_started(request.session)
        device = getattr(user, "otp_device", None)
        if device is not None:
            otp_login(request, device)
