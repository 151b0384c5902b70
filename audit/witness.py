"""A transparency-log witness (c2sp.org/tlog-witness) and its cosignatures (c2sp.org/tlog-cosignature), run by
a regulator on its own machine (`manage.py audit_witness`) with its own Ed25519 key and its own state file.

The witness cosigns a checkpoint only when it carries a valid signature of a log it is configured with and a
consistency proof from the checkpoint it cosigned last; it keeps, per origin, the size and root of that
checkpoint in a state file that is replaced atomically (written, fsync'd, renamed, directory fsync'd) before
it answers, so a restart never makes it forget what it vouched for, and it never cosigns a fork (same size,
other root) or a rollback.

A cosignature line is ``— <witness name> base64(key id || u64 timestamp || Ed25519 signature)`` over
``cosignature/v1\\ntime <timestamp>\\n<checkpoint body>``; the key id is the first four bytes of
SHA-256(name || "\\n" || 0x04 || public key), and the witness's verifier key is
``<name>+<8 hex key id>+<base64(0x04 || public key)>``.

Hand-written on `cryptography` and the standard library's HTTP server: no Python package implements the
witness protocol, and the regulator's machine needs nothing but this project's dependencies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit import merkle, notes

logger = logging.getLogger(__name__)

ALGORITHM_COSIGNATURE = 0x04
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY = 64 * 1024
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


class CosignatureInvalid(Exception):
    """A cosignature line is malformed or does not verify under the witness key."""


# --- Cosignatures -------------------------------------------------------------------------------------------


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def cosigner_key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALGORITHM_COSIGNATURE]) + public).digest()[:4]


def cosigner_verifier_key(name: str, public: bytes) -> str:
    encoded = base64.b64encode(bytes([ALGORITHM_COSIGNATURE]) + public).decode("ascii")
    return f"{name}+{cosigner_key_id(name, public).hex()}+{encoded}"


def parse_cosigner_key(verifier: str) -> tuple[str, bytes, bytes]:
    """(name, key id, raw public key) of a witness's verifier key; CosignatureInvalid if it is not one."""
    parts = verifier.strip().split("+", 2)
    if len(parts) != 3 or not parts[0]:
        raise CosignatureInvalid("a witness key is <name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw, wanted = base64.b64decode(encoded, validate=True), bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise CosignatureInvalid("the witness key is not hex and base64") from None
    if len(raw) != 33 or raw[0] != ALGORITHM_COSIGNATURE or len(wanted) != 4:
        raise CosignatureInvalid("the witness key is not a cosignature/v1 Ed25519 key")
    if cosigner_key_id(name, raw[1:]) != wanted:
        raise CosignatureInvalid("the witness key's id does not match its key")
    return name, wanted, raw[1:]


def cosigned_message(note_body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{note_body}".encode()


def cosign(note_body: str, key: Ed25519PrivateKey, name: str, timestamp: int) -> str:
    """The cosignature line of a checkpoint body (origin, size, root lines, final newline included)."""
    signature = key.sign(cosigned_message(note_body, timestamp))
    raw = cosigner_key_id(name, _raw_public(key.public_key())) + timestamp.to_bytes(8, "big") + signature
    return f"{notes.SIGNATURE_PREFIX}{name} {base64.b64encode(raw).decode('ascii')}\n"


def verify_cosignature(note_body: str, line: str, verifier: str) -> int:
    """Check one cosignature line over a checkpoint body under a witness key; returns its timestamp."""
    name, wanted, public = parse_cosigner_key(verifier)
    line = line.rstrip("\n")
    if not line.startswith(notes.SIGNATURE_PREFIX):
        raise CosignatureInvalid("a signature line starts with an em dash and a space")
    signer, _, encoded = line[len(notes.SIGNATURE_PREFIX) :].partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CosignatureInvalid("the cosignature is not base64") from None
    if signer != name or len(raw) != 4 + 8 + 64 or raw[:4] != wanted:
        raise CosignatureInvalid("the line is not a cosignature of this witness")
    timestamp = int.from_bytes(raw[4:12], "big")
    if timestamp >= 1 << 63:
        raise CosignatureInvalid("the cosignature's timestamp is out of range")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], cosigned_message(note_body, timestamp))
    except InvalidSignature:
        raise CosignatureInvalid("the cosignature does not verify") from None
    return timestamp


def note_body(note: str) -> str:
    """The body of a signed note (every line up to the blank line, final newline included)."""
    text, separator, _ = note.partition("\n\n")
    return text + "\n" if separator else ""


# --- Keys and state -----------------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`: written to a temporary file, fsync'd, renamed over it, directory fsync'd,
    so a crash leaves either the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The witness's private key (base64 of 32 raw bytes), generated into `path` (mode 0600) on first run."""
    if not path.exists():
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        _write_atomically(path, base64.b64encode(raw) + b"\n")
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{path} must hold the base64 of a 32-byte Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(raw)


@dataclass(frozen=True)
class Cosigned:
    size: int
    root: bytes


