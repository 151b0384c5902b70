from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail: events, the recorder, chain sealing, checkpoints and verification."""

    name = "audit"
