"""Each subject carries its own grant (SPEC §3, §4): a list spanning several grants records, for each consumer
shown, the grant it was shown under; the per-consumer access log shows that grant and its purpose, and a
regulator sees its own organisation's entries in full and only the count of other organisations'."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import chain
from audit.models import AuditEvent, AuditSubject
from audit.verify import chain_verify
from portal.access import services
from portal.access.models import AccessGrant
from portal.accounts.models import User
from portal.records.models import Consumer

CCF = "chengdu-chongqing-consumer-finance"
REVOLVING = "revolving-credit"


@pytest.fixture
def two_grants(demo) -> tuple[AccessGrant, AccessGrant]:
    """regulator's demo grant on CCF, and a second, later one on revolving credit with its own purpose."""
    first = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    second = services.grant_request(
        requester=User.objects.get(username="regulator"),
        segment=demo.segment(REVOLVING),
        permissions=["view_records"],
        purpose="Review of revolving credit utilisation.",
        legal_basis="b",
        case_reference="c",
        valid_until=timezone.now() + timedelta(days=3),
    )
    services.grant_approve(grant=second, approver=User.objects.get(username="compliance"))
    return first, second


@pytest.mark.parametrize("path", ["/api/v1/consumers/", "/api/v1/transactions/"])
def test_a_list_spanning_two_grants_records_each_consumers_own_grant(api, demo, two_grants, path):
    first, second = two_grants
    only_second = set(
        Consumer.objects.filter(memberships__segment__slug=REVOLVING)
        .exclude(memberships__segment__slug=CCF)
        .values_list("public_id", flat=True)
    )
    in_first = set(
        Consumer.objects.filter(memberships__segment__slug=CCF).values_list("public_id", flat=True)
    )
    assert only_second and in_first
    response = api("regulator").get(f"{path}?page_size=200")
    assert response.status_code == 200
    event = AuditEvent.objects.filter(path=path).latest("id")
    subjects = dict(AuditSubject.objects.filter(event_id=event.pk).values_list("public_id", "grant_id"))
    assert subjects and set(subjects) <= only_second | in_first
    assert only_second & set(subjects), "the page should include consumers covered only by the second grant"
    for public_id, grant_id in subjects.items():
        # The oldest covering grant authorises: the first for its segment's consumers, else the second.
        assert grant_id == (first.pk if public_id in in_first else second.pk), public_id


def test_the_access_log_shows_the_grant_and_purpose_each_consumer_was_shown_under(api, demo, two_grants):
    first, second = two_grants
    consumer = demo.consumer_in(REVOLVING, not_in=(CCF,))
    regulator = api("regulator")
    assert regulator.get("/api/v1/consumers/?page_size=200").status_code == 200
    listed = AuditEvent.objects.filter(action="consumer.list").latest("id")
    assert listed.grant_id == first.pk  # the list as a whole is attributed to the oldest grant

    log = regulator.get(f"/api/v1/consumers/{consumer.public_id}/access-log/").json()
    entry = next(e for e in log["results"] if e["id"] == listed.pk)
    assert (entry["grant_id"], entry["purpose"]) == (second.pk, second.purpose)
    auditor_log = api("auditor").get(f"/api/v1/consumers/{consumer.public_id}/access-log/").json()
    entry = next(e for e in auditor_log["results"] if e["id"] == listed.pk)
    assert (entry["grant_id"], entry["purpose"]) == (second.pk, second.purpose)


def test_the_consumer_page_access_log_shows_the_subjects_grant(api, demo, two_grants, client):
    _first, second = two_grants
    consumer = demo.consumer_in(REVOLVING, not_in=(CCF,))
    assert api("regulator").get("/api/v1/consumers/?page_size=200").status_code == 200
    client.force_login(User.objects.get(username="regulator"))
    html = client.get(f"/consumers/{consumer.public_id}/").content.decode()
    assert f'#{second.pk}</td><td class="content">{second.purpose}' in html


