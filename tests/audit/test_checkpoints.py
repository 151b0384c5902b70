"""Signed checkpoints: the key, publishing only when the head moved, and verification with the public key
alone."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from audit import chain, checkpoints
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
