"""Checkpoints of the Merkle tree as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note),
signed with the audit trail's Ed25519 key (audit/checkpoints.py), verifiable with Go's
golang.org/x/mod/sumdb/note.

A note is its body, a blank line, and signature lines::

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    \\n
    — <name> <base64(4-byte key id || 64-byte Ed25519 signature over the body)>\\n

The signer name is the origin (settings.AUDIT_LOG_ORIGIN); the key id is the first 4 bytes of
SHA-256(name || "\\n" || 0x01 || 32-byte public key); the verifier key is
``<name>+<8 hex key id>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ALGORITHM_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
# Schema-less: no "://"; no spaces or "+" (they separate a verifier key's fields); printable ASCII.
_ORIGIN = re.compile(r"[!-*,-~]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


class NoteInvalid(Exception):
    """A note is malformed, names another log, or carries no valid signature of the trusted key."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def check_origin(origin: str) -> str:
    if not _ORIGIN.fullmatch(origin) or "://" in origin:
        raise ImproperlyConfigured(
            f"AUDIT_LOG_ORIGIN must be a schema-less URL without spaces or '+', not {origin!r}"
        )
    return origin


def origin() -> str:
    return check_origin(settings.AUDIT_LOG_ORIGIN)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALGORITHM_ED25519]) + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> str:
    encoded = base64.b64encode(bytes([ALGORITHM_ED25519]) + public).decode("ascii")
    return f"{name}+{key_id(name, public).hex()}+{encoded}"


def body(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.origin}\n{checkpoint.size}\n{base64.b64encode(checkpoint.root).decode('ascii')}\n"


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey, name: str | None = None) -> str:
    """The signed note of a checkpoint, signed by `key` under `name` (by default the origin)."""
    name = checkpoint.origin if name is None else name
    text = body(checkpoint)
    signature = key_id(name, _raw_public(key.public_key())) + key.sign(text.encode("utf-8"))
    return f"{text}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(signature).decode('ascii')}\n"


def parse_verifier_key(verifier: str) -> tuple[str, bytes, bytes]:
    """(name, key id, raw public key) of a verifier key; NoteInvalid if it is not one."""
    parts = verifier.strip().split("+", 2)  # the base64 may hold "+" itself
    if len(parts) != 3 or not parts[0]:
        raise NoteInvalid("a verifier key is <name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise NoteInvalid("the verifier key is not hex and base64") from None
    if len(raw) != 33 or raw[0] != ALGORITHM_ED25519 or len(wanted) != 4:
        raise NoteInvalid("the verifier key is not an Ed25519 key")
    if key_id(name, raw[1:]) != wanted:
        raise NoteInvalid("the verifier key's id does not match its key")
    return name, wanted, raw[1:]


def open_note(note: str, verifier: str, *, expected_origin: str | None = None) -> Checkpoint:
    """Parse a checkpoint note and check it carries a valid signature of `verifier` (lines of other signers,
    e.g. witnesses, are allowed and ignored). Raises NoteInvalid saying what is wrong."""
    name, wanted, public = parse_verifier_key(verifier)
    text, separator, signatures = note.partition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise NoteInvalid("a note is a body, a blank line and signature lines")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise NoteInvalid("a checkpoint body has an origin, a size and a root hash")
    found = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteInvalid("a signature line starts with an em dash and a space")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise NoteInvalid("a signature is not base64") from None
        if signer != name or signature[:4] != wanted:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteInvalid("the log's signature does not verify") from None
        found = True
    if not found:
        raise NoteInvalid("the note carries no signature of the trusted key")
    origin_line, size_line, root_line = lines[0], lines[1], lines[2]
    if expected_origin is not None and origin_line != expected_origin:
        raise NoteInvalid(f"the note's origin is {origin_line!r}, not {expected_origin!r}")
    if not _SIZE.fullmatch(size_line):
        raise NoteInvalid("the tree size is not a decimal number")
    try:
        root = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32:
        raise NoteInvalid("the root hash is not the base64 of 32 bytes")
    return Checkpoint(origin_line, int(size_line), root)


def root_of(note: str) -> bytes:
    """The root hash line of a note already opened (b"" if it has none)."""
    lines = note.split("\n")
    try:
        return base64.b64decode(lines[2], validate=True) if len(lines) > 2 else b""
    except (binascii.Error, ValueError):
        return b""
