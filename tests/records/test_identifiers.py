"""Encryption and search hashes of resident ID and phone numbers: round trips, refusals, normalisation."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from django.core.exceptions import FieldError, ImproperlyConfigured

from portal.records import identifiers
from portal.records.identifiers import PHONE, RESIDENT_ID, DecryptionError, IdentifierKeyError, Keyring
from portal.records.models import Consumer

RID = "11010519491231002X"
MOBILE = "13812345678"


def key(key_id: str, size: int = 32) -> tuple[str, bytes]:
    return key_id, os.urandom(size)


def ring(*key_ids: str, hmac_ids: tuple[str, ...] = ("h1",)) -> Keyring:
    return Keyring(tuple(key(k) for k in key_ids), tuple(key(h) for h in hmac_ids))


def entry(key_id: str, raw: bytes) -> str:
    return f"{key_id}:{base64.b64encode(raw).decode()}"


def test_round_trip_and_key_id_in_the_ciphertext():
    keys = ring("k1")
    token = keys.encrypt(RESIDENT_ID, RID)
    assert token.startswith("k1:") and RID not in token
    assert keys.decrypt(RESIDENT_ID, token) == RID


def test_each_encryption_uses_a_fresh_nonce():
    keys = ring("k1")
    assert keys.encrypt(PHONE, MOBILE) != keys.encrypt(PHONE, MOBILE)


def test_tampered_ciphertext_is_refused():
    keys = ring("k1")
    key_id, _, body = keys.encrypt(PHONE, MOBILE).partition(":")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01  # one bit of the tag
    tampered = f"{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(DecryptionError, match="does not authenticate"):
        keys.decrypt(PHONE, tampered)
    raw[-1] ^= 0x01
    raw[identifiers.NONCE_BYTES] ^= 0x80  # one bit of the ciphertext proper
    with pytest.raises(DecryptionError):
        keys.decrypt(PHONE, f"{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}")


def test_unknown_key_id_is_refused():
    token = ring("k1").encrypt(RESIDENT_ID, RID)
    with pytest.raises(DecryptionError, match="no configured identifier key"):
        ring("k2").decrypt(RESIDENT_ID, token)


def test_a_key_id_naming_the_wrong_key_is_refused():
    """The key id is authenticated: relabelling a ciphertext with another configured key's id fails."""
    keys = ring("k1", "k2")
    token = keys.encrypt(RESIDENT_ID, RID)
    with pytest.raises(DecryptionError, match="does not authenticate under key 'k2'"):
        keys.decrypt(RESIDENT_ID, "k2:" + token.partition(":")[2])


def test_a_phone_ciphertext_does_not_open_as_a_resident_id():
    keys = ring("k1")
    with pytest.raises(DecryptionError):
        keys.decrypt(RESIDENT_ID, keys.encrypt(PHONE, MOBILE))


def test_garbage_is_refused_not_crashed_on():
    keys = ring("k1")
    for token in ("", "k1", "k1:", "k1:!!!", "k1:AAAA"):
        with pytest.raises(DecryptionError):
            keys.decrypt(PHONE, token)


def test_old_keys_keep_decrypting_after_a_new_key_is_added():
    old = key("k1")
    before = Keyring((old,), (key("h1"),))
    token = before.encrypt(PHONE, MOBILE)
    after = Keyring((key("k2"), old), before.hmac_keys)
    assert after.decrypt(PHONE, token) == MOBILE
    assert after.encrypt(PHONE, MOBILE).startswith("k2:")


@pytest.mark.parametrize(
    ("kind", "typed", "canonical"),
    [
        (RESIDENT_ID, "11010519491231002x", RID),
        (RESIDENT_ID, " 110105 19491231 002X ", RID),
        (RESIDENT_ID, "１１０１０５１９４９１２３１００２ｘ", RID),  # full-width, as typed with a Chinese IME
        (PHONE, "138 1234 5678", MOBILE),
        (PHONE, "138-1234-5678", MOBILE),
        (PHONE, "+86 138 1234 5678", MOBILE),
        (PHONE, "0086 13812345678", MOBILE),
        (PHONE, "１３８１２３４５６７８", MOBILE),
    ],
)
def test_normalisation(kind, typed, canonical):
    assert identifiers.normalise(kind, typed) == canonical
    keys = ring("k1")
    assert keys.digest(kind, typed) == keys.digest(kind, canonical)
    assert keys.decrypt(kind, keys.encrypt(kind, typed)) == canonical


