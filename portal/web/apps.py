from django.apps import AppConfig


class WebConfig(AppConfig):
    """Server-rendered pages and the admin console's consumer-data pages (thin: policy, then audit note)."""

    name = "portal.web"
    label = "web"
