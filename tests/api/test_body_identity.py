"""The bytes of the hot endpoints' answers, pinned for the demo world: a faster path must answer exactly what
the landed one did (field order, number and time formats, masking, cursors). The digests in
golden/bodies.json were taken from the implementation before the fast paths; a change that alters a body
fails here and names the endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command

from portal.access import services
from portal.access.models import AccessGrant
from portal.accounts.models import User
from portal.api import pagination
from portal.records import synthetic
from portal.records.models import Segment
from tests.api.conftest import ApiClient, World

GOLDEN = Path(__file__).parent / "golden" / "bodies.json"
CCF, YRD = "chengdu-chongqing-consumer-finance", "yangtze-river-delta"


@pytest.fixture
def demo(transactional_db, monkeypatch) -> World:
    """The demo world with its data ending on a fixed day (it ends at the current month otherwise), its ids
    from 1 (cursors carry them): the test resets the sequences."""
    monkeypatch.setattr(synthetic, "default_end_date", lambda today=None: date(2026, 11, 1))
    call_command("seed_demo", "--consumers", "300", verbosity=0)
    return World(segments={s.slug: s for s in Segment.objects.all()})


CURSOR = re.compile(rb"cursor=([A-Za-z0-9_-]+)")


def _opened(body: bytes) -> bytes:
    """The body with each cursor replaced by what it seals: the sealing key comes from the deployment's
    secret, the position it names does not."""
    return CURSOR.sub(
        lambda m: b"cursor=" + json.dumps(pagination._decode(m.group(1).decode())).encode(), body
    )


def _bodies(api, demo) -> dict[str, bytes]:
    """Each pinned request, named, and the body it answered."""
    regulator = api("regulator")
    # regulator2 with masked records of the Delta segment: the masked shapes.
    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    masked = ApiClient(User.objects.get(username="regulator2"))
    full = demo.consumer_in(CCF)
    hidden = demo.consumer_in(YRD, not_in=(CCF,))
    busiest = max(demo.segment(CCF).consumers.all(), key=lambda c: c.transactions.count())
    requests = {
        "consumers": (regulator, "/api/v1/consumers/"),
        "consumers-5": (regulator, "/api/v1/consumers/?page_size=5"),
        "consumers-segment": (regulator, f"/api/v1/consumers/?segment={demo.segment(CCF).pk}"),
        "consumers-search": (regulator, f"/api/v1/consumers/?q={full.resident_id}"),
        "consumers-masked": (masked, "/api/v1/consumers/?page_size=200"),
        "consumer": (regulator, f"/api/v1/consumers/{full.public_id}/"),
        "consumer-masked": (masked, f"/api/v1/consumers/{hidden.public_id}/"),
        "consumer-transactions": (regulator, f"/api/v1/consumers/{busiest.public_id}/transactions/"),
        "consumer-transactions-5": (
            regulator,
            f"/api/v1/consumers/{busiest.public_id}/transactions/?page_size=5",
        ),
        "consumer-transactions-kind": (
            regulator,
            f"/api/v1/consumers/{busiest.public_id}/transactions/?kind=payment&since=2026-01-01",
        ),
        "transactions": (regulator, "/api/v1/transactions/"),
        "transactions-200": (regulator, "/api/v1/transactions/?page_size=200"),
        "transactions-segment": (
            regulator,
            f"/api/v1/transactions/?segment={demo.segment(CCF).pk}&kind=repayment",
        ),
        "transactions-masked": (masked, "/api/v1/transactions/?page_size=200"),
    }
    bodies: dict[str, bytes] = {}
    for name, (client, path) in requests.items():
        response = client.get(path)
        assert response.status_code == 200, (name, response.content)
        bodies[name] = _opened(response.content)
        following = json.loads(response.content).get("next")
        if following:  # the second page, through the cursor the first one handed out
            second = client.get(following)
            assert second.status_code == 200, (name, second.content)
            bodies[f"{name} page 2"] = _opened(second.content)
    return bodies


def _digests(bodies: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(body).hexdigest() for name, body in sorted(bodies.items())}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_hot_endpoints_answer_the_pinned_bytes(api, demo):
    bodies = _bodies(api, demo)
    digests = _digests(bodies)
    if os.environ.get("PORTAL_PIN_BODIES"):  # how the digests were taken, once, before the fast paths
        GOLDEN.write_text(json.dumps(digests, indent=1) + "\n")
    pinned = json.loads(GOLDEN.read_text())
    assert digests == pinned
