"""The transparency log's endpoints (SPEC §4 "Verifiable by outsiders"): who may read them, what they answer,
and that every answer checks with the RFC 6962 and signed-note verifiers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit import chain, checkpoints, cosigning, merkle, notes, receipts, selectors, tasks, witness
from audit.models import AuditCheckpoint, AuditCosignature, AuditEvent
from portal.access import services as access_services
from portal.accounts.models import User
from portal.api.views import audit as views_audit
from tests.api.conftest import PERSONAS
from tests.audit.conftest import WitnessProcess

CCF = "chengdu-chongqing-consumer-finance"
LOG = "/api/v1/audit/log"


@pytest.fixture
def published(demo):
    chain.events_seal()
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    return checkpoint


def _hashes(values):
    return [base64.b64decode(value) for value in values]


def test_the_log_endpoints_by_role(api, published):
    failures = []
    for path in (f"{LOG}/checkpoint", f"{LOG}/key", f"{LOG}/consistency/?old=1&new=1"):
        for role in PERSONAS:
            expected = 200 if role in {"regulator", "regulator2", "auditor"} else 403
            status = api(role).get(path).status_code
            if status != expected:
                failures.append(f"{role} GET {path}: {status}, expected {expected}")
        if (status := api(None).get(path).status_code) != 401:
            failures.append(f"anonymous GET {path}: {status}, expected 401")
    assert not failures, "\n".join(failures)


def test_the_checkpoint_note_verifies_under_the_published_key(api, published):
    key = api("regulator").get(f"{LOG}/key")
    assert key["Content-Type"].startswith("text/plain")
    note = api("regulator").get(f"{LOG}/checkpoint")
    assert note["Content-Type"].startswith("text/plain")
    opened = notes.open_note(note.content.decode(), key.content.decode().strip())
    assert opened.size == published.chain_position
    leaves = [link.canonical for link in chain.iter_sealed(until_position=opened.size)]
    assert opened.root == merkle.tree_hash(leaves)


def test_inclusion_and_consistency_proofs_check(api, published):
    size = published.chain_position
    root = base64.b64decode(published.tree_root)
    body = api("auditor").get(f"{LOG}/inclusion/?index=0").json()
    assert (body["index"], body["size"]) == (0, size)
    leaf = merkle.leaf_hash(base64.b64decode(body["leaf"]))
    merkle.verify_inclusion(0, size, leaf, _hashes(body["hashes"]), root)
    old_leaves = [link.canonical for link in chain.iter_sealed(until_position=1)]
    body = api("auditor").get(f"{LOG}/consistency/?old=1&new={size}").json()
    merkle.verify_consistency(1, size, merkle.tree_hash(old_leaves), root, _hashes(body["hashes"]))


def test_a_regulator_gets_proofs_only_for_events_it_may_read(api, demo, published):
    api("regulator").get(f"/api/v1/consumers/{demo.consumer_in(CCF).public_id}/")
    api("compliance").get("/api/v1/audit/events/")  # another organisation's event, no consumer of its
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    sealed = AuditEvent.objects.filter(chain_position__isnull=False)
    own = sealed.filter(actor_username="regulator").latest("chain_position").chain_position or 0
    other = sealed.filter(actor_username="compliance").latest("chain_position").chain_position or 0
    assert api("regulator").get(f"{LOG}/inclusion/?index={own - 1}").status_code == 200
    assert api("regulator").get(f"{LOG}/inclusion/?index={other - 1}").status_code == 404
    assert api("regulator2").get(f"{LOG}/inclusion/?index={own - 1}").status_code == 404
    assert api("auditor").get(f"{LOG}/inclusion/?index={other - 1}").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "index"),
        ("index=-1", "index"),
        ("index=abc", "index"),
        ("index=99999999999999999999", "index"),
        ("index=0&size=0", "size"),
        ("index=0&size=999999999", "size"),
        ("index=5&size=1", "index"),
        ("index=0&sort=1", "sort"),
    ],
)
def test_bad_inclusion_parameters_are_400_naming_the_field(api, published, query, field):
    response = api("auditor").get(f"{LOG}/inclusion/?{query}")
    assert response.status_code == 400 and field in response.json(), response.content


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("new=1", "old"),
        ("old=1", "new"),
        ("old=3&new=1", "old"),
        ("old=1&new=999999999", "new"),
        ("old=0&new=1", "old"),
        ("old=1&new=x", "new"),
    ],
)
def test_bad_consistency_parameters_are_400_naming_the_field(api, published, query, field):
    response = api("auditor").get(f"{LOG}/consistency/?{query}")
    assert response.status_code == 400 and field in response.json(), response.content


def test_tiles_are_the_stored_hashes(api, published):
    size = published.chain_position
    leaves = [merkle.leaf_hash(link.canonical) for link in chain.iter_sealed(until_position=size)]
    width = min(size, 256)
    path = f"{LOG}/tile/0/000" + ("" if width == 256 else f".p/{width}")
    response = api("auditor").get(path)
    assert response.status_code == 200, response.content
    assert response.content == b"".join(leaves[:width])
    assert api("auditor").get(f"{LOG}/tile/0/x999/999").status_code == 404
    assert api("auditor").get(f"{LOG}/tile/9/000").status_code == 400
    assert api("auditor").get(f"{LOG}/tile/0/12").status_code == 400
    assert api("auditor").get(f"{LOG}/tile/0/000.p/300").status_code == 400


def test_log_reads_are_audited(api, published):
    api("auditor").get(f"{LOG}/inclusion/?index=0")
    event = AuditEvent.objects.filter(action="audit.log.inclusion").latest("id")
    assert (event.actor_username, event.status) == ("auditor", 200)


def test_access_log_rows_carry_their_leaf_index_and_proof_link(api, demo):
    inside = demo.consumer_in(CCF)
    api("regulator").get(f"/api/v1/consumers/{inside.public_id}/")
    rows = api("auditor").get(f"/api/v1/consumers/{inside.public_id}/access-log/").json()["results"]
    assert rows and all(row["leaf_index"] is None and row["inclusion_proof"] is None for row in rows)
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    row = api("regulator").get(f"/api/v1/consumers/{inside.public_id}/access-log/").json()["results"][-1]
    event = AuditEvent.objects.get(pk=row["id"])
    assert row["leaf_index"] == (event.chain_position or 0) - 1
    assert row["inclusion_proof"] == f"{LOG}/inclusion/?index={row['leaf_index']}"
    proof = api("regulator").get(row["inclusion_proof"])
    assert proof.status_code == 200 and proof.json()["index"] == row["leaf_index"]


def test_the_offline_verifier_checks_downloaded_files_and_refuses_tampering(api, published, tmp_path):
    from django.core.management import CommandError, call_command

    kept = api("auditor").get(f"{LOG}/checkpoint").content.decode()
    api("auditor").get(f"{LOG}/key")
    chain.events_seal()
    latest = checkpoints.checkpoint_publish()
    assert latest is not None
    files = {
        "key": api("auditor").get(f"{LOG}/key").content.decode(),
        "old": kept,
        "new": api("auditor").get(f"{LOG}/checkpoint").content.decode(),
        "inclusion": api("auditor").get(f"{LOG}/inclusion/?index=0").content.decode(),
        "consistency": api("auditor")
        .get(f"{LOG}/consistency/?old={published.chain_position}&new={latest.chain_position}")
        .content.decode(),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = {
        "key": str(tmp_path / "key"),
        "checkpoint": str(tmp_path / "new"),
        "inclusion": str(tmp_path / "inclusion"),
        "old_checkpoint": str(tmp_path / "old"),
        "consistency": str(tmp_path / "consistency"),
    }
    call_command("audit_verify_offline", **args)
    proof = json.loads(files["inclusion"])
    leaf = bytearray(base64.b64decode(proof["leaf"]))
    leaf[5] ^= 1
    (tmp_path / "tampered").write_text(json.dumps({**proof, "leaf": base64.b64encode(leaf).decode()}))
    with pytest.raises(CommandError, match="inclusion proof does not lead"):
        call_command("audit_verify_offline", **{**args, "inclusion": str(tmp_path / "tampered")})
    # A rollback: the older note presented as the latest.
    with pytest.raises(CommandError):
        call_command(
            "audit_verify_offline", **{**args, "checkpoint": str(tmp_path / "old"), "inclusion": None}
        )


def test_a_checkpoint_whose_note_does_not_verify_is_never_served(api, published):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.audit.conftest import tampering

    good = api("auditor").get(f"{LOG}/checkpoint").content.decode()
    chain.events_seal()
    forged_root = b"\x05" * 32
    size = chain.head().position
    forged = notes.sign(notes.Checkpoint(notes.origin(), size, forged_root), Ed25519PrivateKey.generate())
    with tampering():
        AuditCheckpoint.objects.create(
            chain_position=size,
            head_hash=chain.head().hash,
            created_at=published.created_at,
            algorithm="Ed25519",
            public_key=published.public_key,
            signature=published.signature,
            tree_size=size,
            tree_root=base64.b64encode(forged_root).decode(),
            note=forged,
        )
    assert api("auditor").get(f"{LOG}/checkpoint").content.decode() == good


def test_a_regulator_gets_no_proof_of_another_organisations_look_at_its_consumer(api, demo, published):
    """The leaf names the other organisation's user and purpose, which the regulator's access log shows as a
    count only: no proof either, even for a consumer the regulator holds view_records on."""
    consumer = demo.consumer_in(CCF)
    # regulator2's organisation is granted this one consumer (a case-level grant), through the workflow.
    grant = access_services.grant_request(
        requester=User.objects.get(username="regulator2"),
        permissions=["view_records"],
        purpose="Complaint case review",
        legal_basis="Supervisory inquiry",
        case_reference="NFRA-CASE-1",
        valid_until=timezone.now() + timedelta(days=30),
        consumer=consumer,
    )
    access_services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    assert api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 200
    assert api("regulator2").get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 200
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    looked = AuditEvent.objects.filter(actor_username="regulator2", subjects__public_id=consumer.public_id)
    position = looked.latest("chain_position").chain_position or 0
    assert position > 0
    assert api("regulator").get(f"{LOG}/inclusion/?index={position - 1}").status_code == 404
    assert api("regulator2").get(f"{LOG}/inclusion/?index={position - 1}").status_code == 200
    assert api("auditor").get(f"{LOG}/inclusion/?index={position - 1}").status_code == 200


# --- Witnesses (c2sp.org/tlog-witness): a real `manage.py audit_witness` subprocess per test -----------

WITNESS = "witness.regulator.example/w1"


@pytest.fixture
def log_witness(tmp_path, settings) -> Iterator[WitnessProcess]:
    """A witness configured with this installation's log key, in AUDIT_WITNESSES."""
    process = WitnessProcess(tmp_path / "witness", WITNESS, [checkpoints.log_verifier_key()])
    process.start()
    settings.AUDIT_WITNESSES = [(process.url, process.key)]
    yield process
    process.stop()


