"""The audit-event page's inclusion proof: the leaf, the latest signed checkpoint, the proof between them and
a "verified" mark the server computes; pending events say so; a changed event or tree shows as failed."""

from __future__ import annotations

import base64
import re

import pytest

from audit.chain import events_seal
from audit.checkpoints import checkpoint_publish
from audit.models import AuditEvent, AuditMerkleNode
from tests.audit.conftest import tampering
from tests.web.conftest import CCF

pytestmark = pytest.mark.postgres


def field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}"[^>]*>(.*?)</(?:code|dd|ol)>', html, re.S)
    assert found, name
    return found.group(1).strip()


def sealed_and_published(client_for, world) -> AuditEvent:
    consumer = world.consumer_in(CCF)
    client_for("regulator").get(f"/consumers/{consumer.public_id}/")
    event = AuditEvent.objects.filter(action="consumer.read").latest("id")
    events_seal()
    assert checkpoint_publish() is not None
    event.refresh_from_db()
    return event


def test_a_sealed_event_shows_its_proof_and_it_verifies(client_for, world):
    event = sealed_and_published(client_for, world)
    auditor = client_for("auditor")
    html = auditor.get(f"/audit/events/{event.pk}/").content.decode()
    assert 'data-inclusion="verified"' in html
    index = event.chain_position - 1  # type: ignore[operator]
    assert field(html, "leaf_index") == str(index)
    # The same proof as the API hands a regulator's own tools, against the same checkpoint.
    api = auditor.get("/api/v1/audit/log/inclusion/", {"index": index}).json()
    assert field(html, "tree_size") == str(api["size"])
    assert re.findall(r'<li><code class="hash">([^<]+)</code></li>', html) == api["hashes"]
    assert len(api["hashes"]) >= 1
    note = auditor.get("/api/v1/audit/log/checkpoint").content.decode()
    assert field(html, "tree_root") == note.split("\n")[2]
    leaf = base64.b64decode(api["leaf"])
    import hashlib

    assert field(html, "leaf_hash") == base64.b64encode(hashlib.sha256(b"\x00" + leaf).digest()).decode()
    assert f'href="/api/v1/audit/log/inclusion/?index={index}"' in html
    assert re.search(r'href="/audit/checkpoints/\d+/download/" data-field="checkpoint_download"', html)
    assert "✓" in field(html, "verified")


def test_an_unsealed_event_says_it_is_pending(client_for, world):
    client_for("regulator").get("/dashboard/")
    event = AuditEvent.objects.filter(action="web.dashboard").latest("id")
    html = client_for("auditor").get(f"/audit/events/{event.pk}/").content.decode()
    assert 'data-inclusion="unsealed"' in html and 'data-field="leaf_index"' not in html


def test_an_event_sealed_after_the_latest_checkpoint_waits_for_the_next(client_for, world):
    sealed_and_published(client_for, world)
    client_for("regulator").get("/dashboard/")
    events_seal()  # sealed, but no checkpoint signed over it yet
    event = AuditEvent.objects.filter(action="web.dashboard").latest("id")
    assert event.chain_position is not None
    html = client_for("auditor").get(f"/audit/events/{event.pk}/").content.decode()
    assert 'data-inclusion="uncovered"' in html
    assert field(html, "leaf_index") == str(event.chain_position - 1)


def test_an_event_changed_after_sealing_does_not_verify(client_for, world):
    event = sealed_and_published(client_for, world)
    with tampering():
        AuditEvent.objects.filter(pk=event.pk).update(user_agent="Rewritten/1.0")
    html = client_for("auditor").get(f"/audit/events/{event.pk}/").content.decode()
    assert 'data-inclusion="failed"' in html and "does not verify" in html and "✓" not in html


def test_a_tree_rewritten_under_the_checkpoint_does_not_verify(client_for, world):
    event = sealed_and_published(client_for, world)
    index = event.chain_position - 1  # type: ignore[operator]
    with tampering():
        # Every stored hash but the event's own leaf: whatever the proof is made of has been rewritten.
        AuditMerkleNode.objects.exclude(level=0, index=index).update(hash=b"\x11" * 32)
    html = client_for("auditor").get(f"/audit/events/{event.pk}/").content.decode()
    assert 'data-inclusion="failed"' in html and "✓" not in html


def test_only_the_auditor_sees_the_proof_page(client_for, world):
    event = sealed_and_published(client_for, world)
    for username in ("regulator", "compliance", "shareholder"):
        assert client_for(username).get(f"/audit/events/{event.pk}/").status_code == 403


def test_the_proof_costs_a_fixed_number_of_queries(client_for, world, django_assert_num_queries):
    first = sealed_and_published(client_for, world)
    auditor = client_for("auditor")
    auditor.get(f"/audit/events/{first.pk}/")  # the session's first use
    for _ in range(3):  # a longer log, a deeper tree
        client_for("regulator").get("/dashboard/")
        events_seal()
        checkpoint_publish()
    last = AuditEvent.objects.filter(chain_position__isnull=False).latest("chain_position")
    for event in (first, last):
        # 1 session, 2 user with their organisation (page header), 3 the event, 4 its subjects, 5 the first
        # checkpoint covering it, 6 the newest signed checkpoints within the sealed head, 7-8 the leaf's
        # event and subjects (its canonical bytes), 9 the proof's subtree hashes, 10-12 the audit event
        # (SAVEPOINT, INSERT, RELEASE).
        with django_assert_num_queries(12):
            response = auditor.get(f"/audit/events/{event.pk}/")
        assert response.status_code == 200 and b'data-inclusion="verified"' in response.content
