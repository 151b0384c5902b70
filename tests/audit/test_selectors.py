"""Selectors behind the auditor's API: event search, the per-consumer access log and the chain status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import chain, checkpoints, selectors
from audit.models import AuditEvent, AuditSubject
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


def shown(events) -> list[tuple]:
    fields: tuple[str, ...] = ("pk", "occurred_at", "actor_username", "actor_organisation", "actor_role")
    fields += ("action", "outcome", "resource_kind", "grant_id", "purpose", "row_count", "chain_position")
    fields += ("subject_grant_id",)
    return [tuple(getattr(e, name) for name in fields) for e in events]


def test_the_latest_access_log_rows_are_the_first_rows_of_the_organisations_log(make_event, organisations):
    """The consumer page's read of its access log: exactly the first rows of consumer_access_log for that
    organisation (same events, fields, order), never another organisation's entry or another consumer's."""
    alice = UserFactory.create(username="alice", organisation=organisations["regulator"])
    bob = UserFactory.create(username="bob", organisation=organisations["shareholder"])
    for index in range(7):
        make_event(actor=alice, subjects=["C2", "C3"], grant_id=20 + index, subject_grants={"C3": 99})
        make_event(actor=bob, subjects=["C2"], grant_id=40 + index)
    make_event(actor=alice, subjects=["C3"])  # not C2's
    # Two events at the same moment: the order falls back on the event id, as the log's does.
    moment = timezone.now()
    for _ in range(2):
        tied = AuditEvent.objects.create(
            occurred_at=moment,
            action="test.tied",
            outcome=AuditEvent.Outcome.ALLOWED,
            actor_username="alice",
            actor_organisation=organisations["regulator"].name,
        )
        AuditSubject.objects.create(event=tied, occurred_at=moment, public_id="C2", grant_id=5)
    for organisation in (organisations["regulator"].name, organisations["shareholder"].name, "nobody"):
        log = selectors.consumer_access_log(public_id="C2", organisation=organisation)
        for rows in (1, 2, 9, 50):
            latest = selectors.consumer_access_log_latest(
                public_id="C2", organisation=organisation, rows=rows
            )
            assert shown(latest) == shown(log[:rows])
            assert all(e.actor_organisation == organisation for e in latest)
    alices = selectors.consumer_access_log_latest(
        public_id="C3", organisation=organisations["regulator"].name, rows=50
    )
    assert len(alices) == 8 and {row[-1] for row in shown(alices)} == {99, None}  # the subject grants
    assert selectors.consumer_access_log_latest(public_id="C404", organisation="nobody", rows=5) == []
    # What a regulator learns of the rest: how many entries other organisations have, as the log counts them.
    for public_id in ("C2", "C3", "C404"):
        everyone = selectors.consumer_access_log(public_id=public_id)
        for organisation in (organisations["regulator"].name, organisations["shareholder"].name, "nobody"):
            others = selectors.consumer_access_log_others(public_id=public_id, organisation=organisation)
            assert others == everyone.exclude(actor_organisation=organisation).count()
    regulators = organisations["regulator"].name
    assert selectors.consumer_access_log_others(public_id="C2", organisation=regulators) == 7  # bob's


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
