from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The site itself: health checks, site-wide tasks and the `serve` command."""

    name = "portal"
    verbose_name = "Portal"
