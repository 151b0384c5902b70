from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Organisations, users and their roles."""

    name = "portal.accounts"
    label = "accounts"
