from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    """The audit trail: events, the recorder, chain sealing, checkpoints and verification."""

    name = "audit"

    def ready(self) -> None:
        from audit import checks  # noqa: F401  (registers audit.E001, audit.E002)

        post_migrate.connect(reinstall_triggers, sender=self, dispatch_uid="audit.reinstall_triggers")


def reinstall_triggers(*, using: str, **kwargs: Any) -> None:
    """Put back any append-only trigger that a migration took away.

    SQLite rebuilds a table to alter it (copy, drop, rename) and the drop takes the table's triggers with it;
    an added column would also fall outside the SQLite rule's column list. Idempotent: only what is missing or
    out of date is re-created, so on a healthy database this reads the catalogue and changes nothing.
    """
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from audit import triggers

    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        return
    if triggers.MIGRATION not in MigrationRecorder(connection).applied_migrations():
        return
    triggers.install(connection)
