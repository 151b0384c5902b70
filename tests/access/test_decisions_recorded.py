"""Decisions are recorded with their effect (SPEC §4): each state change of a grant or an export writes its
event in the same transaction, from the service itself; when the event cannot be written, nothing changes and
the caller gets 503."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.recorder import AuditWriteError
from portal.access import policy, services
from portal.access.models import AccessGrant, SegmentGroupObjectPermission
from portal.access.tasks import expire_grants
from portal.accounts.models import User
from tests.access.test_grants import CASH, request_grant
from tests.audit.conftest import execute


@contextmanager
def audit_refused_for(username: str) -> Iterator[None]:
    """Every audit event of this user fails to insert, as a failing audit store would; others' are written."""
    if connection.vendor == "postgresql":
        execute(
            "CREATE FUNCTION audit_test_refuse_user() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END $$"
        )
        execute(
            "CREATE TRIGGER audit_test_refuse_user BEFORE INSERT ON audit_auditevent FOR EACH ROW "
            f"WHEN (NEW.actor_username = '{username}') EXECUTE FUNCTION audit_test_refuse_user()"
        )
    else:
        execute(
            "CREATE TRIGGER audit_test_refuse_user BEFORE INSERT ON audit_auditevent "
            f"WHEN NEW.actor_username = '{username}' BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END"
        )
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            execute("DROP TRIGGER audit_test_refuse_user ON audit_auditevent")
            execute("DROP FUNCTION audit_test_refuse_user()")
        else:
            execute("DROP TRIGGER audit_test_refuse_user")


