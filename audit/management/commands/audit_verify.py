"""`manage.py audit_verify`: recompute the audit hash chain and check kept checkpoints against it; exits
non-zero on any failure."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import checkpoints
from audit.verify import VerifyResult, chain_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain from position 1 (from the oldest retained checkpoint once "
        "older months were detached) and say OK or name the first bad chain "
        "position. Checkpoint files kept earlier (--from-checkpoint) must carry a valid signature under the "
        "public key and match the recomputed chain, so history cannot be rewritten unnoticed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--from-checkpoint",
            dest="checkpoint_files",
            action="append",
            default=[],
            metavar="FILE",
            help="A checkpoint document (JSON) kept earlier; may be given several times.",
        )
        parser.add_argument(
            "--public-key",
            metavar="B64",
            help="The trusted Ed25519 public key (base64 of 32 raw bytes); default: this installation's.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        documents: list[tuple[str, Any]] = []
        for name in options["checkpoint_files"]:
            try:
                with open(name, encoding="utf-8") as kept:
                    documents.append((f"file {name}", json.load(kept)))
            except (OSError, ValueError) as exc:
                # Still listed, and failed: a kept checkpoint that cannot be read vouches for nothing.
                documents.append((f"file {name}, unreadable: {exc}", None))
        if options["public_key"]:
            self.stdout.write(f"public key fingerprint: {_fingerprint(options['public_key'])}")
        result = chain_verify(documents=documents, public_key=options["public_key"] or None)
        self.report(result)
        if not result.ok:
            raise CommandError(
                f"chain position {result.first_bad_position}: {result.problem}"
                if result.first_bad_position is not None
                else "checkpoint verification failed"
            )

    def report(self, result: VerifyResult) -> None:
        if result.start_position:
            self.stdout.write(
                f"older months are detached: verifying from the retained checkpoint at position "
                f"{result.start_position}"
            )
        if result.first_bad_position is None:
            self.stdout.write(f"OK: {result.sealed} events sealed, {result.pending} pending")
        else:
            self.stdout.write(
                f"FAIL: chain position {result.first_bad_position}: {result.problem} "
                f"({result.sealed} events verified before it, {result.pending} pending)"
            )
        if result.pending_warning:
            self.stdout.write(
                f"WARNING: the oldest pending event is {result.oldest_pending_seconds:.0f} s old: "
                "is the sealer (audit.seal_events) running?"
            )
        for check in result.checkpoints:
            position = "?" if check.chain_position is None else check.chain_position
            if check.ok:
                self.stdout.write(f"OK: checkpoint at position {position} ({check.source})")
            else:
                self.stdout.write(
                    f"FAIL: checkpoint at position {position} ({check.source}): {check.problem}"
                )
        if result.stored_checkpoints_verified or result.stored_checkpoints_skipped:
            self.stdout.write(
                f"stored checkpoints: {result.stored_checkpoints_verified} verified, "
                f"{result.stored_checkpoints_failed} failed, "
                f"{result.stored_checkpoints_skipped} signed by another key (not relied on)"
            )


def _fingerprint(key: str) -> str:
    try:
        return checkpoints.public_key_fingerprint(key)
    except ValueError as exc:
        raise CommandError(f"--public-key: {exc}") from None
