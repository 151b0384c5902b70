"""Holes a security review found, kept closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from portal.access import services
from portal.access.models import AccessGrant
from portal.accounts.models import Membership, Organisation, User

CCF = "chengdu-chongqing-consumer-finance"


@pytest.fixture
def staff_with_masked_grant(client, demo):
    """`admin` moved (by a database edit of the account and its approved membership, as an attacker with a
    foothold might) into an organisation whose only grant is masked records."""
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    nfra = Organisation.objects.get(short_name="nfra")
    User.objects.filter(username="admin").update(organisation=nfra)
    Membership.objects.filter(user__username="admin", status="approved").update(organisation=nfra)
    client.force_login(User.objects.get(username="admin"))
    return client


def test_the_admin_refuses_filters_that_would_confirm_masked_values(staff_with_masked_grant, demo):
    consumer = demo.consumer_in("yangtze-river-delta")
    for lookup in ("resident_id__startswith", "phone__startswith", "name__startswith", "resident_id"):
        response = staff_with_masked_grant.get("/admin/records/consumer/", {lookup: consumer.resident_id[:4]})
        # Django's admin answers a disallowed lookup with 400 (DisallowedModelAdminLookup), never a list.
        assert response.status_code == 400, lookup


def test_admin_detail_of_a_masked_consumer_is_masked_and_shows_no_score(staff_with_masked_grant, demo):
    consumer = demo.consumer_in("yangtze-river-delta")
    body = staff_with_masked_grant.get(
        f"/admin/records/consumer/{consumer.public_id}/change/"
    ).content.decode()
    assert consumer.resident_id not in body and consumer.phone not in body and consumer.name not in body
    assert consumer.resident_id[:6] + "********" in body


def test_admin_pages_per_transaction_or_account_are_refused(staff_with_masked_grant, demo):
    consumer = demo.consumer_in("yangtze-river-delta")
    transaction = consumer.transactions.first()
    account = consumer.accounts.first()
    assert (
        staff_with_masked_grant.get(f"/admin/records/transaction/{transaction.pk}/change/").status_code == 403
    )
    assert staff_with_masked_grant.get(f"/admin/records/account/{account.pk}/change/").status_code == 403


def test_the_user_admin_cannot_move_an_account_between_organisations(client, demo):
    client.force_login(User.objects.get(username="admin"))
    regulator = User.objects.get(username="regulator")
    form = client.get(f"/admin/accounts/user/{regulator.pk}/change/").context["adminform"].form
    assert "organisation" not in form.fields and "role" not in form.fields


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/consumers/?segment=%C2%B2",
        "/api/v1/consumers/?page_size=%C2%B2",
        "/api/v1/transactions/?since=0001-01-01",
        "/api/v1/transactions/?until=9999-12-31T23:59:59-12:00",
    ],
)
def test_unusual_digits_and_dates_are_400(api, demo, path):
    assert api("regulator").get(path).status_code == 400


@pytest.mark.parametrize(
    "path", ["/api/v1/segments/%C2%B2/summary/", "/api/v1/segments/" + "9" * 5000 + "/summary/"]
)
def test_unusual_ids_in_paths_are_404(api, demo, path):
    assert api("regulator").get(path).status_code == 404


def test_an_unusual_grant_header_is_400(api, demo):
    response = api("regulator").get("/api/v1/consumers/", HTTP_X_ACCESS_GRANT="\u00b2")
    assert response.status_code == 400


def test_an_auditor_reading_a_malformed_access_log_gets_an_empty_page(api, demo):
    response = api("auditor").get("/api/v1/consumers/%00/access-log/")
    assert response.status_code == 200 and response.json()["results"] == []


def test_the_requester_cannot_revoke_their_own_grant(api, demo):
    grant = AccessGrant.objects.get(case_reference="SH-A-2026-Q3-DELTA")  # requested by `compliance`
    response = api("compliance").post(
        f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "x"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_a_grant_request_does_not_confirm_a_consumer_before_it_is_complete(api, demo):
    real = demo.consumer_in(CCF).public_id
    answers = []
    for public_id in (real, "CZZZZZZZZZZZZZZZZ"):
        body = {
            "consumer": public_id,
            "permissions": ["view_records"],
            "purpose": "p",
            "legal_basis": "b",
            "case_reference": "c",
            "valid_from": "2000-01-01T00:00:00Z",
            "valid_until": "2000-02-01T00:00:00Z",
        }
        response = api("regulator2").post("/api/v1/grants/", body, content_type="application/json")
        answers.append((response.status_code, response.content))
        assert AuditEvent.objects.latest("id").requested_id == public_id
    assert answers[0] == answers[1]


def test_consumer_detail_lists_only_segments_with_records_permission(api, demo):
    regulator = User.objects.get(username="regulator")
    grant = services.grant_request(
        requester=regulator,
        segment=demo.segment("revolving-credit"),
        permissions=["view_aggregates"],
        purpose="p",
        legal_basis="b",
        case_reference="c",
        valid_until=AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412").valid_until,
    )
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    consumer = demo.consumer_in(CCF)
    shown = {
        s["id"] for s in api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/").json()["segments"]
    }
    assert shown == {demo.segment(CCF).pk}


def test_segment_sizes_are_suppressed_when_small(api, demo):
    segment = demo.segment("case-2026-017")
    assert segment.consumers.count() < 10
    grant = services.grant_request(
        requester=User.objects.get(username="compliance"),
        segment=segment,
        permissions=["view_aggregates"],
        purpose="p",
        legal_basis="b",
        case_reference="c",
        valid_until=AccessGrant.objects.get(case_reference="SH-A-2026-Q3-DELTA").valid_until,
        grantee_organisation=Organisation.objects.get(short_name="state-capital-a"),
    )
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance2"))
    sizes = {s["id"]: s["size"] for s in api("shareholder").get("/api/v1/segments/").json()["results"]}
    assert sizes[segment.pk] is None


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [("9999-12-31T00:00:00+08:00", "9999-12-31T23:59:59+08:00"), ("+400", "+401")],
)
def test_a_grant_cannot_start_more_than_a_year_ahead(api, demo, valid_from, valid_until):
    def moment(value: str) -> str:
        if not value.startswith("+"):
            return value
        return (timezone.now() + timedelta(days=int(value[1:]))).isoformat()

    body = {
        "segment": demo.segment(CCF).pk,
        "permissions": ["view_masked_records"],
        "purpose": "Review.",
        "legal_basis": "Mandate.",
        "case_reference": "FAR-AHEAD",
        "valid_from": moment(valid_from),
        "valid_until": moment(valid_until),
    }
    response = api("regulator2").post("/api/v1/grants/", body, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()) == ["valid_from"]
    assert not AccessGrant.objects.filter(case_reference="FAR-AHEAD").exists()
