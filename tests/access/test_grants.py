"""The grant lifecycle: four eyes, immediate effect of approval and revocation, expiry, reconciliation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission as AuthPermission
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.access import policy, services
from portal.access.models import (
    AccessGrant,
    ConsumerUserObjectPermission,
    SegmentGroupObjectPermission,
    SegmentUserObjectPermission,
)
from portal.accounts.models import Organisation, User
from tests.api.conftest import ApiClient

CASH = "cash-loans"


def request_grant(requester: str, segment, permissions=("view_records",), **extra) -> AccessGrant:
    return services.grant_request(
        requester=User.objects.get(username=requester),
        segment=segment,
        permissions=list(permissions),
        purpose="Review.",
        legal_basis="Mandate.",
        case_reference="CASE-T",
        valid_until=extra.pop("valid_until", timezone.now() + timedelta(days=30)),
        **extra,
    )


def compliance(name: str = "compliance") -> User:
    return User.objects.get(username=name)


def regulator_sees(consumer) -> bool:
    return (
        ApiClient(User.objects.get(username="regulator2"))
        .get(f"/api/v1/consumers/{consumer.public_id}/")
        .status_code
        == 200
    )


def test_the_requester_cannot_approve_their_own_grant(api, demo):
    grant = request_grant(
        "compliance",
        demo.segment(CASH),
        ["view_aggregates"],
        grantee_organisation=Organisation.objects.get(short_name="state-capital-b"),
    )
    response = api("compliance").post(
        f"/api/v1/grants/{grant.pk}/approve/", {}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "Four eyes" in response.json()["detail"]
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.REQUESTED


def test_the_database_refuses_a_self_approved_grant_too(demo):
    grant = request_grant("regulator2", demo.segment(CASH))
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessGrant.objects.filter(pk=grant.pk).update(decided_by=grant.requested_by, status="approved")


def test_only_compliance_decides(demo):
    grant = request_grant("regulator2", demo.segment(CASH))
    with pytest.raises(services.GrantError):
        services.grant_approve(grant=grant, approver=User.objects.get(username="regulator"))


def test_approval_gives_access_at_once_and_revocation_removes_it_at_once(api, demo):
    consumer = demo.consumer_in(CASH, not_in=("chengdu-chongqing-consumer-finance",))
    assert not regulator_sees(consumer)
    grant = request_grant("regulator2", demo.segment(CASH))
    assert not regulator_sees(consumer)
    response = api("compliance").post(
        f"/api/v1/grants/{grant.pk}/approve/", {"note": "ok"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert regulator_sees(consumer)
    response = api("compliance2").post(
        f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "Case closed."}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert not regulator_sees(consumer)
    assert not SegmentGroupObjectPermission.objects.filter(content_object=demo.segment(CASH)).exists()


def test_a_grant_past_its_end_gives_nothing_while_its_guardian_row_remains(demo):
    consumer = demo.consumer_in(CASH, not_in=("chengdu-chongqing-consumer-finance",))
    grant = services.grant_approve(
        grant=request_grant("regulator2", demo.segment(CASH)), approver=compliance()
    )
    assert regulator_sees(consumer)
    AccessGrant.objects.filter(pk=grant.pk).update(
        valid_from=timezone.now() - timedelta(days=2), valid_until=timezone.now() - timedelta(seconds=1)
    )
    assert SegmentGroupObjectPermission.objects.filter(content_object=demo.segment(CASH)).exists()
    assert not regulator_sees(consumer)


def test_expiry_marks_grants_expired_and_drops_their_rows_idempotently(demo):
    grant = services.grant_approve(
        grant=request_grant("regulator2", demo.segment(CASH)), approver=compliance()
    )
    later = grant.valid_until + timedelta(seconds=1)
    assert services.grants_expire(now=later) == 1
    assert services.grants_expire(now=later) == 0
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.EXPIRED
    assert not SegmentGroupObjectPermission.objects.filter(content_object=demo.segment(CASH)).exists()


def test_revoking_one_of_two_overlapping_grants_keeps_the_other(demo):
    first = services.grant_approve(
        grant=request_grant("regulator2", demo.segment(CASH)), approver=compliance()
    )
    second = services.grant_approve(
        grant=request_grant("regulator2", demo.segment(CASH)), approver=compliance()
    )
    services.grant_revoke(grant=first, revoker=compliance("compliance2"), reason="Superseded.")
    consumer = demo.consumer_in(CASH, not_in=("chengdu-chongqing-consumer-finance",))
    assert regulator_sees(consumer)
    scope = policy.scope_for(User.objects.get(username="regulator2"))
    chosen = scope.grant_for_segment(demo.segment(CASH).pk, "view_records")
    assert chosen is not None and chosen.pk == second.pk


def test_reconciliation_restores_exactly_what_the_grants_imply(demo):
    def snapshot():
        return {
            model.__name__: sorted(
                model.objects.values_list(holder, "permission__codename", "content_object_id")
            )
            for model, holder in (
                (SegmentGroupObjectPermission, "group_id"),
                (SegmentUserObjectPermission, "user_id"),
                (ConsumerUserObjectPermission, "user_id"),
            )
        }

    services.grant_approve(grant=request_grant("regulator2", demo.segment(CASH)), approver=compliance())
    expected = snapshot()
    assert services.permissions_reconcile() == (0, 0)
    # Corrupt guardian's tables on purpose: a row no grant implies, and a row a grant needs removed.
    SegmentUserObjectPermission.objects.create(
        user=User.objects.get(username="auditor"),
        permission=AuthPermission.objects.get(codename="view_records", content_type__model="segment"),
        content_object=demo.segment("young-borrowers"),
    )
    SegmentGroupObjectPermission.objects.filter(content_object=demo.segment(CASH)).earliest("pk").delete()
    assert snapshot() != expected
    assert services.permissions_reconcile() == (1, 1)
    assert snapshot() == expected
    assert services.permissions_reconcile() == (0, 0)


def test_a_guardian_row_without_a_grant_gives_nothing(demo):
    segment = demo.segment("young-borrowers")
    SegmentUserObjectPermission.objects.create(
        user=User.objects.get(username="regulator2"),
        permission=AuthPermission.objects.get(codename="view_records", content_type__model="segment"),
        content_object=segment,
    )
    assert policy.scope_for(User.objects.get(username="regulator2")).is_empty()


def test_guardian_uses_the_direct_foreign_key_tables(demo):
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    segment = demo.segment(CASH)
    assert get_user_obj_perms_model(segment) is SegmentUserObjectPermission
    assert get_group_obj_perms_model(segment) is SegmentGroupObjectPermission


def test_a_segment_grant_costs_one_row_per_permission_not_per_consumer(demo):
    services.grant_approve(
        grant=request_grant("regulator2", demo.segment(CASH), ["view_records", "view_scores"]),
        approver=compliance(),
    )
    assert SegmentGroupObjectPermission.objects.filter(content_object=demo.segment(CASH)).count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"valid_until": timezone.now() + timedelta(days=400)}, "valid_until"),
        ({"valid_until": timezone.now() - timedelta(days=1)}, "valid_until"),
        ({"valid_from": timezone.now() - timedelta(days=2)}, "valid_from"),
        # A far-off start with its end close behind stays within the length cap, but not the start cap.
        (
            {
                "valid_from": timezone.now() + timedelta(days=400),
                "valid_until": timezone.now() + timedelta(days=401),
            },
            "valid_from",
        ),
        ({"permissions": []}, "permissions"),
        ({"permissions": ["delete_everything"]}, "permissions"),
        ({"purpose": "  "}, "purpose"),
        ({"legal_basis": ""}, "legal_basis"),
        ({"case_reference": ""}, "case_reference"),
    ],
)
def test_a_bad_request_names_its_field(demo, change, field):
    arguments = {
        "requester": User.objects.get(username="regulator2"),
        "segment": demo.segment(CASH),
        "permissions": ["view_records"],
        "purpose": "Review.",
        "legal_basis": "Mandate.",
        "case_reference": "C-1",
        "valid_until": timezone.now() + timedelta(days=30),
        **change,
    }
    with pytest.raises(services.GrantError) as refused:
        services.grant_request(**arguments)
    assert refused.value.field == field


def test_shareholders_are_granted_aggregates_only(demo):
    with pytest.raises(services.GrantError, match="aggregates"):
        request_grant(
            "compliance",
            demo.segment(CASH),
            ["view_masked_records"],
            grantee_organisation=Organisation.objects.get(short_name="state-capital-b"),
        )


def test_a_regulator_cannot_request_for_another_organisation(demo):
    with pytest.raises(services.GrantError) as refused:
        request_grant(
            "regulator2",
            demo.segment(CASH),
            grantee_organisation=Organisation.objects.get(short_name="pbc-crc"),
        )
    assert refused.value.field == "grantee_organisation"


def test_a_personal_grant_reaches_only_its_user(demo):
    grant = request_grant("regulator2", demo.segment(CASH), for_requester_only=True)
    services.grant_approve(grant=grant, approver=compliance())
    assert not policy.scope_for(User.objects.get(username="regulator2")).is_empty()
    colleague = User.objects.create(
        username="colleague", role="regulator", organisation=grant.requested_by.organisation
    )
    assert policy.scope_for(colleague).is_empty()


def test_x_access_grant_narrows_scope_to_the_grant_named(api, demo):
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    client = api("regulator")
    assert client.get("/api/v1/consumers/", HTTP_X_ACCESS_GRANT=str(grant.pk)).status_code == 200
    other = AccessGrant.objects.get(case_reference="SH-A-2026-Q3-DELTA")
    for header in (str(other.pk), "999999", "abc"):
        response = client.get("/api/v1/consumers/", HTTP_X_ACCESS_GRANT=header)
        assert response.status_code == 400
        assert "X-Access-Grant" in response.json()


def test_a_decided_grant_cannot_be_decided_again(api, demo):
    grant = request_grant("regulator2", demo.segment(CASH))
    services.grant_reject(grant=grant, approver=compliance(), note="No legal basis.")
    response = api("compliance2").post(
        f"/api/v1/grants/{grant.pk}/approve/", {}, content_type="application/json"
    )
    assert response.status_code == 409
    assert "status" in response.json()
