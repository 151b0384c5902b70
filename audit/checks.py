"""System checks. audit.E001: every append-only trigger of the audit tables is in place, enabled and
unaltered (audit.E002, below: the transparency log's settings are well-formed).

Run it with `manage.py check --deploy --database default` (in CI and before every deployment). It is a
deployment check so that `migrate`, which runs the ordinary checks first, is never blocked by it: migrate is
what puts a missing trigger back (its post_migrate step), also when a new version of the code adds one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from audit import triggers


@register(Tags.database, deploy=True)
def check_append_only_triggers(databases: Iterable[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor not in ("postgresql", "sqlite"):
            continue
        try:
            if triggers.MIGRATION not in MigrationRecorder(connection).applied_migrations():
                continue  # a database not migrated that far has no trigger to miss yet
            problems = triggers.problems(connection)
        except DatabaseError as exc:
            errors.append(
                Error(
                    f"The audit triggers of database {alias!r} could not be inspected: {exc}",
                    id="audit.E001",
                )
            )
            continue
        for trigger, problem in sorted(problems.items(), key=lambda item: item[0].name):
            errors.append(
                Error(
                    f"Append-only trigger {trigger.name} on {trigger.relation} ({trigger.operation}) "
                    f"is {problem} in database {alias!r}: the audit trail can be rewritten.",
                    hint="Find out who changed it; `manage.py migrate` re-creates the triggers.",
                    id="audit.E001",
                )
            )
    return errors


@register()
def check_transparency_log_settings(**kwargs: Any) -> list[CheckMessage]:
    """audit.E002: AUDIT_WITNESSES and AUDIT_RETIRED_PUBLIC_KEYS are well-formed (checked at start, so a typo
    is not first noticed by the sealer or /healthz)."""
    from django.core.exceptions import ImproperlyConfigured

    from audit import checkpoints, cosigning

    errors: list[CheckMessage] = []
    for check in (cosigning.witnesses, checkpoints.retired_public_keys):
        try:
            check()
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="audit.E002"))
    return errors
