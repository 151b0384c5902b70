from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Access grants, guardian permission tables, the access policy and masking."""

    name = "portal.access"
    label = "access"
