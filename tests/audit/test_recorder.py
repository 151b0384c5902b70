"""The recorder keeps whatever a client sends on the record, even what the database cannot store verbatim."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent


@pytest.mark.django_db
def test_a_nul_in_the_request_is_recorded_not_turned_into_a_503(client):
    response = client.get("/admin/%00/", {"segment": "a\x00b", "x\x00": "1"}, HTTP_USER_AGENT="probe\x00")
    assert response.status_code != 503
    event = AuditEvent.objects.get()
    assert event.path == "/admin/\ufffd/"
    assert event.query["segment"] == "a\ufffdb"
    assert event.query["x\ufffd"].startswith("hmac:")  # not a reviewed plain parameter: hashed
    assert event.user_agent == "probe\ufffd"


@pytest.mark.django_db
def test_unknown_parameters_are_kept_only_as_keyed_hashes(client):
    client.get("/admin/", {"resident_id": "110105194912310021", "kind": "payment"})
    event = AuditEvent.objects.latest("id")
    assert event.query["kind"] == "payment"
    assert "110105194912310021" not in str(event.query)


@pytest.mark.django_db
def test_a_request_with_too_many_parameters_is_still_recorded(client):
    query = "&".join(f"p{i}=1" for i in range(1100))
    response = client.get(f"/admin/?{query}")
    event = AuditEvent.objects.latest("id")
    assert event.status == response.status_code
    assert event.query == {"_unparsed": True}