def test_normalisation_keeps_what_is_not_the_same_number():
    assert identifiers.normalise(PHONE, "x13812345678") != MOBILE
    assert identifiers.normalise(RESIDENT_ID, RID[:-1]) != RID


def test_hashes_are_keyed_and_separate_the_kinds():
    keys = ring("k1", hmac_ids=("h1",))
    assert keys.digest(PHONE, MOBILE) == keys.digest(PHONE, MOBILE)
    assert keys.digest(PHONE, MOBILE).startswith("h1:")
    assert keys.digest(PHONE, "12345") != keys.digest(RESIDENT_ID, "12345")
    # Another key under the same id: another hash.
    assert ring("k1", hmac_ids=("h1",)).digest(PHONE, MOBILE) != keys.digest(PHONE, MOBILE)


def test_a_search_covers_every_hmac_key():
    keys = ring("k1", hmac_ids=("h2", "h1"))
    hashes = keys.digests(PHONE, MOBILE)
    assert [h.partition(":")[0] for h in hashes] == ["h2", "h1"]
    assert hashes == [keys.digest(PHONE, MOBILE, 0), keys.digest(PHONE, MOBILE, 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no key given"),
        ("k1", "keyid:base64key"),
        ("bad id:" + "A" * 44, "keyid:base64key"),
        ("k1:not*base64", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes, not 5"),
        (f"{entry('k1', os.urandom(32))},{entry('k1', os.urandom(32))}", "given twice"),
    ],
)
def test_malformed_key_lists_are_refused(text, message):
    with pytest.raises(IdentifierKeyError, match=message):
        identifiers.parse_keys(text, "IDENTIFIER_KEYS", min_bytes=32, max_bytes=32)


def test_key_lists_keep_their_order():
    first, second = os.urandom(32), os.urandom(32)
    parsed = identifiers.parse_keys(
        f"{entry('new', first)}, {entry('old', second)}", "IDENTIFIER_KEYS", min_bytes=32, max_bytes=32
    )
    assert parsed == (("new", first), ("old", second))


def test_the_settings_keys_are_used(settings):
    encryption, hashing = os.urandom(32), os.urandom(32)
    settings.IDENTIFIER_KEYS = entry("prod7", encryption)
    settings.IDENTIFIER_HMAC_KEY = entry("hp3", hashing)
    keys = identifiers.keyring()
    assert keys.encryption_keys == (("prod7", encryption),)
    assert keys.hmac_keys == (("hp3", hashing),)
    settings.IDENTIFIER_KEYS = "prod7:dG9vIHNob3J0"
    with pytest.raises(ImproperlyConfigured, match="must be 32 bytes"):
        identifiers.keyring()


def test_development_keys_are_generated_once_and_private(settings, tmp_path):
    settings.IDENTIFIER_KEYS = settings.IDENTIFIER_HMAC_KEY = ""
    settings.VAR_DIR = tmp_path
    keys = identifiers.keyring()
    for name in (identifiers.KEYS_FILE_NAME, identifiers.HMAC_KEY_FILE_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    identifiers._keyring.cache_clear()
    assert identifiers.keyring() == keys  # read back from the files, not generated again


def test_filtering_on_an_encrypted_column_is_refused():
    """A randomised ciphertext never equals anything: a filter on it would silently find nothing."""
    # As keyword dictionaries: the type checker's Django plugin resolves literal lookups, and would hit the
    # same refusal.
    with pytest.raises(FieldError, match="resident_id_hmac"):
        Consumer.objects.filter(**{"resident_id": RID})
    with pytest.raises(FieldError, match="phone_hmac"):
        Consumer.objects.filter(**{"phone__startswith": "138"})
