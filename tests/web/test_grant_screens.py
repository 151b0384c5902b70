"""Grant request and decision screens: refusals next to their field, four eyes, and the audit events."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from portal.access.models import AccessGrant
from portal.accounts.models import Organisation
from tests.web.conftest import DELTA


def field_error(html: str, field: str) -> str | None:
    """The error shown in the field block of `field`, if any."""
    match = re.search(
        rf'<div class="field has-error">(?:(?!<div class="field).)*?name="{field}"'
        r'.*?<ul class="errorlist[^>]*><li>(.*?)</li>',
        html,
        re.S,
    )
    return match.group(1) if match else None


def request_data(world, **changes) -> dict:
    today = timezone.localdate()
    data = {
        "target_kind": "segment",
        "segment": world.segment(DELTA).pk,
        "permissions": ["view_masked_records"],
        "purpose": "Review of complaint handling.",
        "legal_basis": "Banking Supervision Law, art. 33",
        "case_reference": "NFRA-2026-0100",
        "valid_until": (today + timedelta(days=30)).isoformat(),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.postgres
def test_regulator_requests_access_and_sees_it_waiting(client_for, world):
    client = client_for("regulator2")
    response = client.post("/grants/request/", request_data(world))
    assert response.status_code == 302 and response["Location"] == "/grants/"
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0100")
    assert grant.status == AccessGrant.Status.REQUESTED
    assert grant.grantee_organisation == Organisation.objects.get(short_name="nfra")
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.grant_id) == ("grant.request", "allowed", grant.pk)
    listing = client.get("/grants/").content.decode()
    assert f'data-grant-id="{grant.pk}"' in listing
    assert "is waiting for a compliance officer" in listing


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"valid_until": "2020-01-01"}, "valid_until", "The end of a grant cannot be in the past."),
        ({"valid_until": "+400"}, "valid_until", "A grant may last at most one year."),
        ({"purpose": "   "}, "purpose", "This field is required."),
        ({"purpose": None}, "purpose", "This field is required."),
        ({"valid_until": "next week"}, "valid_until", "Enter a valid date."),
        ({"permissions": None}, "permissions", "This field is required."),
        ({"target_kind": "consumer", "consumer": "C123"}, "consumer", "Not a consumer public id."),
        ({"valid_from": "2020-01-01"}, "valid_from", "A grant cannot start in the past."),
        (
            {"valid_from": "9999-12-30", "valid_until": "9999-12-30"},
            "valid_from",
            "A grant may start at most one year ahead.",
        ),
        (
            {"valid_from": "+400", "valid_until": "+401"},
            "valid_from",
            "A grant may start at most one year ahead.",
        ),
        (
            {"valid_from": "9999-12-31", "valid_until": "9999-12-31"},
            "valid_from",
            "This date is out of range.",
        ),
    ],
)
def test_bad_request_input_is_shown_next_to_its_field(client_for, world, changes, field, message):
    changes = {
        name: (timezone.localdate() + timedelta(days=int(value[1:]))).isoformat()
        if isinstance(value, str) and value.startswith("+")
        else value
        for name, value in changes.items()
    }
    response = client_for("regulator").post("/grants/request/", request_data(world, **changes))
    assert response.status_code == 400
    assert field_error(response.content.decode(), field) == message.replace("'", "&#x27;")
    assert not AccessGrant.objects.filter(case_reference="NFRA-2026-0100").exists()


@pytest.mark.postgres
def test_errors_are_translated(client_for, world):
    client = client_for("regulator", language="zh-hans")
    response = client.post("/grants/request/", request_data(world, valid_until="2020-01-01", purpose=""))
    html = response.content.decode()
    assert field_error(html, "valid_until") == "授权的截止日期不能是过去的日期。"
    assert field_error(html, "purpose") == "此项为必填项。"


@pytest.mark.postgres
def test_four_eyes_on_screens(client_for, world):
    compliance, compliance2 = client_for("compliance"), client_for("compliance2")
    shareholder_b = Organisation.objects.get(short_name="state-capital-b")
    response = compliance.post(
        "/grants/request/",
        request_data(world, grantee_organisation=shareholder_b.pk, permissions=["view_aggregates"]),
    )
    assert response.status_code == 302
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0100")
    page = compliance.get("/grants/").content.decode()
    row = page.split(f'data-grant-id="{grant.pk}"')[1].split("</tr>")[0]
    assert 'data-own-request="true"' in row and f"/grants/{grant.pk}/approve/" not in row
    refused = compliance.post(f"/grants/{grant.pk}/approve/", {"note": ""})
    assert refused.status_code == 403
    assert "Four eyes: the requester cannot approve their own grant." in refused.content.decode()
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.REQUESTED
    assert AuditEvent.objects.latest("id").outcome == "denied"
    # The first POST asks for confirmation and changes nothing; the confirmed one approves.
    asked = compliance2.post(f"/grants/{grant.pk}/approve/", {"note": "ok"})
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.content.decode()
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.REQUESTED
    assert AuditEvent.objects.latest("id").action == "grant.approve_confirm"
    confirmed = compliance2.post(f"/grants/{grant.pk}/approve/", {"note": "ok", "confirm": "yes"})
    assert confirmed.status_code == 302
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.APPROVED
    assert grant.decided_by is not None and grant.decided_by.username == "compliance2"


@pytest.mark.postgres
def test_shareholder_requests_only_aggregates(client_for, world):
    shareholder_b = Organisation.objects.get(short_name="state-capital-b")
    response = client_for("compliance").post(
        "/grants/request/",
        request_data(world, grantee_organisation=shareholder_b.pk, permissions=["view_records"]),
    )
    assert response.status_code == 400
    assert field_error(response.content.decode(), "permissions") == (
        "A state shareholder may only be granted aggregates of a segment."
    )


@pytest.mark.postgres
def test_reject_and_revoke(client_for, world):
    compliance = client_for("compliance")
    pending = AccessGrant.objects.get(requested_by__username="regulator2", status="requested")
    # A rejection says why.
    unsaid = compliance.post(f"/grants/{pending.pk}/reject/", {"note": "", "confirm": "yes"})
    assert unsaid.status_code == 400 and "Say why the request is rejected." in unsaid.content.decode()
    done = compliance.post(f"/grants/{pending.pk}/reject/", {"note": "Out of scope.", "confirm": "yes"})
    assert done.status_code == 302
    pending.refresh_from_db()
    assert pending.status == AccessGrant.Status.REJECTED and pending.decision_note == "Out of scope."
    # Rejecting twice is a conflict shown on the row, not an error page.
    again = compliance.post(f"/grants/{pending.pk}/reject/", {"note": "Again.", "confirm": "yes"})
    assert again.status_code == 409 and "Only a requested grant can be rejected." in again.content.decode()

    active = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    empty = compliance.post(f"/grants/{active.pk}/revoke/", {"reason": "", "confirm": "yes"})
    assert empty.status_code == 400 and "Say why the grant is revoked." in empty.content.decode()
    confirmed = compliance.post(f"/grants/{active.pk}/revoke/", {"reason": "Case closed.", "confirm": "yes"})
    assert confirmed.status_code == 302
    active.refresh_from_db()
    assert active.status == AccessGrant.Status.REVOKED
    consumer = world.consumer_in("chengdu-chongqing-consumer-finance")
    assert client_for("regulator").get(f"/consumers/{consumer.public_id}/").status_code == 404


@pytest.mark.postgres
def test_decisions_need_compliance_and_a_real_grant(client_for, world):
    pending = AccessGrant.objects.get(requested_by__username="regulator2", status="requested")
    assert client_for("regulator").post(f"/grants/{pending.pk}/approve/").status_code == 403
    assert client_for("auditor").post(f"/grants/{pending.pk}/approve/").status_code == 403
    assert client_for("compliance").post("/grants/99999999/approve/").status_code == 404
    assert client_for("compliance").post("/grants/x/approve/").status_code == 404
    assert client_for("compliance").get(f"/grants/{pending.pk}/approve/").status_code == 405
