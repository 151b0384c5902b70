"""Selectors behind the auditor's API: event search, the per-consumer access log and the chain status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import chain, checkpoints, selectors
from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(make_event, organisations):
    alice = UserFactory.create(username="alice", organisation=organisations["regulator"])
    bob = UserFactory.create(username="bob", organisation=organisations["shareholder"])
    return {
        "alice_reads": make_event(actor=alice, subjects=["C1", "C2"], grant_id=11, purpose="case 7"),
        "bob_denied": make_event(
            actor=bob, action="api.consumer", outcome=AuditEvent.Outcome.DENIED, requested_id="C1", status=404
        ),
        "alice_again": make_event(actor=alice, subjects=["C2"], grant_id=12, purpose="case 8"),
    }


def ids(events) -> list[int]:
    return [event.pk for event in events]


def test_events_are_filtered_by_every_criterion(trail, organisations):
    alice_reads, bob_denied, alice_again = trail["alice_reads"], trail["bob_denied"], trail["alice_again"]
    assert ids(selectors.event_list()) == [alice_again.pk, bob_denied.pk, alice_reads.pk]
    assert ids(selectors.event_list(actor="alice")) == [alice_again.pk, alice_reads.pk]
    assert ids(selectors.event_list(organisation=organisations["shareholder"].name)) == [bob_denied.pk]
    assert ids(selectors.event_list(consumer="C2")) == [alice_again.pk, alice_reads.pk]
    assert ids(selectors.event_list(consumer="C1", actor="alice")) == [alice_reads.pk]
    assert ids(selectors.event_list(action="api.consumer")) == [bob_denied.pk]
    assert ids(selectors.event_list(outcome="denied")) == [bob_denied.pk]
    now = timezone.now()
    assert ids(selectors.event_list(since=now)) == []
    assert len(selectors.event_list(since=now - timedelta(minutes=1), until=now)) == 3
    assert ids(selectors.event_list(until=alice_reads.occurred_at)) == []


def test_the_access_log_lists_who_saw_a_consumer_newest_first(trail, organisations):
    log = list(selectors.consumer_access_log(public_id="C2"))
    assert ids(log) == [trail["alice_again"].pk, trail["alice_reads"].pk]
    latest = log[0]
    assert (latest.actor_username, latest.actor_organisation) == ("alice", organisations["regulator"].name)
    assert (latest.action, latest.grant_id, latest.purpose) == ("test.consumer_detail", 12, "case 8")
    assert latest.occurred_at is not None
    assert list(selectors.consumer_access_log(public_id="C404")) == []


def test_the_chain_status_says_how_far_sealing_has_come(make_event):
    status = selectors.chain_status()
    assert (status.sealed, status.pending, status.head_hash) == (0, 0, chain.GENESIS_HASH)
    assert status.latest_checkpoint is None and status.oldest_pending_seconds is None
    make_event()
    make_event()
    chain.events_seal()
    checkpoints.checkpoint_publish()
    make_event()
    status = selectors.chain_status()
    assert (status.sealed, status.pending, status.head_position) == (2, 1, 2)
    assert status.latest_checkpoint is not None and status.latest_checkpoint["chain_position"] == 2
    assert status.public_key == checkpoints.public_key() and len(status.public_key_fingerprint) == 64
    assert status.oldest_pending_seconds is not None and not status.pending_warning
    assert status.as_dict()["head_hash"] == chain.head().hash
    assert [c.chain_position for c in selectors.checkpoint_list()] == [2]
