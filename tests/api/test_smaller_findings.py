"""The smaller findings of the security review: dates the database cannot hold, the 406's actor, masked names
that tell their length, export files left behind, export requests without their event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from portal.access import services
from portal.access.exports import export_dir
from portal.access.models import AccessGrant, Export
from portal.accounts.models import User
from portal.records.models import Consumer
from tests.access.test_decisions_recorded import audit_refused_for

CCF = "chengdu-chongqing-consumer-finance"
UNSTORABLE = ["2020-01-01T00:00:00+16:00", "2020-01-01T00:00:00-17:30", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("value", UNSTORABLE)
@pytest.mark.parametrize("name", ["since", "until"])
def test_a_date_the_database_cannot_hold_is_a_400_naming_the_field(api, demo, name, value):
    consumer = demo.consumer_in(CCF)
    for client, path in (
        (api("regulator"), "/api/v1/transactions/"),
        (api("regulator"), f"/api/v1/consumers/{consumer.public_id}/transactions/"),
        (api("auditor"), "/api/v1/audit/events/"),
    ):
        response = client.get(path, {name: value})
        assert response.status_code == 400, (path, response.content)
        assert name in response.json()


def test_an_offset_postgresql_accepts_still_filters(api, demo):
    response = api("regulator").get("/api/v1/transactions/", {"since": "2020-01-01T00:00:00+15:00"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/consumers/{id}/", "/audit/events/"])
def test_the_web_pages_refuse_such_dates_next_to_the_field(demo, client, path):
    consumer = demo.consumer_in(CCF)
    user = "auditor" if path.startswith("/audit") else "regulator"
    client.force_login(User.objects.get(username=user))
    response = client.get(path.format(id=consumer.public_id), {"since": UNSTORABLE[0]})
    assert response.status_code in (200, 400)
    assert 'id="id_since"' in response.content.decode() and "errorlist" in response.content.decode()


def test_a_refused_accept_header_is_recorded_with_its_actor(api, demo):
    response = api("regulator").get("/api/v1/consumers/", HTTP_ACCEPT="application/x-unknown")
    assert response.status_code == 406
    event = AuditEvent.objects.latest("id")
    assert (event.status, event.actor_username, event.actor_role) == (406, "regulator", "regulator")
    assert event.actor_id == User.objects.get(username="regulator").pk


def test_a_bad_token_with_a_refused_accept_header_is_still_401(api, demo):
    response = api(None).get(
        "/api/v1/consumers/", HTTP_ACCEPT="application/x-unknown", HTTP_AUTHORIZATION="Bearer nope"
    )
    assert response.status_code == 401


def test_masked_names_do_not_tell_their_length(api, demo):
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")  # view_masked_records on the delta
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    results = api("regulator2").get("/api/v1/consumers/?page_size=200").json()["results"]
    names = {
        c.public_id: c.name for c in Consumer.objects.filter(public_id__in=[r["public_id"] for r in results])
    }
    assert {len(n) for n in names.values()} != {3}, "the demo world should have names of several lengths"
    for row in results:
        assert row["name"] == names[row["public_id"]][0] + "**"


# --- Export files -----------------------------------------------------------------------------------------
@pytest.fixture
def built_export(api, demo, eager_tasks, django_capture_on_commit_callbacks) -> Export:
    with django_capture_on_commit_callbacks(execute=True):
        response = api("regulator").post(
            "/api/v1/exports/", {"segment": demo.segment(CCF).pk}, content_type="application/json"
        )
    assert response.status_code == 202
    export = Export.objects.get(public_id=response.json()["id"])
    assert export.status == Export.Status.READY
    return export


def files_of(export: Export) -> list[str]:
    return sorted(p.name for p in export_dir().glob(f"{export.public_id}*"))


def test_an_export_request_records_its_own_event(built_export):
    event = AuditEvent.objects.get(action="export.requested")
    assert (event.requested_id, event.grant_id, event.actor_username) == (
        str(built_export.public_id),
        built_export.grant_id,
        "regulator",
    )


def test_an_export_request_without_its_event_is_not_made(api, demo):
    with audit_refused_for("regulator"):
        response = api("regulator").post(
            "/api/v1/exports/", {"segment": demo.segment(CCF).pk}, content_type="application/json"
        )
    assert response.status_code == 503 and not Export.objects.exists()


def test_expired_export_files_are_deleted_by_the_periodic_task(
    api, built_export, django_capture_on_commit_callbacks
):
    from portal.access.tasks import discard_expired_exports

    assert "exports-discard-expired" in settings.CELERY_BEAT_SCHEDULE
    assert files_of(built_export) == [
        f"{built_export.public_id}.csv",
        f"{built_export.public_id}.subjects.json",
    ]
    with django_capture_on_commit_callbacks(execute=True):
        discard_expired_exports.apply()
    assert files_of(built_export), "an export that has not expired keeps its file"
    Export.objects.filter(pk=built_export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        discard_expired_exports.apply()
    assert files_of(built_export) == []
    built_export.refresh_from_db()
    assert built_export.files_deleted_at is not None
    # Even with its expiry moved back (the row is not the file), the download is gone for good.
    Export.objects.filter(pk=built_export.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert api("regulator").get(f"/api/v1/exports/{built_export.public_id}/download/").status_code == 410


def test_revoking_the_grant_deletes_its_export_files_at_once(
    api, built_export, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_revoke(
            grant=built_export.grant, revoker=User.objects.get(username="compliance"), reason="Case closed."
        )
    assert files_of(built_export) == []
    assert api("regulator").get(f"/api/v1/exports/{built_export.public_id}/download/").status_code == 410


def test_an_expired_grant_takes_its_export_files_along(api, built_export, django_capture_on_commit_callbacks):
    AccessGrant.objects.filter(pk=built_export.grant_id).update(
        valid_from=timezone.now() - timedelta(days=2), valid_until=timezone.now() - timedelta(seconds=1)
    )
    from portal.access.tasks import expire_grants

    with django_capture_on_commit_callbacks(execute=True):
        expire_grants.apply()
    assert files_of(built_export) == []
