from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API (DRF): thin views over the access policy, the services and the selectors."""

    name = "portal.api"
    label = "api"

    def ready(self) -> None:
        # Registers the bearer token's OpenAPI security scheme with drf-spectacular.
        from portal.api import schema  # noqa: F401
