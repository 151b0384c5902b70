"""`manage.py audit_verify` and the verification service: OK with counts, or the first bad chain position;
kept checkpoints catch a consistent forgery."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit import chain, checkpoints
from audit.models import AuditEvent
from audit.verify import chain_verify
from tests.audit.conftest import execute, tampering

pytestmark = pytest.mark.django_db


def audit_verify(*args: str) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def audit_verify_fails(*args: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", *args, stdout=out)
    return out.getvalue(), str(failure.value)


def sealed_trail(make_event, count: int) -> None:
    for n in range(count):
        make_event(subjects=[f"C{n}"], purpose=f"case {n}")
    chain.events_seal()


def keep_checkpoint(tmp_path, name: str = "kept.json") -> str:
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    path = tmp_path / name
    path.write_text(json.dumps(checkpoints.checkpoint_document(checkpoint)))
    return str(path)


def test_ok_names_the_sealed_and_pending_counts(make_event):
    assert audit_verify().splitlines()[0] == "OK: 0 events sealed, 0 pending"
    sealed_trail(make_event, 3)
    make_event()
    assert audit_verify().splitlines()[0] == "OK: 3 events sealed, 1 pending"


def test_an_event_pending_too_long_is_a_warning_not_a_failure(make_event, settings):
    AuditEvent.objects.create(
        action="test.old", outcome="allowed", occurred_at=timezone.now() - timedelta(minutes=5)
    )
    output = audit_verify()
    assert output.startswith("OK: 0 events sealed, 1 pending")
    assert "WARNING: the oldest pending event is 300 s old" in output
    settings.AUDIT_PENDING_WARNING_SECONDS = 600
    assert "WARNING" not in audit_verify()


@pytest.mark.postgres
def test_an_edited_sealed_event_is_named_by_its_chain_position(make_event):
    sealed_trail(make_event, 5)
    # A superuser switches the rule off and quietly changes who looked at the data.
    execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only_update")
    assert execute("UPDATE audit_auditevent SET actor_username = 'nobody' WHERE chain_position = 4") == 1
    output, error = audit_verify_fails()
    assert output.startswith("FAIL: chain position 4: hash mismatch")
    assert "3 events verified before it" in output
    assert error.startswith("chain position 4: hash mismatch")


def test_a_deleted_event_is_named_as_a_gap(make_event):
    sealed_trail(make_event, 4)
    with tampering():
        execute(
            "DELETE FROM audit_auditsubject WHERE event_id IN "
            "(SELECT id FROM audit_auditevent WHERE chain_position = 2)"
        )
        execute("DELETE FROM audit_auditevent WHERE chain_position = 2")
    output, _ = audit_verify_fails()
    assert output.startswith(
        "FAIL: chain position 2: gap: position 2 is missing (the next sealed event is at 3)"
    )


def test_a_broken_link_is_named(make_event):
    sealed_trail(make_event, 3)
    with tampering():
        execute("UPDATE audit_auditevent SET prev_hash = %s WHERE chain_position = 3", ["e" * 64])
    output, _ = audit_verify_fails()
    assert output.startswith("FAIL: chain position 3: broken link")


def _forge_by_deleting(position: int) -> None:
    """The consistent forgery: delete an event, then have every later one sealed again, so that the plain
    chain verifies; the stored checkpoints and the Merkle tree, which would give it away, go too."""
    with tampering():
        execute("DELETE FROM audit_auditcheckpoint")
        execute("DELETE FROM audit_auditmerklenode")
        execute(
            "DELETE FROM audit_auditsubject WHERE event_id IN "
            "(SELECT id FROM audit_auditevent WHERE chain_position = %s)",
            [position],
        )
        execute("DELETE FROM audit_auditevent WHERE chain_position = %s", [position])
        execute(
            "UPDATE audit_auditevent SET chain_position = NULL, prev_hash = '', hash = '', sealed_at = NULL "
            "WHERE chain_position > %s",
            [position],
        )
    chain.events_seal()


@pytest.mark.postgres
def test_a_consistent_forgery_is_caught_by_a_kept_checkpoint(make_event, tmp_path):
    sealed_trail(make_event, 6)
    kept = keep_checkpoint(tmp_path)  # at position 6
    sealed_trail(make_event, 2)
    _forge_by_deleting(3)
    # The plain chain verifies: 7 events, gap-free, every hash consistent.
    assert audit_verify().splitlines()[0] == "OK: 7 events sealed, 0 pending"

    output, error = audit_verify_fails("--from-checkpoint", kept)
    assert output.startswith("OK: 7 events sealed, 0 pending")
    assert f"FAIL: checkpoint at position 6 (file {kept}): the chain's hash at position 6 differs" in output
    assert error == "checkpoint verification failed"


@pytest.mark.postgres
def test_a_checkpoint_beyond_the_head_fails(make_event, tmp_path):
    sealed_trail(make_event, 4)
    kept = keep_checkpoint(tmp_path)  # at position 4, the head
    _forge_by_deleting(2)  # the head is now position 3
    output, _ = audit_verify_fails("--from-checkpoint", kept)
    assert (
        "FAIL: checkpoint at position 4" in output and "beyond the head of the chain (position 3)" in output
    )


def test_kept_checkpoints_that_match_pass_and_forged_ones_fail(make_event, tmp_path):
    sealed_trail(make_event, 2)
    early = keep_checkpoint(tmp_path, "early.json")
    sealed_trail(make_event, 2)
    late = keep_checkpoint(tmp_path, "late.json")
    output = audit_verify("--from-checkpoint", early, "--from-checkpoint", late)
    assert f"OK: checkpoint at position 2 (file {early})" in output
    assert f"OK: checkpoint at position 4 (file {late})" in output
    assert "stored checkpoints: 2 verified, 0 failed" in output

    document = json.loads((tmp_path / "late.json").read_text())
    (tmp_path / "tampered.json").write_text(json.dumps(document | {"head_hash": "a" * 64}))
    (tmp_path / "broken.json").write_text("{not json")
    output, _ = audit_verify_fails(
        "--from-checkpoint",
        str(tmp_path / "tampered.json"),
        "--from-checkpoint",
        str(tmp_path / "broken.json"),
    )
    assert "tampered.json): the signature does not verify" in output
    assert "broken.json, unreadable" in output


def test_a_regulator_verifies_under_the_key_they_were_given(make_event, tmp_path):
    sealed_trail(make_event, 2)
    kept = keep_checkpoint(tmp_path)
    published = checkpoints.public_key()
    output = audit_verify("--from-checkpoint", kept, "--public-key", published)
    assert f"public key fingerprint: {checkpoints.public_key_fingerprint(published)}" in output
    assert "OK: checkpoint at position 2" in output

    other = Ed25519PrivateKey.generate().public_key()
    other_key = base64.b64encode(
        other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    output, _ = audit_verify_fails("--from-checkpoint", kept, "--public-key", other_key.decode())
    assert "signed by another key than the trusted public key" in output
    # The stored checkpoints fail too: they were signed by a key the verifier does not trust.
    assert "FAIL: checkpoint at position 2 (stored checkpoint): signed by another key" in output


def test_a_stored_checkpoint_that_disagrees_with_the_chain_fails(make_event):
    sealed_trail(make_event, 3)
    checkpoints.checkpoint_publish()
    with tampering():
        execute("UPDATE audit_auditcheckpoint SET head_hash = %s", ["b" * 64])
    output, _ = audit_verify_fails()
    assert "FAIL: checkpoint at position 3 (stored checkpoint): the signature does not verify" in output


def test_verification_reads_the_chain_in_batches_not_per_event(make_event, django_assert_num_queries):
    sealed_trail(make_event, 3)
    checkpoints.public_key()
    # The last stored checkpoint's id and the head, fixing what is verified (2); where the retained chain
    # starts (1: its first event); events (1) and their subjects (1) for the one batch, the empty next batch
    # (1), the stored checkpoints (1: none yet), the count of sealed positions (1), the pending count and
    # age (1); the Merkle tree's recomputed nodes (1 per 4000) and whether it has leaves beyond the chain (1).
    with django_assert_num_queries(11):
        assert chain_verify().ok
    sealed_trail(make_event, 30)
    with django_assert_num_queries(11):
        result = chain_verify()
    assert result.ok and result.sealed == 33 and result.as_dict()["head_hash"] == chain.head().hash
