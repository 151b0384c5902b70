"""The grant page and the audit-event page: everything about one record, for those who may read it only."""

from __future__ import annotations

import pytest

from audit.chain import events_seal
from audit.models import AuditEvent
from portal.access.models import AccessGrant
from tests.web.conftest import CCF
from tests.web.test_grant_screens import request_data

pytestmark = pytest.mark.postgres


def test_the_grant_page_shows_terms_history_and_the_accesses_made_under_it(client_for, world):
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    regulator = client_for("regulator")
    consumer = world.consumer_in(CCF)
    assert regulator.get(f"/consumers/{consumer.public_id}/").status_code == 200
    read = AuditEvent.objects.filter(action="consumer.read").latest("id")
    assert read.grant_id == grant.pk
    html = regulator.get(f"/grants/{grant.pk}/").content.decode()
    assert grant.legal_basis in html and grant.case_reference in html and grant.purpose in html
    assert 'data-step="decided"' in html and grant.decided_by.username in html  # type: ignore[union-attr]
    assert grant.decision_note in html
    assert "consumer.read" in html  # the read just made under it
    # A regulator does not get links into the trail; the auditor does.
    assert f'href="/audit/events/{read.pk}/"' not in html
    assert (
        f'href="/audit/events/{read.pk}/"'
        in client_for("auditor").get(f"/grants/{grant.pk}/").content.decode()
    )
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.grant_id, event.outcome) == ("grant.read", None, "allowed")
    assert event.requested_id == str(grant.pk)


def test_a_grant_of_another_organisation_is_not_found(client_for, world):
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    for username in ("regulator2", "shareholder"):
        assert client_for(username).get(f"/grants/{grant.pk}/").status_code == 404
    for bad in ("99999999", "x", "1" * 40, "-1"):
        assert client_for("compliance").get(f"/grants/{bad}/").status_code == 404
    # Grant numbers in the lists lead to the page.
    assert f'href="/grants/{grant.pk}/"' in client_for("compliance").get("/grants/").content.decode()


def test_decisions_ask_for_confirmation_and_tell_the_decided_state(client_for, world):
    compliance = client_for("compliance")
    own_approved = AccessGrant.objects.filter(
        requested_by__username="compliance", status=AccessGrant.Status.APPROVED
    ).first()
    assert own_approved is not None
    listing = compliance.get("/grants/").content.decode()
    row = listing.split(f'data-grant-id="{own_approved.pk}"')[1].split("</tr>")[0]
    # An approved grant is no longer waiting for anyone's decision.
    assert "another compliance officer decides" not in row
    assert "another compliance officer may revoke it" in row
    pending = AccessGrant.objects.get(requested_by__username="regulator2", status="requested")
    asked = compliance.post(f"/grants/{pending.pk}/reject/")
    html = asked.content.decode()
    assert asked.status_code == 200 and 'name="note"' in html and pending.legal_basis in html
    pending.refresh_from_db()
    assert pending.status == AccessGrant.Status.REQUESTED
    # A decided grant is refused at the first step already.
    already = compliance.post(f"/grants/{own_approved.pk}/approve/")
    assert already.status_code == 403


def test_a_grant_form_refused_by_validation_is_not_recorded_as_denied(client_for, world):
    response = client_for("regulator").post("/grants/request/", request_data(world, purpose=""))
    assert response.status_code == 400
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.status) == ("grant.request_invalid", "allowed", 400)


def test_the_shareholder_form_offers_only_what_a_shareholder_may_have(client_for, world):
    html = client_for("compliance").get("/grants/request/").content.decode()
    assert 'value="view_aggregates"' in html
    for codename in ("view_records", "view_masked_records", "view_scores", "export_records"):
        assert f'value="{codename}"' not in html
    assert 'name="consumer"' not in html and 'value="consumer"' not in html
    regulator = client_for("regulator").get("/grants/request/").content.decode()
    assert 'value="view_records"' in regulator and 'value="consumer"' in regulator


def test_the_audit_event_page_shows_every_field_and_its_chain_position(client_for, world):
    consumer = world.consumer_in(CCF)
    client_for("regulator").get("/consumers/", {"q": consumer.resident_id}, HTTP_USER_AGENT="Probe/1.0")
    event = AuditEvent.objects.filter(action="consumer.list").latest("id")
    auditor = client_for("auditor")
    html = auditor.get(f"/audit/events/{event.pk}/").content.decode()
    assert "Probe/1.0" in html and event.search_hash in html and consumer.public_id in html
    assert f'href="/grants/{event.grant_id}/"' in html
    assert "Not sealed into the chain yet." in html
    events_seal()
    event.refresh_from_db()
    html = auditor.get(f"/audit/events/{event.pk}/").content.decode()
    assert f"#{event.chain_position}" in html and event.hash in html and event.prev_hash in html
    assert consumer.resident_id not in html  # the search term itself is never stored or shown
    for bad in ("99999999999", "abc", "1" * 40):
        assert auditor.get(f"/audit/events/{bad}/").status_code == 404
    for username in ("regulator", "compliance", "shareholder"):
        assert client_for(username).get(f"/audit/events/{event.pk}/").status_code == 403
