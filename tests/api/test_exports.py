"""Exports: requested under export_records, built through the policy by a worker task, downloaded once
audited with the file's SHA-256; formula cells escaped; the grant re-checked at download."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from portal.access import services
from portal.access.exports import safe_cell
from portal.access.models import AccessGrant, Export
from portal.accounts.models import User

CCF = "chengdu-chongqing-consumer-finance"


def request_export(client, segment_id: int | None, kind: str = "transactions"):
    return client.post(
        "/api/v1/exports/", {"segment": segment_id, "kind": kind}, content_type="application/json"
    )


def test_an_export_is_built_and_its_download_audited_with_the_sha256(
    api, demo, eager_tasks, django_capture_on_commit_callbacks
):
    client = api("regulator")
    with django_capture_on_commit_callbacks(execute=True):
        response = request_export(client, demo.segment(CCF).pk)
    assert response.status_code == 202
    export_id = response.json()["id"]
    status = client.get(f"/api/v1/exports/{export_id}/").json()
    assert status["status"] == "ready" and status["masked"] is False
    download = client.get(f"/api/v1/exports/{export_id}/download/")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == status["sha256"] == download["X-Content-SHA256"]
    rows = list(csv.reader(io.StringIO(body.decode())))
    members = {c.public_id for c in demo.segment(CCF).consumers.all()}
    assert len(rows) - 1 == status["row_count"] > 0
    assert {r[0] for r in rows[1:]} <= members
    event = AuditEvent.objects.filter(action="export.download").latest("id")
    assert event.export_sha256 == status["sha256"]
    assert event.row_count == status["row_count"]
    assert set(event.subjects.values_list("public_id", flat=True)) == {r[0] for r in rows[1:]}


def test_exports_need_export_records(api, demo):
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    response = request_export(api("regulator2"), grant.segment_id)
    assert response.status_code == 403
    assert response.json()["missing_permission"] == "export_records"
    assert api("compliance").post("/api/v1/exports/", {}, content_type="application/json").status_code == 403


def test_a_segment_seen_but_not_exportable_is_refused_naming_the_permission(api, demo):
    shareholder = api("shareholder")
    seen = [segment["id"] for segment in shareholder.get("/api/v1/segments/").json()["results"]]
    assert seen
    response = request_export(shareholder, seen[0])
    assert response.status_code == 403
    body = response.json()
    assert body["missing_permission"] == "export_records" and "export_records" in body["detail"]
    event = AuditEvent.objects.filter(action="export.request").latest("id")
    assert (event.outcome, event.status) == ("denied", 403)
    # A segment the shareholder holds nothing on answers like an unknown one: nothing tells it exists.
    unseen = demo.segment(CCF).pk
    assert unseen not in seen
    for segment_id in (unseen, 999_999):
        response = request_export(shareholder, segment_id)
        assert response.status_code == 400 and response.json() == {"segment": ["Unknown segment."]}


def test_a_revoked_grant_stops_the_download(api, demo, eager_tasks, django_capture_on_commit_callbacks):
    client = api("regulator")
    with django_capture_on_commit_callbacks(execute=True):
        export_id = request_export(client, demo.segment(CCF).pk, "consumers").json()["id"]
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    services.grant_revoke(grant=grant, revoker=User.objects.get(username="compliance"), reason="Done.")
    assert client.get(f"/api/v1/exports/{export_id}/download/").status_code == 410


def test_someone_elses_export_does_not_exist(api, demo, eager_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        export_id = request_export(api("regulator"), demo.segment(CCF).pk).json()["id"]
    for path in (
        f"/api/v1/exports/{export_id}/",
        f"/api/v1/exports/{export_id}/download/",
        "/api/v1/exports/not-a-uuid/",
    ):
        assert api("admin").get(path).status_code == 404
    assert Export.objects.count() == 1


def test_formula_cells_are_escaped():
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [safe_cell(v) for v in ("+1", "-2", "@a", "plain", 5, None)] == [
        "'+1",
        "'-2",
        "'@a",
        "plain",
        "5",
        "",
    ]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_export(celery_worker_process):
    from tests.api.conftest import ApiClient

    call_command("seed_demo", "--consumers", "300", verbosity=0)
    client = ApiClient(User.objects.get(username="regulator"))
    from portal.records.models import Segment

    export_id = request_export(client, Segment.objects.get(slug=CCF).pk).json()["id"]
    deadline = time.monotonic() + 60
    status = client.get(f"/api/v1/exports/{export_id}/").json()
    while status["status"] in ("pending", "building") and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get(f"/api/v1/exports/{export_id}/").json()
    assert status["status"] == "ready", status
    body = b"".join(client.get(f"/api/v1/exports/{export_id}/download/").streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(body).hexdigest() == status["sha256"]


@pytest.mark.postgres
def test_the_copy_builder_writes_the_row_builders_bytes(demo, tmp_path):
    """On PostgreSQL a transactions export is one COPY: the same bytes, rows, subjects and SHA-256 as the
    row-by-row builder, for awkward cells too (formula prefixes, quotes, commas, line breaks, microseconds,
    empty merchants)."""
    from datetime import timedelta

    from portal.access import exports, policy
    from portal.records.models import Merchant, Transaction

    segment = demo.segment(CCF)
    rows = list(Transaction.objects.filter(consumer__memberships__segment=segment).order_by("id")[:6])
    awkward = [
        '=HYPERLINK("http://x"),a',
        'say "hi"\nnext line',
        "@home\r\nback",
        "+8613800000000",
        "\tindented",
    ]
    for index, (transaction, name) in enumerate(zip(rows, awkward, strict=False)):
        transaction.merchant = Merchant.objects.create(
            code=f"AWK{index}", name=name, category=Merchant.Category.ONLINE_RETAIL
        )
        transaction.occurred_at += timedelta(microseconds=123)
        transaction.save(update_fields=["merchant", "occurred_at"])
    rows[-1].merchant = None
    rows[-1].save(update_fields=["merchant"])

    regulator = User.objects.get(username="regulator")
    grant = AccessGrant.objects.get(segment=segment, status="approved", grantee_organisation__isnull=False)
    export = Export.objects.create(
        public_id=uuid.uuid4(),
        requested_by=regulator,
        grant=grant,
        segment=segment,
        kind=Export.Kind.TRANSACTIONS,
    )
    scope = policy.scope_for(regulator, grant_id=grant.pk)
    by_rows = exports.write_rows(tmp_path / "rows.csv", export, scope, True)
    by_copy = exports.write_transactions_copy(tmp_path / "copy.csv", exports._transactions(export, scope))
    assert (tmp_path / "copy.csv").read_bytes() == (tmp_path / "rows.csv").read_bytes()
    assert by_copy == by_rows
    assert by_rows[0] > 100 and len(by_rows[1]) > 1
    body = (tmp_path / "copy.csv").read_text()
    assert "'=HYPERLINK" in body and "'@home" in body and "'+86" in body