def _grow_and_publish(api):
    api("auditor").get(f"{LOG}/key")  # an audited read: one more event
    chain.events_seal()
    checkpoint = checkpoints.checkpoint_publish()
    assert checkpoint is not None
    return checkpoint


def test_a_witness_cosigns_and_the_checkpoint_is_served_with_its_cosignature(api, published, log_witness):
    assert tasks.cosign_checkpoint() == {WITNESS: "cosigned"}
    later = _grow_and_publish(api)
    # The second submission carries a consistency proof from the size the witness cosigned first.
    assert tasks.cosign_checkpoint() == {WITNESS: "cosigned"}
    assert tasks.cosign_checkpoint() == {WITNESS: "cosigned"}  # idempotent: nothing is sent again
    assert AuditCosignature.objects.filter(checkpoint=later).count() == 1
    served = api("regulator").get(f"{LOG}/checkpoint").content.decode()
    body = witness.note_body(served)
    assert notes.open_note(served, checkpoints.log_verifier_key()).size == later.tree_size
    cosignature = served.split("\n\n", 1)[1].splitlines()[1]
    assert witness.verify_cosignature(body, cosignature, log_witness.key) > 0
    state = json.loads((log_witness.directory / "state.json").read_text())
    assert state["logs"][notes.origin()]["size"] == later.tree_size


