"""The audit event list's fast path: plain rows and orjson answer what AuditEventSerializer and DRF's renderer
answered, byte for byte, and the request costs the same queries whatever the page size."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.models import Prefetch, Q

from audit import selectors
from audit.chain import events_seal
from audit.models import AuditEvent, AuditSubject
from portal.api.renderers import PortalJSONRenderer
from portal.api.views.audit import AuditEventSerializer

CCF = "chengdu-chongqing-consumer-finance"
# The serializer's prefetch named no order: it got the (event, public id) index's on SQLite and on a large
# PostgreSQL table, the heap's on a small one. The list answers the index's, always.
BY_PUBLIC_ID = Prefetch("subjects", queryset=AuditSubject.objects.order_by("public_id"))


def _serializer_body(events: list[AuditEvent], following: str | None, previous: str | None) -> bytes:
    """The body as the serializer path rendered it: each event a model instance with its subjects."""
    data = AuditEventSerializer(events, many=True).data
    return PortalJSONRenderer().render({"next": following, "previous": previous, "results": data})


def _traffic(api, demo) -> None:
    """Events of every shape: lists with many subjects (recorded in time order), a search (hashed term,
    query recorded), a detail, a denial (404, no subjects), a refused role (403), reads of the trail."""
    regulator = api("regulator")
    consumer = demo.consumer_in(CCF)
    regulator.get("/api/v1/transactions/?page_size=30")
    regulator.get("/api/v1/consumers/?page_size=20")
    regulator.get(f"/api/v1/consumers/?q={consumer.resident_id}")
    regulator.get(f"/api/v1/consumers/{consumer.public_id}/")
    regulator.get("/api/v1/consumers/NOT-A-CONSUMER/")
    api("compliance").get("/api/v1/consumers/")
    api("auditor").get("/api/v1/audit/verify/")


def test_the_event_list_answers_the_serializers_bytes(api, demo):
    _traffic(api, demo)
    events_seal()  # sealed events carry their position, time and hash; the later ones stay pending
    _traffic(api, demo)
    client = api("auditor")
    consumer = demo.consumer_in(CCF).public_id
    for filters, size in (
        ({}, 7),
        ({}, 200),
        ({"consumer": consumer}, 50),
        ({"actor": "regulator", "outcome": "denied"}, 50),
    ):
        # The page as the serializer path read it; the request records its own event only after its page.
        events = list(selectors.event_list(**filters).prefetch_related(BY_PUBLIC_ID)[:size])
        response = client.get("/api/v1/audit/events/", {**filters, "page_size": size})
        assert response.status_code == 200
        body = json.loads(response.content)
        assert [e["id"] for e in body["results"]] == [e.pk for e in events]
        assert response.content == _serializer_body(events, body["next"], body["previous"]), filters
    listed = client.get("/api/v1/audit/events/?page_size=200").json()["results"]
    # Subjects by public id; recorded in another order (a transaction list's, by time), so that a change of
    # order would show.
    recorded = [e for e in listed if e["action"] == "transaction.list"]
    assert recorded and all(len(e["subjects"]) > 1 for e in recorded)
    first = AuditSubject.objects.filter(event_id=recorded[0]["id"]).order_by("id")
    assert [s.public_id for s in first] != recorded[0]["subjects"] == sorted(recorded[0]["subjects"])
    assert any(e["chain_position"] for e in listed) and any(e["chain_position"] is None for e in listed)


def test_the_second_page_answers_the_serializers_bytes(api, demo):
    _traffic(api, demo)
    client = api("auditor")
    first = client.get("/api/v1/audit/events/?page_size=3").json()
    last = AuditEvent.objects.get(pk=first["results"][-1]["id"])
    events = list(
        selectors.event_list()
        .filter(Q(occurred_at__lt=last.occurred_at) | Q(occurred_at=last.occurred_at, id__lt=last.pk))
        .prefetch_related(BY_PUBLIC_ID)[:3]
    )
    response = client.get(first["next"])
    body = json.loads(response.content)
    assert [e["id"] for e in body["results"]] == [e.pk for e in events] and body["previous"]
    assert response.content == _serializer_body(events, body["next"], body["previous"])


def test_the_event_list_costs_the_same_queries_whatever_the_page_size(api, demo, django_assert_num_queries):
    _traffic(api, demo)
    client = api("auditor")
    # 1 token with its user and organisation; 2 the page with each event's subjects (one query, keyset);
    # 3-5 the audit event of the read: savepoint, insert event, release.
    for size in (1, 20):
        with django_assert_num_queries(5):
            response = client.get(f"/api/v1/audit/events/?page_size={size}")
        assert len(response.json()["results"]) == size


@pytest.mark.parametrize("page_size", ["0", "201", "x"])
def test_a_bad_page_size_is_400_naming_it(api, demo, page_size):
    response = api("auditor").get(f"/api/v1/audit/events/?page_size={page_size}")
    assert response.status_code == 400 and "page_size" in response.content.decode()


def test_event_pages_walk_both_ways_through_the_compiled_statement(api, demo):
    """The list's page statement (compiled once per shape, its JSON column converted as the ORM converts it)
    serves exactly the ORM's events, page after page and back, with each kind of filter."""
    from portal.api import pagination

    _traffic(api, demo)
    events_seal()
    _traffic(api, demo)
    client = api("auditor")
    consumer = demo.consumer_in(CCF).public_id
    for filters in ({}, {"consumer": consumer}, {"actor": "regulator", "outcome": "denied"}):
        expected = list(selectors.event_list(**filters).values_list("id", "query"))
        size = max(1, len(expected) // 3)  # three pages or more
        query = "&".join([*(f"{k}={v}" for k, v in filters.items()), f"page_size={size}"])
        url = f"/api/v1/audit/events/?{query}"
        pages = []
        while url:
            page = client.get(url).json()
            pages.append(page)
            url = page["next"]
        served = [(e["id"], e["query"]) for p in pages for e in p["results"]]
        assert served == expected and len(pages) > 1
        assert all(isinstance(query, dict) for _id, query in served)
        back = client.get(pages[-1]["previous"]).json()
        assert back["results"] == pages[-2]["results"]
    compiled = [s for k, s in pagination._STATEMENTS.items() if k[0] == "audit.events"]
    assert compiled
    if connection.vendor == "postgresql":  # SQLite converts the cursor's instant: those shapes use the ORM
        assert all(s is not None for s in compiled), [
            k for k, s in pagination._STATEMENTS.items() if s is None
        ]
