"""Signed checkpoints of the hash chain: Ed25519 over (chain position, head hash, time), verifiable by anyone
holding the published public key and nothing else of the operator's.

A checkpoint document (what an auditor or regulator downloads and keeps) is a JSON object::

    {"format": "portal-audit-checkpoint/1", "algorithm": "Ed25519", "chain_position": 1234,
     "head_hash": "<64 hex>", "created_at": "2026-01-31T08:00:00.000000Z",
     "public_key": "<base64 of the 32-byte raw key>", "signature": "<base64 of the 64-byte signature>"}

The signature covers ``checkpoint_bytes``: the JSON object of format, chain_position, head_hash and
created_at only, serialised like the chain's canonical encoding (sorted keys, no whitespace, ASCII).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit import chain, notes, tiles
from audit.models import AuditCheckpoint

logger = logging.getLogger(__name__)

FORMAT = "portal-audit-checkpoint/1"
ALGORITHM = "Ed25519"
KEY_FILE_NAME = "audit-signing-key"
PUBLISH_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"audit.publish_checkpoint").digest()[:8],
    "big",
    signed=True,
)
_HASH = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class CheckpointInvalid(Exception):
    """A checkpoint document is malformed, or its signature does not hold under the trusted public key."""


class ChainBroken(Exception):
    """The chain does not verify from the last checkpoint to the head: nothing is signed."""


# --- Keys ---------------------------------------------------------------------------------------------------


def _decode_raw_key(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{what} must be the base64 of 32 raw bytes")
    return raw


def _key_file_contents(path: Path) -> str:
    """The development key file, created on first use with mode 0600 (atomically: a racing process either
    wins with a complete file or reads the winner's)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        )
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, encoded + b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
            logger.warning("created the development audit signing key %s", path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ImproperlyConfigured(f"{path} must be readable by its owner only (chmod 600)")
    return path.read_text()


@lru_cache(maxsize=4)
def _private_key(configured: str, var_dir: str) -> Ed25519PrivateKey:
    if configured:
        try:
            raw = _decode_raw_key(configured, "AUDIT_SIGNING_KEY")
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
    else:
        # Development and tests only: production refuses to start without AUDIT_SIGNING_KEY.
        path = Path(var_dir) / KEY_FILE_NAME
        try:
            raw = _decode_raw_key(_key_file_contents(path), str(path))
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
    return Ed25519PrivateKey.from_private_bytes(raw)


def signing_key() -> Ed25519PrivateKey:
    return _private_key(settings.AUDIT_SIGNING_KEY, str(settings.VAR_DIR))


def public_key() -> str:
    """The published public key: base64 of its 32 raw bytes."""
    raw = signing_key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def log_verifier_key() -> str:
    """The published key in golang.org/x/mod/sumdb/note form, named after the log's origin."""
    return notes.verifier_key(notes.origin(), base64.b64decode(public_key()))


def trusted_public_keys(current: str | None = None) -> list[str]:
    """The current public key (this installation's, or the one a verifier was given), then the retired ones
    (AUDIT_RETIRED_PUBLIC_KEYS) that signed the checkpoints before a key rotation."""
    current = current or public_key()
    return [current, *(key for key in retired_public_keys() if key != current)]


def retired_public_keys() -> list[str]:
    """AUDIT_RETIRED_PUBLIC_KEYS, each checked to be the base64 of a 32-byte key."""
    retired = list(settings.AUDIT_RETIRED_PUBLIC_KEYS)
    for key in retired:
        try:
            _decode_raw_key(key, "AUDIT_RETIRED_PUBLIC_KEYS")
        except ValueError as exc:
            raise ImproperlyConfigured(f"{exc}: {key!r}") from None
    return retired


def verify_stored(document: Mapping[str, Any], current: str | None = None) -> None:
    """Check a stored checkpoint's signature under the key it names, which must be the current key or a
    retired one; a checkpoint under any other key vouches for nothing (CheckpointInvalid)."""
    key = document.get("public_key")
    if key not in trusted_public_keys(current):
        raise CheckpointInvalid("signed by another key than the trusted public key or a retired one")
    verify_checkpoint(document, str(key))


def checkpoint_valid(checkpoint: AuditCheckpoint, key: str | None = None) -> bool:
    """Whether a stored checkpoint carries a good signature of a trusted key (or of `key`)."""
    try:
        if key is None:
            verify_stored(checkpoint_document(checkpoint))
        else:
            verify_checkpoint(checkpoint_document(checkpoint), key)
    except CheckpointInvalid:
        return False
    return True


def latest_valid(at_most: int, *, before: int | None = None) -> AuditCheckpoint | None:
    """The newest stored checkpoint at or below position `at_most` (below `before`, if given) signed by this
    installation's key or a retired one: rows signed by another key, or beyond the sealed head, vouch for
    nothing and must never stop the publisher (verification reports them)."""
    candidates = AuditCheckpoint.objects.filter(
        public_key__in=trusted_public_keys(), chain_position__lte=at_most
    )
    if before is not None:
        candidates = candidates.filter(chain_position__lt=before)
    for checkpoint in candidates.order_by("-chain_position").iterator(chunk_size=50):
        if checkpoint_valid(checkpoint):
            return checkpoint
    return None


def public_key_fingerprint(key: str) -> str:
    """SHA-256 of the raw public key, hex: short enough to read out over the phone, long enough to trust."""
    return hashlib.sha256(_decode_raw_key(key, "public key")).hexdigest()


# --- Documents ----------------------------------------------------------------------------------------------


def checkpoint_bytes(*, chain_position: int, head_hash: str, created_at: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    document = {
        "format": FORMAT,
        "chain_position": chain_position,
        "head_hash": head_hash,
        "created_at": created_at,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The downloadable JSON document of a stored checkpoint."""
    return {
        "format": FORMAT,
        "algorithm": checkpoint.algorithm,
        "chain_position": checkpoint.chain_position,
        "head_hash": checkpoint.head_hash,
        "created_at": chain.format_time(checkpoint.created_at),
        "public_key": checkpoint.public_key,
        "signature": checkpoint.signature,
        "tree_size": checkpoint.tree_size,
        "tree_root": checkpoint.tree_root,
        "note": checkpoint.note,
    }


def verify_checkpoint(document: Mapping[str, Any], public_key: str) -> None:
    """Check a checkpoint document's form and signature under a trusted public key (base64 raw).

    Raises CheckpointInvalid saying what is wrong. The key in the document is never trusted: whoever forges a
    checkpoint can put their own key there; it must equal the key the verifier was given.
    """
    if not isinstance(document, Mapping):
        raise CheckpointInvalid("not a JSON object")
    if document.get("format") != FORMAT:
        raise CheckpointInvalid(f"format is not {FORMAT}")
    if document.get("algorithm") != ALGORITHM:
        raise CheckpointInvalid(f"algorithm is not {ALGORITHM}")
    position = document.get("chain_position")
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise CheckpointInvalid("chain_position must be a positive integer")
    head_hash, created_at = document.get("head_hash"), document.get("created_at")
    if not isinstance(head_hash, str) or not _HASH.fullmatch(head_hash):
        raise CheckpointInvalid("head_hash must be 64 lower-case hex digits")
    if not isinstance(created_at, str) or not _TIME.fullmatch(created_at):
        raise CheckpointInvalid("created_at must be UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        trusted = _decode_raw_key(public_key, "the trusted public key")
    except ValueError as exc:
        raise CheckpointInvalid(str(exc)) from None
    if document.get("public_key") != base64.b64encode(trusted).decode("ascii"):
        raise CheckpointInvalid("signed by another key than the trusted public key")
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointInvalid("signature is not base64") from None
    signed = checkpoint_bytes(chain_position=position, head_hash=head_hash, created_at=created_at)
    try:
        Ed25519PublicKey.from_public_bytes(trusted).verify(signature, signed)
    except InvalidSignature:
        raise CheckpointInvalid("the signature does not verify") from None


# --- Publishing ---------------------------------------------------------------------------------------------


def checkpoint_publish(*, at_position: int | None = None) -> AuditCheckpoint | None:
    """Sign the current head if it moved since the last checkpoint; returns the new checkpoint, if any.

    Before signing, the links since the last checkpoint are recomputed: the operator signs only a chain that
    verifies, so a checkpoint never vouches for tampering that happened before it. The hash signed is the
    recomputed one. The recomputation runs before the transaction, so that on SQLite it does not hold the
    database's write lock (sealed links never change, so what it verified still holds when signing).

    `at_position` signs that earlier position instead of the head (audit retention does, so that the chain
    kept after a detached month starts right after a checkpoint); the links up to it are recomputed from the
    last checkpoint before it.
    """
    from audit import verify  # verify imports this module for checkpoint documents

    current = chain.head()
    if at_position is not None:
        if not 0 < at_position <= current.position:
            raise ValueError(f"position {at_position} is not sealed (the head is at {current.position})")
        if AuditCheckpoint.objects.filter(chain_position=at_position).exists():
            return None
        target = at_position
        latest = latest_valid(current.position, before=at_position)
    else:
        target = current.position
        latest = latest_valid(current.position)
        if current.position == 0 or (latest is not None and latest.chain_position >= current.position):
            return None
    retained = verify.retained_start().head
    start = (
        chain.Head(latest.chain_position, latest.head_hash)
        if latest is not None and latest.chain_position >= retained.position
        else retained
    )
    verified, problem = verify.segment_verify(start=start, until_position=target)
    if problem is not None:
        raise ChainBroken(f"not signing position {target}: {problem}")
    with transaction.atomic():
        if not chain.try_lock(PUBLISH_LOCK_KEY):
            return None
        # Only this installation's checkpoints within the sealed chain count as taken: anything else is a
        # forgery that verification reports, and must not silence publishing.
        taken = AuditCheckpoint.objects.filter(
            chain_position__gte=verified.position,
            chain_position__lte=current.position,
            public_key=public_key(),
        )
        if at_position is not None:
            taken = taken.filter(chain_position=verified.position)
        if taken.exists():
            return None  # another publisher got there first
        created = timezone.now()
        created_at = chain.format_time(created)
        signed = checkpoint_bytes(
            chain_position=verified.position, head_hash=verified.hash, created_at=created_at
        )
        # The Merkle tree of the same events (leaf index = chain position - 1) as a C2SP signed note.
        root = tiles.root(verified.position)
        note = notes.sign(notes.Checkpoint(notes.origin(), verified.position, root), signing_key())
        checkpoint = AuditCheckpoint.objects.create(
            chain_position=verified.position,
            head_hash=verified.hash,
            created_at=created,
            algorithm=ALGORITHM,
            public_key=public_key(),
            signature=base64.b64encode(signing_key().sign(signed)).decode("ascii"),
            tree_size=verified.position,
            tree_root=base64.b64encode(root).decode("ascii"),
            note=note,
        )
    logger.info("published audit checkpoint at position %d", checkpoint.chain_position)
    return checkpoint


def latest_served() -> AuditCheckpoint | None:
    """The checkpoint the log serves: the newest whose note verifies under this installation's key, within
    the sealed chain (a row that does not verify is never served: verification reports it)."""
    key, origin = log_verifier_key(), notes.origin()
    candidates = (
        AuditCheckpoint.objects.filter(public_key=public_key(), chain_position__lte=chain.head().position)
        .exclude(note="")
        .order_by("-chain_position")
    )
    for checkpoint in candidates.iterator(chunk_size=20):
        try:
            opened = notes.open_note(checkpoint.note, key, expected_origin=origin)
        except notes.NoteInvalid:
            continue
        if opened.size == checkpoint.chain_position == checkpoint.tree_size:
            return checkpoint
    return None