def test_the_checkpoint_note_costs_three_queries(api, published, log_witness, django_assert_num_queries):
    tasks.cosign_checkpoint()
    client = api("regulator")
    client.get(f"{LOG}/key")  # authenticate once, so that the count below is the view's own
    with django_assert_num_queries(3):
        # 1 the chain's head, 2 the newest checkpoints of this key (the first verifies),
        # 3 its cosignatures
        checkpoint = views_audit._latest_note()
        cosigning.cosignature_lines(checkpoint)
    assert client.get(f"{LOG}/checkpoint").status_code == 200


def test_a_missing_witness_is_a_warning_and_blocks_no_read(api, published, client, settings):
    key = witness.cosigner_verifier_key(WITNESS, bytes(32))
    settings.AUDIT_WITNESSES = [("http://127.0.0.1:9", key)]  # nothing listens on the discard port
    assert tasks.cosign_checkpoint() == {WITNESS: "unreachable"}
    status = selectors.chain_status()
    assert status.witness_warning and status.witnesses[0]["cosigned_size"] == 0
    health = client.get("/healthz")
    assert health.status_code in (200, 503)
    assert "audit_witness" in health.json()["warnings"]
    assert health.json()["audit"]["witnesses"][0]["last_attempt"] == "unreachable"
    served = api("regulator").get(f"{LOG}/checkpoint")
    assert served.status_code == 200 and served.content.decode() == published.note
    page = api("auditor").get("/api/v1/audit/verify/")
    assert page.status_code == 200


