"""Consumers' resident ID and phone numbers at rest: AES-256-GCM ciphertext, and an HMAC-SHA256 for exact
search.

Importing this module touches no Django machinery (settings are read inside `keyring()` only), so the loader's
helper processes can encrypt with a `Keyring` handed to them without configuring Django.

Ciphertext, as stored: ``<key id>:<base64url(nonce || AES-GCM ciphertext and tag)>``. The key id says which
key decrypts, so several keys coexist while a rotation re-encrypts rows; the additional data binds the
ciphertext to its key id and to the kind of identifier (a phone ciphertext copied into the resident ID column
fails).

Search hash, as stored: ``<key id>:<base64url(HMAC-SHA256(key, kind || 0x00 || normalised value))>``. A
lookup computes the hash under every configured HMAC key, so a re-hash to a new key needs no downtime either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RESIDENT_ID = "resident_id"
PHONE = "phone"
KINDS = (RESIDENT_ID, PHONE)

NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256
HMAC_KEY_MIN_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_AAD_PREFIX = b"portal.identifier.v1\x00"

# Development and tests only (production refuses to start without the settings): key files under VAR_DIR.
KEYS_FILE_NAME = "identifier-keys"
HMAC_KEY_FILE_NAME = "identifier-hmac-key"


class IdentifierKeyError(ValueError):
    """A key list that cannot be used: malformed, a key of the wrong size, or a key id given twice."""


class DecryptionError(ValueError):
    """A stored ciphertext that no configured key opens: unknown key id, wrong key, or altered bytes."""


# --- Normalisation ------------------------------------------------------------------------------------------
_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


def normalise(kind: str, value: str) -> str:
    """The canonical form that is encrypted and hashed: what a person may type for the same number maps to
    one string. Full-width characters become ASCII (NFKC); resident IDs lose spaces and take an upper-case
    check character X; phones lose spaces and punctuation and a +86 / 0086 country prefix."""
    text = unicodedata.normalize("NFKC", value).strip()
    if kind == RESIDENT_ID:
        return "".join(text.split()).upper()
    if kind == PHONE:
        text = _PHONE_PUNCTUATION.sub("", text)
        for prefix in ("+86", "0086"):
            if text.startswith(prefix):
                return text[len(prefix) :]
        return text
    raise ValueError(f"unknown identifier kind {kind!r}")


# --- Keys ---------------------------------------------------------------------------------------------------
def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise IdentifierKeyError("not base64") from None


def parse_keys(
    text: str, name: str, *, min_bytes: int, max_bytes: int | None = None
) -> tuple[tuple[str, bytes], ...]:
    """Comma-separated ``keyid:base64key`` entries, in order (the first is the current key)."""
    keys: list[tuple[str, bytes]] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise IdentifierKeyError(
                f"{name}: each entry must be keyid:base64key, the key id 1-32 of A-Z a-z 0-9 _ -"
            )
        try:
            raw = _b64decode(encoded)
        except IdentifierKeyError:
            raise IdentifierKeyError(f"{name}: the key of {key_id!r} is not base64") from None
        if len(raw) < min_bytes or (max_bytes is not None and len(raw) > max_bytes):
            size = f"{min_bytes}" if max_bytes == min_bytes else f"at least {min_bytes}"
            raise IdentifierKeyError(f"{name}: the key of {key_id!r} must be {size} bytes, not {len(raw)}")
        if any(key_id == known for known, _ in keys):
            raise IdentifierKeyError(f"{name}: key id {key_id!r} is given twice")
        keys.append((key_id, raw))
    if not keys:
        raise IdentifierKeyError(f"{name}: no key given")
    return tuple(keys)


def new_key_entry(key_id: str, size: int = KEY_BYTES) -> str:
    """A fresh ``keyid:base64key`` entry (for key files and for operators adding a key)."""
    if not _KEY_ID.fullmatch(key_id):
        raise IdentifierKeyError(f"bad key id {key_id!r}")
    return f"{key_id}:{base64.b64encode(os.urandom(size)).decode('ascii')}"


@lru_cache(maxsize=16)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def _aad(kind: str, key_id: str) -> bytes:
    return _AAD_PREFIX + kind.encode("ascii") + b"\x00" + key_id.encode("ascii")


@dataclass(frozen=True)
class Keyring:
    """The encryption keys (first encrypts, all decrypt) and the HMAC keys (first hashes, all are searched).

    Holds only bytes, so it pickles: the loader hands it to its helper processes."""

    encryption_keys: tuple[tuple[str, bytes], ...]
    hmac_keys: tuple[tuple[str, bytes], ...]
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.encryption_keys or not self.hmac_keys:
            raise IdentifierKeyError("a keyring needs at least one encryption key and one HMAC key")
        object.__setattr__(self, "_by_id", dict(self.encryption_keys))

    @property
    def current_key_id(self) -> str:
        return self.encryption_keys[0][0]

    @property
    def current_hmac_key_id(self) -> str:
        return self.hmac_keys[0][0]

    def encrypt(self, kind: str, value: str) -> str:
        """Ciphertext of the normalised value under the current key, with a fresh random nonce."""
        key_id, key = self.encryption_keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = _aead(key).encrypt(nonce, normalise(kind, value).encode("utf-8"), _aad(kind, key_id))
        return f"{key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, kind: str, token: str) -> str:
        key_id, sep, body = token.partition(":")
        key = self._by_id.get(key_id)
        if not sep or key is None:
            raise DecryptionError(f"no configured identifier key has the id {key_id[:32]!r}")
        try:
            raw = _b64decode(body)
        except IdentifierKeyError:
            raise DecryptionError("the ciphertext is not base64") from None
        if len(raw) < NONCE_BYTES + 16:
            raise DecryptionError("the ciphertext is too short")
        try:
            plain = _aead(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(kind, key_id))
        except InvalidTag:
            raise DecryptionError(f"the ciphertext does not authenticate under key {key_id!r}") from None
        return plain.decode("utf-8")

    def key_id_of(self, token: str) -> str:
        return token.partition(":")[0]

    def digest(self, kind: str, value: str, key_index: int = 0) -> str:
        """The search hash of the normalised value under one HMAC key (the current one by default)."""
        key_id, key = self.hmac_keys[key_index]
        message = kind.encode("ascii") + b"\x00" + normalise(kind, value).encode("utf-8")
        return f"{key_id}:{_b64encode(hmac.new(key, message, hashlib.sha256).digest())}"

    def digests(self, kind: str, value: str) -> list[str]:
        """The hash of the value under every HMAC key: what an exact search compares the column with."""
        return [self.digest(kind, value, index) for index in range(len(self.hmac_keys))]


def _key_file_contents(path: Path, key_id: str, size: int) -> str:
    """The development key file, created (race-free, owner-only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, new_key_entry(key_id, size).encode("ascii") + b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race: everyone uses its key
        finally:
            temporary.unlink()
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise IdentifierKeyError(f"{path} must be readable by its owner only (chmod 600)")
    return path.read_text().strip()


@lru_cache(maxsize=8)
def _keyring(keys: str, hmac_keys: str, var_dir: str) -> Keyring:
    if not keys:
        keys = _key_file_contents(Path(var_dir) / KEYS_FILE_NAME, "dev1", KEY_BYTES)
    if not hmac_keys:
        hmac_keys = _key_file_contents(Path(var_dir) / HMAC_KEY_FILE_NAME, "dev1", HMAC_KEY_MIN_BYTES)
    return Keyring(
        parse_keys(keys, "IDENTIFIER_KEYS", min_bytes=KEY_BYTES, max_bytes=KEY_BYTES),
        parse_keys(hmac_keys, "IDENTIFIER_HMAC_KEY", min_bytes=HMAC_KEY_MIN_BYTES),
    )


# The keyring of the current settings, kept until one of them changes: keyring() runs once per identifier a
# page decrypts (two per consumer row), and reading three settings through the lazy settings object cost more
# than the decryption itself.
_KEYRING_SETTINGS = frozenset({"IDENTIFIER_KEYS", "IDENTIFIER_HMAC_KEY", "VAR_DIR"})
_current: list[Keyring] = []


def _forget_keyring(*, setting: str, **_kwargs: object) -> None:
    if setting in _KEYRING_SETTINGS:
        _current.clear()


def keyring() -> Keyring:
    """The keyring of the settings (IDENTIFIER_KEYS, IDENTIFIER_HMAC_KEY), or of the development key files."""
    if _current:
        return _current[0]
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import setting_changed

    setting_changed.connect(_forget_keyring, dispatch_uid="portal.records.identifiers.keyring")
    try:
        found = _keyring(settings.IDENTIFIER_KEYS, settings.IDENTIFIER_HMAC_KEY, str(settings.VAR_DIR))
    except IdentifierKeyError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    _current[:] = [found]
    return found


def search_hashes(kind: str, term: str) -> list[str]:
    """What the `<kind>_hmac` column of a consumer with this identifier holds, under any configured key."""
    return keyring().digests(kind, term)


# --- Set-based rewrites (migrations and key rotation) -----------------------------------------------------
CONSUMER_TABLE = "records_consumer"
# Columns of records_consumer, by role: the ciphertext and the search hash of each kind.
ENCRYPTED_COLUMNS = {RESIDENT_ID: "resident_id_encrypted", PHONE: "phone_encrypted"}
HASH_COLUMNS = {RESIDENT_ID: "resident_id_hmac", PHONE: "phone_hmac"}


def update_from_values_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    """One UPDATE for a batch: ``UPDATE table SET col = v.columnN … FROM (VALUES (id, …), …) WHERE id``.

    VALUES columns are named column1, column2, … by PostgreSQL and SQLite alike; column1 is the row id.
    Table and column names come from this module, never from input."""
    marks = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    assignments = ", ".join(f"{column} = v.column{index}" for index, column in enumerate(columns, start=2))
    values = ", ".join([marks] * rows)
    return f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"  # noqa: S608