def test_a_regulator_sees_only_a_count_of_other_organisations_entries(api, demo):
    # The other regulator (another organisation) gets a grant on the same segment and reads the consumer.
    pending = services.grant_request(
        requester=User.objects.get(username="regulator2"),
        segment=demo.segment(CCF),
        permissions=["view_records"],
        purpose="Another organisation's confidential inquiry.",
        legal_basis="b",
        case_reference="c",
        valid_until=timezone.now() + timedelta(days=3),
    )
    services.grant_approve(grant=pending, approver=User.objects.get(username="compliance2"))
    consumer = demo.consumer_in(CCF)
    assert api("regulator2").get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 200
    assert api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/").status_code == 200

    log = api("regulator").get(f"/api/v1/consumers/{consumer.public_id}/access-log/").json()
    assert log["results"] and {e["actor_organisation"] for e in log["results"]} == {
        str(User.objects.get(username="regulator").organisation)
    }
    assert "regulator2" not in str(log) and pending.purpose not in str(log)
    assert log["other_organisations_entries"] == 1

    everything = api("auditor").get(f"/api/v1/consumers/{consumer.public_id}/access-log/").json()
    assert {"regulator", "regulator2"} <= {e["actor_username"] for e in everything["results"]}
    assert everything["other_organisations_entries"] == 0

    # The consumer page of the web says the same.
    from django.test import Client

    web = Client()
    web.force_login(User.objects.get(username="regulator"))
    html = web.get(f"/consumers/{consumer.public_id}/").content.decode()
    assert "regulator2" not in html and pending.purpose not in html
    assert "One more entry belongs to another organisation" in html


def test_the_subjects_grant_is_sealed_into_the_chain(api, demo, two_grants):
    assert api("regulator").get("/api/v1/consumers/?page_size=200").status_code == 200
    chain.events_seal()
    assert chain_verify().ok
    event = AuditEvent.objects.filter(action="consumer.list").latest("id")
    pairs = list(AuditSubject.objects.filter(event_id=event.pk).values_list("public_id", "grant_id"))
    fields = dict(
        zip(
            chain.EVENT_FIELDS,
            AuditEvent.objects.filter(pk=event.pk).values_list(*chain.EVENT_FIELDS)[0],
            strict=True,
        )
    )
    sealed = chain.link_hash(event.prev_hash, chain.canonical_bytes(fields, pairs))
    assert sealed == event.hash
    # Another grant for one subject, or none at all, would not verify.
    assert pairs[0][1] is not None
    changed = [(pairs[0][0], pairs[0][1] + 1), *pairs[1:]]
    assert chain.link_hash(event.prev_hash, chain.canonical_bytes(fields, changed)) != event.hash
    bare = [public_id for public_id, _grant in pairs]
    assert chain.link_hash(event.prev_hash, chain.canonical_bytes(fields, bare)) != event.hash


def test_events_whose_subjects_have_no_grant_keep_the_first_encoding():
    event = {name: None for name in chain.EVENT_FIELDS}
    assert b'"subjects":["C1","C2"]' in chain.canonical_bytes(event, ["C2", "C1"])
    assert b'"v":1' in chain.canonical_bytes(event, [("C2", None), ("C1", None)])
    assert chain.canonical_bytes(event, ["C2", "C1"]) == chain.canonical_bytes(
        event, [("C2", None), ("C1", None)]
    )
    encoded = chain.canonical_bytes(event, [("C2", 7), ("C1", None)])
    assert b'"subjects":[["C1",null],["C2",7]]' in encoded and b'"v":2' in encoded


def test_the_web_consumer_list_records_each_consumers_own_grant(demo, two_grants, client):
    first, second = two_grants
    in_first = set(
        Consumer.objects.filter(memberships__segment__slug=CCF).values_list("public_id", flat=True)
    )
    client.force_login(User.objects.get(username="regulator"))
    assert client.get("/consumers/").status_code == 200
    event = AuditEvent.objects.filter(action="consumer.list", method="GET", path="/consumers/").latest("id")
    subjects = dict(AuditSubject.objects.filter(event_id=event.pk).values_list("public_id", "grant_id"))
    assert subjects
    for public_id, grant_id in subjects.items():
        assert grant_id == (first.pk if public_id in in_first else second.pk), public_id