def decisions(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_an_approval_whose_event_cannot_be_written_does_not_take_effect(api, demo):
    grant = request_grant("regulator2", demo.segment(CASH))
    with audit_refused_for("compliance"):
        response = api("compliance").post(
            f"/api/v1/grants/{grant.pk}/approve/", {}, content_type="application/json"
        )
    assert response.status_code == 503
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.REQUESTED and grant.decided_by is None
    assert not policy.scope_for(User.objects.get(username="regulator2")).segments
    assert not AuditEvent.objects.filter(action="grant.approved", grant_id=grant.pk).exists()


def test_the_web_approval_also_answers_503_and_changes_nothing(demo, client):
    grant = request_grant("regulator2", demo.segment(CASH))
    client.force_login(User.objects.get(username="compliance"))
    with audit_refused_for("compliance"):
        response = client.post(f"/grants/{grant.pk}/approve/", {"note": ""})
    assert response.status_code == 503
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.REQUESTED


def test_each_decision_writes_its_own_event_from_the_service(demo):
    """From a shell, without any request: the service alone records the request, approval, revocation."""
    grant = request_grant("regulator2", demo.segment(CASH))
    requested = decisions("grant.requested")[-1]
    assert (requested.actor_username, requested.requested_id, requested.grant_id) == (
        "regulator2",
        str(grant.pk),
        grant.pk,
    )
    assert requested.purpose == grant.purpose and requested.query["target"] == f"segment:{grant.segment_id}"
    assert requested.method == "" and requested.outcome == "allowed"

    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"), note="Fine.")
    approved = decisions("grant.approved")[-1]
    assert (approved.actor_username, approved.grant_id, approved.query) == (
        "compliance",
        grant.pk,
        {"note": "Fine."},
    )
    services.grant_revoke(grant=grant, revoker=User.objects.get(username="compliance2"), reason="Done.")
    revoked = decisions("grant.revoked")[-1]
    assert (revoked.actor_username, revoked.grant_id, revoked.query) == (
        "compliance2",
        grant.pk,
        {"reason": "Done."},
    )

    other = request_grant("regulator2", demo.segment(CASH))
    services.grant_reject(grant=other, approver=User.objects.get(username="compliance"), note="No.")
    assert decisions("grant.rejected")[-1].grant_id == other.pk


@pytest.mark.parametrize("verb", ["reject", "revoke"])
def test_a_rejection_or_revocation_without_its_event_is_rolled_back(demo, verb):
    grant = request_grant("regulator2", demo.segment(CASH))
    if verb == "revoke":
        services.grant_approve(grant=grant, approver=User.objects.get(username="compliance2"))
    before = grant.status if verb == "reject" else AccessGrant.Status.APPROVED
    with audit_refused_for("compliance"), pytest.raises(AuditWriteError):
        if verb == "reject":
            services.grant_reject(grant=grant, approver=User.objects.get(username="compliance"))
        else:
            services.grant_revoke(grant=grant, revoker=User.objects.get(username="compliance"), reason="x")
    grant.refresh_from_db()
    assert grant.status == before


def test_a_request_without_its_event_leaves_no_grant(demo):
    count = AccessGrant.objects.count()
    with audit_refused_for("regulator2"), pytest.raises(AuditWriteError):
        request_grant("regulator2", demo.segment(CASH))
    assert AccessGrant.objects.count() == count


def test_expiry_names_each_grant_it_ended(demo):
    live = AccessGrant.objects.filter(status=AccessGrant.Status.APPROVED).order_by("pk")
    ended = list(live)
    assert len(ended) >= 2
    past = timezone.now() - timedelta(seconds=1)
    live.update(valid_from=past - timedelta(days=1), valid_until=past)
    expire_grants.apply()
    events = decisions("grant.expire")
    assert sorted(e.grant_id or 0 for e in events) == [g.pk for g in ended]
    for event, grant in zip(events, ended, strict=True):
        assert (event.requested_id, event.purpose, event.actor_id) == (str(grant.pk), grant.purpose, None)
    assert not SegmentGroupObjectPermission.objects.exists()
    expire_grants.apply()
    assert len(decisions("grant.expire")) == len(ended)


def test_an_expiry_that_cannot_be_recorded_expires_nothing(demo):
    live = AccessGrant.objects.filter(status=AccessGrant.Status.APPROVED)
    past = timezone.now() - timedelta(seconds=1)
    live.update(valid_from=past - timedelta(days=1), valid_until=past)
    with audit_refused_for(""), pytest.raises(AuditWriteError):
        services.grants_expire()
    assert live.count() >= 2 and not decisions("grant.expire")


def test_the_demo_grants_have_their_events(demo):
    call_command("seed_demo", "--consumers", "300", verbosity=0)  # idempotent: nothing new
    for grant in AccessGrant.objects.all():
        assert AuditEvent.objects.filter(action="grant.requested", grant_id=grant.pk).count() == 1
        if grant.status == AccessGrant.Status.APPROVED:
            approved = AuditEvent.objects.get(action="grant.approved", grant_id=grant.pk)
            assert approved.actor_username == "compliance2"


@pytest.mark.django_db(transaction=True)
def test_a_decision_outside_a_transaction_is_refused():
    from audit.recorder import record_decision

    with pytest.raises(RuntimeError, match="outside a transaction"):
        record_decision(actor=None, action="x", resource_kind="grant", resource_id=1)
    with transaction.atomic():
        event = record_decision(actor=None, action="x", resource_kind="grant", resource_id=1, detail={"a": 1})
    assert (event.requested_id, event.query) == ("1", {"a": 1})


def test_a_decision_made_while_serving_a_request_carries_the_request(api, demo):
    grant = request_grant("regulator2", demo.segment(CASH))
    response = api("compliance").post(
        f"/api/v1/grants/{grant.pk}/approve/", {}, content_type="application/json", HTTP_X_REQUEST_ID="abc123"
    )
    assert response.status_code == 200
    decision = decisions("grant.approved")[-1]
    request_event = AuditEvent.objects.filter(action="grant.approve").latest("id")
    assert decision.request_id == request_event.request_id == "abc123"
    assert decision.path == f"/api/v1/grants/{grant.pk}/approve/" and decision.method == "POST"
