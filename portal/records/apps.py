from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """Consumers, their accounts and transactions, segments, and the synthetic data that fills them."""

    name = "portal.records"
    label = "records"
