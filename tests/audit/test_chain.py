"""Sealing: gap-free positions in sealing order, and hashes that cover every field and the subjects."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections, transaction

from audit import chain
from audit.models import AuditEvent
from audit.verify import chain_verify
from tests.audit.conftest import execute, tampering


def _chain() -> list[tuple[int, int | None, str, str]]:
    return list(
        AuditEvent.objects.filter(chain_position__isnull=False)
        .order_by("chain_position")
        .values_list("id", "chain_position", "prev_hash", "hash")
    )


def test_the_encoding_covers_every_column_of_the_event():
    columns = {field.attname for field in AuditEvent._meta.concrete_fields}
    assert set(chain.EVENT_FIELDS) | set(chain.LINK_FIELDS) == columns
    assert not set(chain.EVENT_FIELDS) & set(chain.LINK_FIELDS)


def test_the_canonical_encoding_is_fixed():
    # Version 1 as documented in audit/chain.py: a verifier outside the operator reproduces these bytes.
    event = {name: None for name in chain.EVENT_FIELDS} | {
        "id": 7,
        "occurred_at": datetime(2026, 1, 2, 11, 4, 5, tzinfo=ZoneInfo("Asia/Shanghai")),
        "actor_username": "王芳",
        "action": "api.consumer",
        "outcome": "allowed",
        "query": {"segment": "3", "page_size": ["10", "20"]},
        "row_count": 2,
        "chain_position": 1,
        "sealed_at": datetime(2026, 1, 2, 3, 4, 6, 120, tzinfo=UTC),
    }
    encoded = chain.canonical_bytes(event, ["C2", "C1"])
    assert encoded == (
        b'{"action":"api.consumer","actor_id":null,"actor_organisation":null,"actor_role":null,'
        b'"actor_username":"\\u738b\\u82b3","chain_position":1,"client_ip":null,"export_sha256":null,'
        b'"grant_id":null,"id":7,"method":null,"occurred_at":"2026-01-02T03:04:05.000000Z","outcome":"allowed",'
        b'"path":null,"purpose":null,"query":{"page_size":["10","20"],"segment":"3"},"request_id":null,'
        b'"requested_id":null,"resource_kind":null,"row_count":2,"sealed_at":"2026-01-02T03:04:06.000120Z",'
        b'"search_hash":null,"status":null,"subjects":["C1","C2"],"user_agent":null,"v":1}'
    )
    # SHA-256 over the previous hash's 64 hex characters, then the bytes.
    digest = "f2a467e18d81503b1873de4b62c24139fa5175e5ab644af7904f3176c1d7a0b9"
    assert chain.link_hash(chain.GENESIS_HASH, encoded) == digest


@pytest.mark.django_db
def test_sealing_gives_gap_free_positions_linked_from_the_genesis_hash(make_event):
    events = [make_event(subjects=[f"C{n}"]) for n in range(3)]
    result = chain.events_seal()
    assert result.sealed == 3 and not result.busy and result.head.position == 3
    links = _chain()
    assert [link[:2] for link in links] == [(event.pk, n + 1) for n, event in enumerate(events)]
    assert links[0][2] == chain.GENESIS_HASH
    assert [link[2] for link in links[1:]] == [link[3] for link in links[:-1]]

    later = [make_event(), make_event()]
    assert chain.events_seal().sealed == 2
    assert [link[1] for link in _chain()] == [1, 2, 3, 4, 5]
    assert _chain()[3][0] == later[0].pk
    # Idempotent: nothing left, nothing changes.
    assert chain.events_seal().sealed == 0
    assert chain_verify().ok


@pytest.mark.django_db
def test_sealing_in_small_batches_makes_the_same_chain(make_event):
    for _ in range(5):
        make_event()
    assert chain.events_seal(batch_size=2).sealed == 5
    assert [link[1] for link in _chain()] == [1, 2, 3, 4, 5]
    assert chain_verify().ok


@pytest.mark.django_db
def test_sealing_ignores_gaps_in_ids(make_event):
    first = make_event()
    # A rolled-back insert burns a sequence value: ids have gaps, positions never do.
    with pytest.raises(RuntimeError), transaction.atomic():
        make_event()
        raise RuntimeError
    third = make_event()
    chain.events_seal()
    assert [link[:2] for link in _chain()] == [(first.pk, 1), (third.pk, 2)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lower_id_that_commits_later_is_sealed_after_the_head(make_event):
    """Two connections: the first takes an id and commits after the second has committed and been sealed."""
    holding, release = threading.Event(), threading.Event()
    slow: list[int] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                slow.append(make_event(action="test.slow").pk)
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert holding.wait(timeout=30)
        fast = make_event(action="test.fast")
        assert fast.pk > slow[0]
        assert chain.events_seal().sealed == 1  # the uncommitted event is invisible, not waited for
    finally:
        release.set()
        writer.join(timeout=30)
    assert chain.events_seal().sealed == 1
    assert [link[:2] for link in _chain()] == [(fast.pk, 1), (slow[0], 2)]
    assert chain_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db
def test_only_one_sealer_runs_at_a_time(make_event):
    make_event()
    holding, release = threading.Event(), threading.Event()

    def other_sealer() -> None:
        other = connections["default"]
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [chain.SEAL_LOCK_KEY])
                holding.set()
                release.wait(timeout=30)
                cursor.execute("SELECT pg_advisory_unlock(%s)", [chain.SEAL_LOCK_KEY])
        finally:
            other.close()

    thread = threading.Thread(target=other_sealer)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        result = chain.events_seal()
        assert result.busy and result.sealed == 0
    finally:
        release.set()
        thread.join(timeout=30)
    assert chain.events_seal().sealed == 1


@pytest.mark.django_db
def test_the_hash_covers_the_subjects(make_event):
    make_event(subjects=["C1"])
    event = make_event(subjects=["C2", "C3"])
    make_event()
    chain.events_seal()
    assert chain_verify().ok
    with tampering():
        execute("UPDATE audit_auditsubject SET public_id = 'C9' WHERE public_id = 'C3'")
    result = chain_verify()
    assert not result.ok
    assert result.first_bad_position == AuditEvent.objects.get(pk=event.pk).chain_position == 2
    assert result.problem.startswith("hash mismatch")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "'api.segment_summary'"),
        ("outcome", "'denied'"),
        ("actor_username", "'someone-else'"),
        ("actor_organisation", "'Another organisation'"),
        ("occurred_at", "sealed_at"),
        ("sealed_at", "occurred_at"),
        ("purpose", "'another purpose'"),
        ("grant_id", "42"),
        ("client_ip", "NULL"),
        ("row_count", "0"),
        ("export_sha256", "'ab'"),
        ("prev_hash", "hash"),
    ],
)
def test_the_hash_covers_every_field(make_event, column, value):
    make_event()
    make_event(
        subjects=["C1"], client_ip="10.0.0.1", purpose="case 17", grant_id=3, row_count=1, export_sha256="cd"
    )
    chain.events_seal()
    with tampering():
        execute(f"UPDATE audit_auditevent SET {column} = {value} WHERE chain_position = 2")  # noqa: S608
    result = chain_verify()
    assert result.first_bad_position == 2, result


@pytest.mark.django_db
def test_sealing_refuses_to_write_a_batch_it_cannot_fill_completely(make_event, monkeypatch):
    make_event()
    make_event()
    real_write = chain._write_links
    monkeypatch.setattr(chain, "_write_links", lambda links, sealed_at: real_write(links[:1], sealed_at))
    with pytest.raises(chain.SealError):
        chain.events_seal()
    assert not AuditEvent.objects.filter(chain_position__isnull=False).exists()


def test_the_stored_time_is_what_is_hashed(make_event):
    event = make_event()
    chain.events_seal()
    link = next(chain.iter_sealed())
    assert chain.format_time(AuditEvent.objects.get(pk=event.pk).occurred_at).encode() in link.canonical