def test_a_witness_that_holds_a_fork_refuses_and_is_reported(api, published, tmp_path, settings):
    # The witness was shown another tree of the same size before (a split view): it must refuse this one.
    directory = tmp_path / "witness"
    directory.mkdir()
    forged = {"size": published.tree_size, "root": base64.b64encode(bytes(32)).decode()}
    (directory / "state.json").write_text(json.dumps({"logs": {notes.origin(): forged}}))
    process = WitnessProcess(directory, WITNESS, [checkpoints.log_verifier_key()])
    process.start()
    try:
        settings.AUDIT_WITNESSES = [(process.url, process.key)]
        assert tasks.cosign_checkpoint() == {WITNESS: "refused"}
        assert not AuditCosignature.objects.exists()
        assert selectors.chain_status().witness_warning
        # A larger checkpoint is not consistent with the forged root either (422).
        _grow_and_publish(api)
        assert tasks.cosign_checkpoint() == {WITNESS: "refused"}
        attempt = cosigning.last_attempt(process.key)
        assert attempt is not None and "422" in attempt["detail"]
    finally:
        process.stop()


def test_a_cosignature_of_another_key_is_not_stored(api, published, log_witness, settings):
    # The URL answers, but AUDIT_WITNESSES names another key for it: its cosignature vouches for nothing.
    other = witness.cosigner_verifier_key(WITNESS, bytes(range(32)))
    settings.AUDIT_WITNESSES = [(log_witness.url, other)]
    assert tasks.cosign_checkpoint() == {WITNESS: "invalid"}
    assert not AuditCosignature.objects.exists()


