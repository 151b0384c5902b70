"""`manage.py audit_verify_offline`: check files downloaded from the transparency log without the operator's
database or Go: a checkpoint note under a verifier key, an inclusion proof against it and, optionally, a
consistency proof from a checkpoint kept earlier; or a receipt of the access log (a c2sp.org/tlog-proof file,
audit/receipts.py), which carries its leaf and checkpoint, optionally requiring witnesses' cosignatures. Needs
only Python and `cryptography` (audit/notes.py, audit/merkle.py, audit/witness.py); exits non-zero on any
failure."""

from __future__ import annotations

import base64
import binascii
import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import merkle, notes, receipts, witness


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def _proof(path: str, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        document = json.loads(_read(path))
    except json.JSONDecodeError:
        raise CommandError(f"{path} is not JSON") from None
    if not isinstance(document, dict) or any(key not in document for key in keys):
        raise CommandError(f"{path} must be a JSON object with {', '.join(keys)}")
    for key in keys:
        if key in ("index", "size", "old", "new") and (
            not isinstance(document[key], int) or isinstance(document[key], bool) or document[key] < 0
        ):
            raise CommandError(f"{path}: {key} must be a non-negative integer")
    return document


def _hashes(values: Any, path: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise CommandError(f"{path}: hashes must be a list of base64 strings")
    try:
        return [base64.b64decode(value, validate=True) for value in values]
    except (binascii.Error, ValueError):
        raise CommandError(f"{path}: a hash is not base64") from None


class Command(BaseCommand):
    help = (
        "Verify a checkpoint note (GET /api/v1/audit/log/checkpoint) under the log's verifier key "
        "(GET /api/v1/audit/log/key), an inclusion proof (GET /api/v1/audit/log/inclusion/) against it, and "
        "optionally a consistency proof from a checkpoint kept earlier, offline."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--key", required=True, metavar="FILE", help="The verifier key file.")
        parser.add_argument("--checkpoint", metavar="FILE", help="The checkpoint note.")
        parser.add_argument(
            "--receipt",
            metavar="FILE",
            help="A receipt (.tlog-proof) of the access log.",
        )
        parser.add_argument(
            "--witness-key",
            action="append",
            default=[],
            metavar="KEY",
            help="Require a valid cosignature of this witness (its verifier key) on the checkpoint.",
        )
        parser.add_argument("--inclusion", metavar="FILE", help="An inclusion proof (JSON) against it.")
        parser.add_argument("--old-checkpoint", metavar="FILE", help="A checkpoint note kept earlier.")
        parser.add_argument("--consistency", metavar="FILE", help="The consistency proof (JSON) from it.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = _read(options["key"]).strip()
        if bool(options["checkpoint"]) == bool(options["receipt"]):
            raise CommandError("give either --checkpoint or --receipt")
        receipt = None
        if options["receipt"]:
            try:
                receipt = receipts.decode(_read(options["receipt"]))
            except receipts.ProofMalformed as exc:
                raise CommandError(f"receipt: {exc}") from None
            note = receipt.note
        else:
            note = _read(options["checkpoint"])
        try:
            latest = notes.open_note(note, key)
        except notes.NoteInvalid as exc:
            raise CommandError(f"checkpoint: {exc}") from None
        for witness_key in options["witness_key"]:
            lines = note.partition("\n\n")[2].splitlines()
            try:
                name = witness.parse_cosigner_key(witness_key)[0]
            except witness.CosignatureInvalid as exc:
                raise CommandError(f"witness key: {exc}") from None
            if not any(self._cosigned(note, line, witness_key) for line in lines):
                raise CommandError(f"checkpoint: no valid cosignature of the witness {name}")
            self.stdout.write(f"OK: cosigned by the witness {name}")
        name = notes.parse_verifier_key(key)[0]
        if latest.origin != name:
            raise CommandError(f"checkpoint: the origin {latest.origin!r} is not the log {name!r}")
        self.stdout.write(f"OK: checkpoint of {latest.origin} at size {latest.size}, signed by its key")
        if receipt is not None:
            if receipt.extra is None:
                raise CommandError("receipt: no extra line with the event's bytes")
            try:
                merkle.verify_inclusion(
                    receipt.index, latest.size, merkle.leaf_hash(receipt.extra), receipt.hashes, latest.root
                )
            except ValueError as exc:
                raise CommandError(f"receipt: {exc}") from None
            self.stdout.write(f"OK: event at leaf {receipt.index} is in the tree of size {latest.size}")
        if options["inclusion"]:
            path = options["inclusion"]
            proof = _proof(path, ("index", "size", "leaf", "hashes"))
            if proof["size"] != latest.size:
                raise CommandError(
                    f"{path}: the proof is for size {proof['size']}, the checkpoint's {latest.size}"
                )
            try:
                leaf = base64.b64decode(str(proof["leaf"]), validate=True)
                merkle.verify_inclusion(
                    proof["index"],
                    latest.size,
                    merkle.leaf_hash(leaf),
                    _hashes(proof["hashes"], path),
                    latest.root,
                )
            except (binascii.Error, ValueError) as exc:
                raise CommandError(f"{path}: {exc}") from None
            self.stdout.write(f"OK: event at leaf {proof['index']} is in the tree of size {latest.size}")
        if options["old_checkpoint"] or options["consistency"]:
            if not (options["old_checkpoint"] and options["consistency"]):
                raise CommandError("--old-checkpoint and --consistency go together")
            try:
                old = notes.open_note(_read(options["old_checkpoint"]), key)
            except notes.NoteInvalid as exc:
                raise CommandError(f"old checkpoint: {exc}") from None
            path = options["consistency"]
            proof = _proof(path, ("old", "new", "hashes"))
            if (proof["old"], proof["new"]) != (old.size, latest.size):
                raise CommandError(f"{path}: the proof is not from size {old.size} to {latest.size}")
            try:
                merkle.verify_consistency(
                    old.size, latest.size, old.root, latest.root, _hashes(proof["hashes"], path)
                )
            except ValueError as exc:
                raise CommandError(f"{path}: {exc}") from None
            self.stdout.write(f"OK: the tree of size {latest.size} extends the kept one of size {old.size}")

    @staticmethod
    def _cosigned(note: str, line: str, witness_key: str) -> bool:
        try:
            witness.verify_cosignature(witness.note_body(note), line, witness_key)
        except witness.CosignatureInvalid:
            return False
        return True
