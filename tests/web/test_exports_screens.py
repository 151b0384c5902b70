"""CSV downloads on screens go through the export workflow: offered only under export_records, built through
the policy, and the download recorded with the file's SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from audit.models import AuditEvent
from portal.access.models import Export
from portal.celery import app
from tests.web.conftest import CCF, DELTA

pytestmark = pytest.mark.postgres


def test_a_csv_download_is_granted_audited_and_hashed(client_for, world, django_capture_on_commit_callbacks):
    regulator = client_for("regulator")
    ccf = world.segment(CCF)
    page = regulator.get(f"/segments/{ccf.pk}/").content.decode()
    assert 'action="/exports/request/"' in page
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = regulator.post("/exports/request/", {"segment": ccf.pk, "kind": "transactions"})
    finally:
        app.conf.task_always_eager = saved
    assert response.status_code == 302
    export = Export.objects.get(requested_by__username="regulator")
    assert export.status == Export.Status.READY
    listing = regulator.get("/exports/").content.decode()
    assert f"/exports/{export.public_id}/download/" in listing and export.sha256 in listing
    download = regulator.get(f"/exports/{export.public_id}/download/")
    body = b"".join(download.streaming_content)
    assert download.status_code == 200 and hashlib.sha256(body).hexdigest() == export.sha256
    event = AuditEvent.objects.filter(action="export.download").latest("id")
    assert event.export_sha256 == export.sha256 and event.grant_id == export.grant_id
    assert event.subjects.exists()  # the consumers whose rows the file holds
    # Nobody else downloads it.
    assert client_for("regulator2").get(f"/exports/{export.public_id}/download/").status_code == 404
    assert client_for("regulator").get("/exports/not-a-uuid/download/").status_code == 404


def test_no_csv_without_export_records(client_for, world):
    shareholder = client_for("shareholder")
    delta = world.segment(DELTA)
    assert 'action="/exports/request/"' not in shareholder.get(f"/segments/{delta.pk}/").content.decode()
    refused = shareholder.post("/exports/request/", {"segment": delta.pk, "kind": "transactions"})
    assert refused.status_code == 404
    assert client_for("regulator").post("/exports/request/", {"segment": "x"}).status_code == 404
    assert client_for("auditor").post("/exports/request/", {"segment": delta.pk}).status_code == 403
    assert not Export.objects.exists()