def test_cosignatures_are_append_only(published, log_witness):
    tasks.cosign_checkpoint()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditCosignature.objects.update(signature="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditCosignature.objects.all().delete()


# --- Receipts: a c2sp.org/tlog-proof file per access-log row ------------------------------------------------


def _looked_at(api, demo):
    """A consumer the regulator read, sealed into a published checkpoint."""
    consumer = demo.consumer_in(CCF)
    api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/")
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    return consumer


def _check_receipt(text: str, key: str) -> receipts.TlogProof:
    proof = receipts.decode(text)
    opened = notes.open_note(proof.note, key)
    assert proof.extra is not None
    merkle.verify_inclusion(
        proof.index, opened.size, merkle.leaf_hash(proof.extra), proof.hashes, opened.root
    )
    return proof


def test_each_access_log_row_has_a_receipt_that_verifies(api, demo):
    consumer = _looked_at(api, demo)
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    row = api("regulator").get(log).json()["results"][-1]
    assert row["receipt"] == f"{log}?format=tlog-proof&index={row['leaf_index']}"
    response = api("regulator").get(row["receipt"])
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"].endswith(f'-{row["leaf_index"]}.tlog-proof"')
    proof = _check_receipt(response.content.decode(), checkpoints.log_verifier_key())
    event = AuditEvent.objects.get(pk=row["id"])
    leaf = next(chain.iter_sealed(after_position=proof.index, until_position=proof.index + 1))
    assert proof.index == (event.chain_position or 0) - 1 and proof.extra == leaf.canonical


def test_the_receipts_of_a_page_come_as_a_zip(api, demo):
    import io
    import zipfile

    consumer = _looked_at(api, demo)
    api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/transactions/")
    chain.events_seal()
    assert checkpoints.checkpoint_publish() is not None
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    rows = api("auditor").get(log).json()["results"]
    response = api("auditor").get(f"{log}?format=tlog-proof")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = sorted(archive.namelist())
    assert names == sorted(f"{row['leaf_index']}.tlog-proof" for row in rows) and len(names) >= 2
    for name in names:
        assert _check_receipt(archive.read(name).decode(), checkpoints.log_verifier_key()).index == int(
            name.split(".")[0]
        )


def test_a_receipt_costs_a_constant_number_of_queries(api, demo, django_assert_num_queries):
    consumer = _looked_at(api, demo)
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    index = api("regulator").get(log).json()["results"][-1]["leaf_index"]
    checkpoint = checkpoints.latest_served()
    event = AuditEvent.objects.get(chain_position=index + 1)
    assert checkpoint is not None
    with django_assert_num_queries(3):
        # 1 the leaf's event, 2 its subjects, 3 the proof's hashes (one indexed query, O(log n) keys)
        receipts.receipt(event=event, checkpoint=checkpoint, note="")


def test_receipts_keep_the_access_logs_scope(api, demo):
    consumer = _looked_at(api, demo)
    # An auditor's own read of the trail is not a row of this consumer's log; another organisation's is
    # not in the regulator's (it sees their count only).
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    not_a_row = AuditEvent.objects.exclude(subjects__public_id=consumer.public_id).latest("chain_position")
    index = (not_a_row.chain_position or 0) - 1
    assert api("regulator").get(f"{log}?format=tlog-proof&index={index}").status_code == 404
    assert api("auditor").get(f"{log}?format=tlog-proof&index={index}").status_code == 404
    outside = demo.consumer_outside(CCF)
    path = f"/api/v1/consumers/{outside.public_id}/access-log/?format=tlog-proof"
    assert api("regulator").get(path).status_code == 404
    for role in ("shareholder", "compliance", "admin"):
        assert api(role).get(f"{log}?format=tlog-proof").status_code == 403
    assert api(None).get(f"{log}?format=tlog-proof").status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [("index=0", "index"), ("format=tlog-proof&index=-1", "index"), ("format=tlog-proof&index=x", "index")],
)
def test_bad_receipt_parameters_are_400_naming_the_field(api, demo, query, field):
    consumer = _looked_at(api, demo)
    response = api("auditor").get(f"/api/v1/consumers/{consumer.public_id}/access-log/?{query}")
    assert response.status_code == 400 and field in response.json(), response.content


