"""`manage.py audit_witness`: a c2sp.org/tlog-witness for the portal's audit log, run by a regulator on its
own machine with its own key and state file (audit/witness.py). It needs no database and no secret of the
operator's: only the log's published verifier key (GET /api/v1/audit/log/key)."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from audit import notes, witness


class Command(BaseCommand):
    help = (
        "Run a transparency-log witness: POST /add-checkpoint cosigns a checkpoint of a configured log that "
        "is consistent with the one it cosigned last. The key file is generated on first run."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--name", required=True, help="The witness's name, a schema-less URL.")
        parser.add_argument("--key-file", required=True, type=Path, help="Ed25519 key (created if missing).")
        parser.add_argument("--state", required=True, type=Path, help="The state file (created if missing).")
        parser.add_argument(
            "--log", action="append", default=[], metavar="VERIFIER_KEY", help="A log's verifier key."
        )
        parser.add_argument(
            "--log-key-file", action="append", default=[], type=Path, help="A file holding a log's key."
        )
        parser.add_argument("--listen", default="127.0.0.1:8300", help="host:port (default 127.0.0.1:8300).")
        parser.add_argument(
            "--print-key", action="store_true", help="Print the witness's verifier key and exit."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = witness.load_or_create_key(options["key_file"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"key file: {exc}") from None
        try:
            logs = list(options["log"]) + [path.read_text().strip() for path in options["log_key_file"]]
            server_witness = witness.Witness(
                name=options["name"], key=key, logs=logs, state=witness.State(options["state"])
            )
        except (OSError, ValueError, KeyError, ImproperlyConfigured, notes.NoteInvalid) as exc:
            raise CommandError(str(exc)) from None
        if options["print_key"]:
            self.stdout.write(server_witness.verifier_key)
            return
        if not logs:
            raise CommandError("name at least one log with --log or --log-key-file")
        host, _, port = options["listen"].rpartition(":")
        if not host or not port.isdigit():
            raise CommandError("--listen is host:port")
        server = witness.WitnessServer((host, int(port)), server_witness)
        self.stdout.write(
            f"witness {server_witness.verifier_key} listening on {host}:{server.server_address[1]}",
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
