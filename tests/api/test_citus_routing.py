"""The API's consumer reads with PORTAL_CITUS (key table first, then the consumer by id): the same answers
as without, for what is in scope, out of scope, unknown and malformed, and exactly one statement more."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.records.models import Consumer

CCF = "chengdu-chongqing-consumer-finance"


def read(client, path: str, params: dict | None = None) -> tuple[int, Any, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params or {})
    return response.status_code, response.json(), len(queries)


@pytest.mark.django_db
def test_consumer_detail_and_search_answer_the_same_with_citus_routing(api, demo, settings):
    regulator = api("regulator")
    inside = Consumer.objects.filter(memberships__segment__slug=CCF).earliest("public_id")
    outside = Consumer.objects.exclude(memberships__segment__slug=CCF).earliest("public_id")
    # (path, query, statements more than without routing)
    cases = [
        (f"/api/v1/consumers/{inside.public_id}/", None, 1),
        (f"/api/v1/consumers/{outside.public_id}/", None, 1),  # not the regulator's: 404
        # No such consumer: the same 404, and no consumer read at all once the key table has no row.
        ("/api/v1/consumers/C0000000000000000/", None, 0),
        ("/api/v1/consumers/", {"q": inside.public_id}, 1),
        ("/api/v1/consumers/", {"q": inside.resident_id}, 1),
        ("/api/v1/consumers/", {"q": inside.phone}, 1),
        ("/api/v1/consumers/", {"q": outside.resident_id}, 1),  # a known identifier out of scope: nothing
    ]
    for path, params, more in cases:
        settings.PORTAL_CITUS = False
        plain_status, plain_body, plain_queries = read(regulator, path, params)
        settings.PORTAL_CITUS = True
        routed_status, routed_body, routed_queries = read(regulator, path, params)
        assert (routed_status, routed_body) == (plain_status, plain_body), path
        # The key table read on its own, so that the consumer read can name the id (shard pruning).
        assert routed_queries == plain_queries + more, (path, params)
    settings.PORTAL_CITUS = False
    assert read(regulator, f"/api/v1/consumers/{outside.public_id}/")[0] == 404
    assert read(regulator, "/api/v1/consumers/", {"q": outside.resident_id})[1]["results"] == []
    assert read(regulator, "/api/v1/consumers/", {"q": inside.phone})[1]["results"] != []
