"""`manage.py audit_partitions`: list the audit trail's monthly partitions (PostgreSQL), create them ahead,
or detach a month that a signed checkpoint covers (retention; refused otherwise)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from audit import partitions, triggers


class Command(BaseCommand):
    help = (
        "List the audit events table's monthly partitions with their events and chain positions; "
        "--create-ahead N creates partitions N months ahead; --detach NAME detaches one month, refused "
        "unless every event in it is sealed, nothing older stays, and a signed checkpoint covers it."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--create-ahead", type=int, metavar="MONTHS")
        parser.add_argument("--detach", metavar="PARTITION")

    def handle(self, *args: Any, **options: Any) -> None:
        if not partitions.partitioned(connection):
            raise CommandError("the audit trail is not partitioned on this database (PostgreSQL only)")
        if options["create_ahead"] is not None:
            created = partitions.event_partitions_create(connection, months_ahead=options["create_ahead"])
            self.stdout.write(f"created: {', '.join(created) or 'nothing (all present)'}")
        if options["detach"]:
            try:
                covering = partitions.event_partition_detach(connection, partition=options["detach"])
            except partitions.RetentionRefused as exc:
                raise CommandError(f"refused: {exc}") from None
            subject_partition = partitions.subject_partition_of(options["detach"])
            subjects = f" and {subject_partition}" if subject_partition else ""
            self.stdout.write(
                f"detached {options['detach']}{subjects} (covered by the checkpoint at position {covering}); "
                "archive the tables (pg_dump -t) and drop them"
            )
        for name in triggers.event_partitions(connection):
            state = partitions.partition_state(connection, name)
            positions = (
                "-" if state.first_position is None else f"{state.first_position}..{state.last_position}"
            )
            self.stdout.write(
                f"{name}: {state.events} events, {state.unsealed} unsealed, positions {positions}"
            )