class State:
    """The latest cosigned checkpoint per origin, in a JSON file replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.logs: dict[str, Cosigned] = {}
        if path.exists():
            document = json.loads(path.read_text())
            for origin, entry in document.get("logs", {}).items():
                self.logs[origin] = Cosigned(int(entry["size"]), base64.b64decode(entry["root"]))

    def save(self) -> None:
        document = {
            "logs": {
                origin: {"size": entry.size, "root": base64.b64encode(entry.root).decode("ascii")}
                for origin, entry in sorted(self.logs.items())
            }
        }
        _write_atomically(self.path, json.dumps(document, indent=1).encode("ascii") + b"\n")


# --- The witness --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _bad(message: str) -> Answer:
    return Answer(HTTPStatus.BAD_REQUEST, message + "\n")


def _malformed(note: str) -> str:
    """What is wrong with the form of a checkpoint note (before any signature is looked at), or ""."""
    text, separator, signatures = note.partition("\n\n")
    lines = text.split("\n")
    if not separator or not signatures.endswith("\n") or len(lines) < 3:
        return "a checkpoint is origin, size and root lines, a blank line and signature lines"
    if not _SIZE.fullmatch(lines[1]):
        return "the checkpoint's size is not a decimal number"
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != merkle.HASH_SIZE:
        return "the checkpoint's root is not the base64 of 32 bytes"
    if not all(line.startswith(notes.SIGNATURE_PREFIX) for line in signatures[:-1].split("\n")):
        return "a signature line starts with an em dash and a space"
    return ""


class Witness:
    def __init__(self, *, name: str, key: Ed25519PrivateKey, logs: list[str], state: State) -> None:
        notes.check_origin(name)
        self.name, self.key, self.state = name, key, state
        # origin -> the log's verifier key (golang.org/x/mod/sumdb/note form, named after the origin)
        self.logs = {notes.parse_verifier_key(log)[0]: log.strip() for log in logs}

    @property
    def verifier_key(self) -> str:
        return cosigner_verifier_key(self.name, _raw_public(self.key.public_key()))

    def add_checkpoint(self, request: bytes) -> Answer:
        """POST /add-checkpoint: the request body is ``old <size>``, proof lines, a blank line, the note."""
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError:
            return _bad("the body is not UTF-8")
        head, separator, note = text.partition("\n\n")
        if not separator:
            return _bad("want an old size line, proof lines, a blank line and a checkpoint")
        lines = head.split("\n")
        old_field, _, old_value = lines[0].partition(" ")
        if old_field != "old" or not _SIZE.fullmatch(old_value):
            return _bad("the first line is 'old <size>'")
        if len(lines) - 1 > MAX_PROOF_LINES:
            return _bad(f"at most {MAX_PROOF_LINES} consistency proof lines")
        try:
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        except (binascii.Error, ValueError):
            return _bad("a consistency proof line is not base64")
        if any(len(value) != 32 for value in proof):
            return _bad("a consistency proof line is not a 32-byte hash")
        origin = note.partition("\n")[0]
        if origin not in self.logs:
            return Answer(HTTPStatus.NOT_FOUND, "unknown log\n")
        problem = _malformed(note)
        if problem:
            return _bad(problem)
        try:
            checkpoint = notes.open_note(note, self.logs[origin], expected_origin=origin)
        except notes.NoteInvalid as exc:
            return Answer(HTTPStatus.FORBIDDEN, f"{exc}\n")
        old = int(old_value)
        if old > checkpoint.size:
            return _bad("the old size is larger than the checkpoint's")
        with self.state.lock:
            latest = self.state.logs.get(origin, Cosigned(0, merkle.EMPTY_ROOT))
            if old != latest.size:
                return Answer(HTTPStatus.CONFLICT, f"{latest.size}\n", SIZE_CONTENT_TYPE)
            if old == checkpoint.size:
                if proof or checkpoint.root != latest.root:
                    logger.warning("refused a fork of %s at size %d", origin, old)
                    return Answer(HTTPStatus.CONFLICT, f"{latest.size}\n", SIZE_CONTENT_TYPE)
            elif old == 0:
                if proof:
                    return Answer(HTTPStatus.UNPROCESSABLE_ENTITY, "the proof from size 0 is empty\n")
            else:
                try:
                    merkle.verify_consistency(old, checkpoint.size, latest.root, checkpoint.root, proof)
                except merkle.ProofError:
                    logger.warning("refused %s at %d: inconsistent with %d", origin, checkpoint.size, old)
                    return Answer(HTTPStatus.UNPROCESSABLE_ENTITY, "the consistency proof does not verify\n")
            self.state.logs[origin] = Cosigned(checkpoint.size, checkpoint.root)
            self.state.save()  # persisted before the cosignature leaves
        return Answer(HTTPStatus.OK, cosign(notes.body(checkpoint), self.key, self.name, int(time.time())))


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"

    def _answer(self, answer: Answer) -> None:
        body = answer.body.encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path.rstrip("/").rsplit("/", 1)[-1] != "add-checkpoint":
            self._answer(Answer(HTTPStatus.NOT_FOUND, "not found\n"))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._answer(_bad(f"a Content-Length of at most {MAX_BODY} bytes is required"))
            return
        self._answer(self.server.witness.add_checkpoint(self.rfile.read(length)))

    def do_GET(self) -> None:
        self._answer(Answer(HTTPStatus.METHOD_NOT_ALLOWED, "POST /add-checkpoint\n"))

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        super().__init__(address, _Handler)
        self.witness = witness
