"""Signed checkpoints: the key, publishing only when the head moved, and verification with the public key
alone."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from audit import chain, checkpoints, verify
from audit.models import AuditCheckpoint
from tests.audit.conftest import execute, tampering


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def test_the_development_key_file_is_created_once_readable_by_its_owner_only(settings):
    published = checkpoints.public_key()
    key_file = settings.VAR_DIR / checkpoints.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    checkpoints._private_key.cache_clear()
    assert checkpoints.public_key() == published  # read back, not replaced
    assert list(settings.VAR_DIR.iterdir()) == [key_file]  # no temporary file left behind


def test_a_key_file_others_can_read_is_refused(settings):
    checkpoints.public_key()
    (settings.VAR_DIR / checkpoints.KEY_FILE_NAME).chmod(0o644)
    checkpoints._private_key.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="chmod 600"):
        checkpoints.public_key()


def test_the_configured_signing_key_is_used(settings):
    key = Ed25519PrivateKey.generate()
    settings.AUDIT_SIGNING_KEY = base64.b64encode(_raw_private(key)).decode()
    assert checkpoints.public_key() == _raw_public(key)
    assert not (settings.VAR_DIR / checkpoints.KEY_FILE_NAME).exists()
    settings.AUDIT_SIGNING_KEY = "dG9vIHNob3J0"
    with pytest.raises(ImproperlyConfigured, match="32 raw bytes"):
        checkpoints.public_key()


@pytest.mark.django_db
def test_a_checkpoint_is_published_only_when_the_head_moved(make_event):
    assert checkpoints.checkpoint_publish() is None  # nothing sealed yet
    make_event()
    make_event()
    assert checkpoints.checkpoint_publish() is None  # nothing sealed yet
    chain.events_seal()
    first = checkpoints.checkpoint_publish()
    assert first is not None and first.chain_position == 2 and first.head_hash == chain.head().hash
    assert checkpoints.checkpoint_publish() is None
    make_event()
    chain.events_seal()
    second = checkpoints.checkpoint_publish()
    assert second is not None and second.chain_position == 3
    assert AuditCheckpoint.objects.count() == 2


@pytest.mark.django_db
def test_a_checkpoint_document_verifies_with_the_public_key_alone(make_event):
    make_event()
    chain.events_seal()
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    # What a regulator keeps: a JSON file, read back later by a program that has no secret of the operator's.
    kept = json.loads(json.dumps(checkpoints.checkpoint_document(checkpoint)))
    assert set(kept) == {
        "format",
        "algorithm",
        "chain_position",
        "head_hash",
        "created_at",
        "public_key",
        "signature",
        "tree_size",
        "tree_root",
        "note",
    }
    published = checkpoints.public_key()
    checkpoints.verify_checkpoint(kept, published)

    for field, value in [
        ("head_hash", "0" * 64),
        ("chain_position", 2),
        ("created_at", "2020-01-01T00:00:00.000000Z"),
    ]:
        with pytest.raises(checkpoints.CheckpointInvalid, match="does not verify"):
            checkpoints.verify_checkpoint(kept | {field: value}, published)
    with pytest.raises(checkpoints.CheckpointInvalid, match="chain_position"):
        checkpoints.verify_checkpoint(kept | {"chain_position": "1"}, published)


@pytest.mark.django_db
def test_a_checkpoint_signed_by_another_key_is_refused(make_event):
    make_event()
    chain.events_seal()
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    kept = checkpoints.checkpoint_document(checkpoint)
    forger = Ed25519PrivateKey.generate()
    signed = checkpoints.checkpoint_bytes(
        chain_position=kept["chain_position"], head_hash="1" * 64, created_at=kept["created_at"]
    )
    forged = kept | {
        "head_hash": "1" * 64,
        "public_key": _raw_public(forger),
        "signature": base64.b64encode(forger.sign(signed)).decode(),
    }
    checkpoints.verify_checkpoint(forged, _raw_public(forger))  # valid, but only under the forger's key
    with pytest.raises(checkpoints.CheckpointInvalid, match="another key"):
        checkpoints.verify_checkpoint(forged, checkpoints.public_key())
    with pytest.raises(checkpoints.CheckpointInvalid, match="another key"):
        checkpoints.verify_checkpoint(kept, _raw_public(forger))


@pytest.mark.django_db
def test_no_checkpoint_vouches_for_a_chain_that_does_not_verify(make_event):
    make_event()
    chain.events_seal()
    checkpoints.checkpoint_publish()
    make_event()
    make_event()
    chain.events_seal()
    with tampering():
        execute("UPDATE audit_auditevent SET purpose = 'rewritten' WHERE chain_position = 3")
    with pytest.raises(checkpoints.ChainBroken, match="chain position 3: hash mismatch"):
        checkpoints.checkpoint_publish()
    assert AuditCheckpoint.objects.count() == 1


@pytest.mark.postgres
def test_a_forged_checkpoint_far_beyond_the_head_neither_silences_publishing_nor_passes_verification(
    make_event,
):
    """The security review's finding: a row at position 9000000000000000 signed by another key stopped the
    publisher, while verification said OK (the row was "skipped")."""

    for _ in range(3):
        make_event()
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    other = Ed25519PrivateKey.generate()
    created = "2026-01-01T00:00:00.000000Z"
    signed = checkpoints.checkpoint_bytes(
        chain_position=9000000000000000, head_hash="a" * 64, created_at=created
    )
    raw = other.public_key().public_bytes_raw()
    AuditCheckpoint.objects.create(
        chain_position=9000000000000000,
        head_hash="a" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        algorithm="Ed25519",
        public_key=base64.b64encode(raw).decode(),
        signature=base64.b64encode(other.sign(signed)).decode(),
    )
    for _ in range(2):
        make_event()
    chain.events_seal()
    published = checkpoints.checkpoint_publish()
    assert published is not None and published.chain_position == 5
    result = verify.chain_verify()
    assert not result.ok
    assert result.stored_checkpoints_failed == 1, result.checkpoints
    assert [c.chain_position for c in result.checkpoints if not c.ok] == [9000000000000000]


def test_a_checkpoint_is_a_signed_note_of_the_merkle_tree(make_event, settings):
    from audit import merkle, notes

    settings.AUDIT_LOG_ORIGIN = "oversight.example.cn/audit-log"
    for _ in range(3):
        make_event()
    chain.events_seal()
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None and checkpoint.tree_size == 3
    leaves = [link.canonical for link in chain.iter_sealed()]
    key = checkpoints.log_verifier_key()
    name, _key_id, raw = notes.parse_verifier_key(key)
    assert (
        name == "oversight.example.cn/audit-log"
        and base64.b64encode(raw).decode() == checkpoints.public_key()
    )
    opened = notes.open_note(checkpoint.note, key, expected_origin=name)
    assert (opened.size, opened.root) == (3, merkle.tree_hash(leaves))
    body, signature = checkpoint.note.split("\n\n")
    assert body == f"{name}\n3\n{base64.b64encode(merkle.tree_hash(leaves)).decode()}"
    assert signature.startswith(f"\u2014 {name} ") and signature.endswith("\n")
    # Another key's note, a changed size and another origin are refused.
    forged = notes.sign(notes.Checkpoint(name, 3, opened.root), Ed25519PrivateKey.generate())
    with pytest.raises(notes.NoteInvalid):
        notes.open_note(forged, key)
    with pytest.raises(notes.NoteInvalid):
        notes.open_note(checkpoint.note.replace("\n3\n", "\n4\n", 1), key)
    with pytest.raises(notes.NoteInvalid):
        notes.open_note(checkpoint.note, key, expected_origin="elsewhere.example/log")


def test_an_origin_with_a_scheme_space_or_plus_is_refused(settings):
    from audit import notes

    for bad in ("https://portal.example.org/log", "portal example", "portal+log", ""):
        settings.AUDIT_LOG_ORIGIN = bad
        with pytest.raises(ImproperlyConfigured):
            notes.origin()


def _rotate(settings) -> str:
    """Sign with a new key from now on; returns the public key of the one retired."""
    retired = checkpoints.public_key()
    new = Ed25519PrivateKey.generate().private_bytes_raw()
    settings.AUDIT_SIGNING_KEY = base64.b64encode(new).decode()
    checkpoints._private_key.cache_clear()
    return retired


def test_checkpoints_signed_before_a_key_rotation_verify_under_the_retired_key(make_event, settings):
    for _ in range(3):
        make_event()
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [_rotate(settings)]
    result = verify.chain_verify()
    assert result.ok and result.stored_checkpoints_verified == 1, result.checkpoints
    # The publisher carries on from the retired key's checkpoint, and both verify.
    make_event()
    chain.events_seal()
    latest = checkpoints.checkpoint_publish()
    assert latest is not None and latest.public_key == checkpoints.public_key()
    result = verify.chain_verify()
    assert result.ok and result.stored_checkpoints_verified == 2, result.checkpoints


def test_after_a_rotation_a_checkpoint_of_a_key_not_listed_as_retired_fails(make_event, settings):
    make_event()
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    _rotate(settings)
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [base64.b64encode(bytes(32)).decode()]  # some other key
    result = verify.chain_verify()
    assert not result.ok and result.stored_checkpoints_failed == 1
    assert "or a retired one" in (result.checkpoints[0].problem or "")


def test_a_malformed_retired_key_is_a_configuration_error(settings):
    settings.AUDIT_RETIRED_PUBLIC_KEYS = ["not a key"]
    with pytest.raises(ImproperlyConfigured, match="AUDIT_RETIRED_PUBLIC_KEYS"):
        checkpoints.trusted_public_keys()