def test_an_unsealed_row_has_no_receipt_yet(api, demo):
    consumer = _looked_at(api, demo)
    api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/")  # not sealed
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    newest = api("regulator").get(log).json()["results"][0]
    assert newest["leaf_index"] is None and newest["receipt"] is None
    beyond = checkpoints.latest_served()
    assert beyond is not None
    chain.events_seal()  # sealed, but after the latest checkpoint
    row = api("regulator").get(log).json()["results"][1]
    assert row["leaf_index"] is not None and row["leaf_index"] >= (beyond.tree_size or 0)
    assert api("regulator").get(row["receipt"]).status_code == 404


def test_the_offline_verifier_checks_a_receipt_and_its_cosignature(api, demo, log_witness, tmp_path):
    from django.core.management import CommandError, call_command

    consumer = _looked_at(api, demo)
    assert tasks.cosign_checkpoint() == {WITNESS: "cosigned"}
    log = f"/api/v1/consumers/{consumer.public_id}/access-log/"
    row = api("regulator").get(log).json()["results"][-1]
    receipt = tmp_path / "row.tlog-proof"
    receipt.write_bytes(api("regulator").get(row["receipt"]).content)
    key = tmp_path / "log.key"
    key.write_bytes(api("regulator").get(f"{LOG}/key").content)
    out = StringIO()
    call_command(
        "audit_verify_offline",
        "--key",
        str(key),
        "--receipt",
        str(receipt),
        "--witness-key",
        log_witness.key,
        stdout=out,
    )
    assert f"OK: event at leaf {row['leaf_index']}" in out.getvalue()
    assert f"OK: cosigned by the witness {WITNESS}" in out.getvalue()
    # One bit of the event changed, or a witness that never cosigned: refused.
    proof = receipts.decode(receipt.read_text())
    assert proof.extra is not None
    forged = bytearray(proof.extra)
    forged[10] ^= 1
    tampered = tmp_path / "tampered.tlog-proof"
    tampered.write_text(
        receipts.encode(receipts.TlogProof(bytes(forged), proof.index, proof.hashes, proof.note))
    )
    with pytest.raises(CommandError, match="receipt"):
        call_command("audit_verify_offline", "--key", str(key), "--receipt", str(tampered))
    stranger = witness.cosigner_verifier_key(WITNESS, bytes(range(32)))
    with pytest.raises(CommandError, match="no valid cosignature"):
        call_command(
            "audit_verify_offline", "--key", str(key), "--receipt", str(receipt), "--witness-key", stranger
        )


def test_the_access_log_pages_offer_each_rows_receipt(api, demo):
    import re

    from django.test import Client

    consumer = _looked_at(api, demo)
    pages = {}
    for username, path in (
        ("auditor", f"/audit/access-log/?consumer={consumer.public_id}"),
        ("regulator", f"/consumers/{consumer.public_id}/"),
    ):
        browser = Client()
        browser.force_login(User.objects.get(username=username))
        html = browser.get(path).content.decode()
        links = re.findall(r'href="([^"]+format=tlog-proof&amp;index=\d+)" download data-leaf="(\d+)"', html)
        assert links, f"{username}: no receipt link on {path}"
        href, leaf = links[-1]
        download = browser.get(href.replace("&amp;", "&"))  # the browser's session is enough
        assert download.status_code == 200, download.content
        assert _check_receipt(download.content.decode(), checkpoints.log_verifier_key()).index == int(leaf)
        pages[username] = html
    assert 'data-receipts="newest"' in pages["auditor"]
