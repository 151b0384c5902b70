"""The witness (`manage.py audit_witness`, c2sp.org/tlog-witness) as a regulator runs it: a real subprocess
over HTTP, with its own key and state file, fed checkpoints of a log whose key it was given."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import merkle, notes, witness
from tests.audit.conftest import WitnessProcess

ORIGIN = "log.example.test/audit"
WITNESS = "witness.regulator.example/w1"
LEAVES = [merkle.leaf_hash(f"event {n}".encode()) for n in range(20)]
OTHER = [merkle.leaf_hash(f"forked event {n}".encode()) for n in range(20)]
LOG_KEY = Ed25519PrivateKey.generate()


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


LOG_VERIFIER = notes.verifier_key(ORIGIN, _public(LOG_KEY))


def _note(size: int, leaves: list[bytes] = LEAVES, key: Ed25519PrivateKey = LOG_KEY) -> str:
    return notes.sign(notes.Checkpoint(ORIGIN, size, merkle.root_from_leaf_hashes(leaves[:size])), key)


def _request(old: int, size: int, *, leaves: list[bytes] = LEAVES, note: str | None = None) -> bytes:
    proof = merkle.consistency_proof(merkle.list_subtree(leaves), old, size) if 0 < old < size else []
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + (note or _note(size, leaves))).encode()


@pytest.fixture
def running(tmp_path) -> Iterator[WitnessProcess]:
    process = WitnessProcess(tmp_path, WITNESS, [LOG_VERIFIER])
    process.start()
    yield process
    process.stop()


@pytest.fixture
def cosigned(running) -> Callable[[int, int], str]:
    """Submit the honest log's checkpoint of `size` from `old`; assert it is cosigned."""

    def submit(old: int, size: int) -> str:
        status, _, body = running.post(_request(old, size))
        assert status == 200, body
        return body

    return submit


def test_cosignature_verifies_under_the_witness_key(running, cosigned):
    line = cosigned(0, 5)
    body = notes.body(notes.open_note(_note(5), LOG_VERIFIER))
    timestamp = witness.verify_cosignature(body, line, running.key)
    assert timestamp > 1_700_000_000
    assert line.startswith(f"— {WITNESS} ")
    # The witness's key is what --print-key shows, and the same one after a restart (its key file).
    running.stop()
    running.start()
    assert witness.verify_cosignature(witness.note_body(_note(5)), line, running.key) == timestamp


def test_cosignature_does_not_verify_for_another_checkpoint(running, cosigned):
    line = cosigned(0, 5)
    with pytest.raises(witness.CosignatureInvalid):
        witness.verify_cosignature(witness.note_body(_note(6)), line, running.key)
    other = witness.cosigner_verifier_key(WITNESS, _public(Ed25519PrivateKey.generate()))
    with pytest.raises(witness.CosignatureInvalid):
        witness.verify_cosignature(witness.note_body(_note(5)), line, other)


def test_growth_with_a_consistency_proof_is_cosigned(cosigned):
    cosigned(0, 3)
    cosigned(3, 8)
    cosigned(8, 13)
    cosigned(13, 13)  # the same checkpoint again


def test_fork_of_the_same_size_is_refused(running, cosigned):
    cosigned(0, 8)
    status, content_type, body = running.post(_request(8, 8, leaves=OTHER))
    assert (status, content_type, body) == (409, witness.SIZE_CONTENT_TYPE, "8\n")


def test_fork_of_a_larger_size_is_refused(running, cosigned):
    cosigned(0, 8)
    forked = LEAVES[:5] + OTHER[5:]
    # A proof from 8 in the forked tree does not lead to the root the witness holds for 8.
    status, _, _ = running.post(_request(8, 12, leaves=forked))
    assert status == 422
    cosigned(8, 12)  # the honest log still grows


def test_tampered_consistency_proof_is_refused(running, cosigned):
    cosigned(0, 6)
    body = _request(6, 11).decode().split("\n")
    body[1] = base64.b64encode(bytes(32)).decode()
    status, _, _ = running.post("\n".join(body).encode())
    assert status == 422


def test_rollback_is_refused(running, cosigned):
    cosigned(0, 10)
    # Claiming the witness is at 4 is a conflict that tells the true size; 4 < old is malformed.
    assert running.post(_request(4, 4))[::2] == (409, "10\n")
    assert running.post(_request(10, 4))[0] == 400


def test_rollback_is_refused_after_a_restart(running, cosigned):
    cosigned(0, 10)
    running.stop()
    running.start()
    assert running.post(_request(0, 4))[::2] == (409, "10\n")
    assert running.post(_request(10, 10, leaves=OTHER))[0] == 409
    cosigned(10, 15)
    state = (running.directory / "state.json").read_text()
    assert '"size": 15' in state


def test_note_signed_by_another_key_is_refused(running):
    forged = _note(5, key=Ed25519PrivateKey.generate())
    assert running.post(_request(0, 5, note=forged))[0] == 403
    # Nothing was recorded: the honest log starts at 0.
    assert running.post(_request(0, 5))[0] == 200


def test_tampered_note_body_is_refused(running):
    note = _note(5).replace("\n5\n", "\n6\n", 1)
    assert running.post(_request(0, 6, note=note))[0] == 403


def test_unknown_log_is_not_found(running):
    key = Ed25519PrivateKey.generate()
    note = notes.sign(notes.Checkpoint("other.example/log", 3, merkle.root_from_leaf_hashes(LEAVES[:3])), key)
    assert running.post(_request(0, 3, note=note))[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"old 1\n",
        b"size 0\n\n" + _note(3).encode(),
        b"old 01\n\n" + _note(3).encode(),
        b"old 0\nnot base64!\n\n" + _note(3).encode(),
        b"old 0\nAAAA\n\n" + _note(3).encode(),
        ("old 0\n" + "\n".join([base64.b64encode(bytes(32)).decode()] * 64) + "\n\n" + _note(3)).encode(),
        b"old 0\n\n" + ORIGIN.encode() + b"\nnot a size\nroot\n\n",
    ],
)
def test_malformed_request_is_a_bad_request(running, body):
    status, _, _ = running.post(body)
    assert status == 400
    assert running.post(_request(0, 3))[0] == 200  # and it changed nothing


def test_proof_from_zero_must_be_empty(running):
    body = _request(0, 4).decode().replace("old 0\n", "old 0\n" + base64.b64encode(bytes(32)).decode() + "\n")
    assert running.post(body.encode())[0] == 422


def test_malformed_transparency_log_settings_fail_the_system_check(settings):
    from audit import checks

    good = witness.cosigner_verifier_key(WITNESS, _public(Ed25519PrivateKey.generate()))
    settings.AUDIT_WITNESSES = [("http://witness.example", good)]
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [base64.b64encode(bytes(32)).decode()]
    assert checks.check_transparency_log_settings() == []
    for witnesses, retired in (
        ([("http://witness.example", "not-a-key")], []),
        ([("ftp://witness.example", good)], []),
        ([("http://witness.example", LOG_VERIFIER)], []),  # a log's key (type 0x01) is no witness's key
        ([], ["AAAA"]),
    ):
        settings.AUDIT_WITNESSES, settings.AUDIT_RETIRED_PUBLIC_KEYS = witnesses, retired
        assert [error.id for error in checks.check_transparency_log_settings()] == ["audit.E002"]
