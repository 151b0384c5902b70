"""The policy by construction: views take consumer rows only from what the access policy hands out (querysets,
a ConsumerAccess), never from a model manager after the check, so no view can serve past its permission."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db.models import Q

from portal.access import policy
from portal.access.models import AccessGrant
from portal.accounts.models import User
from portal.records.models import Consumer, Transaction
from tests.conftest import ROOT

VIEWS = sorted([*(ROOT / "portal/api/views").glob("*.py"), *(ROOT / "portal/web/views").glob("*.py")])
# The grant request screens may name any consumer: a request shows nothing and grants nothing until approved.
TARGET_LOOKUP = re.compile(r"Consumer\.objects\.filter\(public_id=data\[\"consumer\"\]\)\.first\(\)")
CONSUMER_ROWS = re.compile(
    r"\b(Consumer|Account|Transaction|SegmentMembership|CreditScore)\.objects\b"
    r"|(?<![\"\w.])consumer\.(accounts|transactions|scores|memberships|segments)\b"  # not an action name
)


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_views_read_consumer_rows_only_through_the_policy(path: Path):
    source = TARGET_LOOKUP.sub("", path.read_text())
    found = [m.group(0) for m in CONSUMER_ROWS.finditer(source)]
    assert not found, f"{path.name} reads consumer rows past the policy: {found}"


def test_a_consumer_access_hands_out_only_its_consumers_rows(demo):
    scope = policy.scope_for(User.objects.get(username="regulator"))
    consumer = demo.consumer_in("chengdu-chongqing-consumer-finance")
    access = policy.consumer_access(scope, consumer.public_id)
    transactions = access.transactions()
    assert transactions.exists() and set(transactions.values_list("consumer_id", flat=True)) == {consumer.pk}
    assert set(access.accounts().values_list("consumer_id", flat=True)) == {consumer.pk}
    assert {m.segment_id for m in access.memberships()} <= set(scope.segment_ids(policy.RECORDS))
    assert access.scored() == consumer
    assert Transaction.objects.exclude(consumer=consumer).exists()


def test_a_consumer_access_without_view_scores_hands_out_no_scores(demo):
    from portal.access import services

    grant = AccessGrant.objects.get(case_reference="NFRA-2026-0077")  # view_masked_records only
    services.grant_approve(grant=grant, approver=User.objects.get(username="compliance"))
    scope = policy.scope_for(User.objects.get(username="regulator2"))
    assert grant.segment_id is not None
    consumer = Consumer.objects.filter(memberships__segment_id=grant.segment_id)[0]
    access = policy.consumer_access(scope, consumer.public_id)
    assert access.masked and access.transactions().exists()
    with pytest.raises(policy.NotVisible):
        access.scored()


def test_a_small_grant_lists_the_same_consumers_in_the_same_order_through_a_hash(demo, monkeypatch):
    scope = policy.scope_for(User.objects.get(username="regulator"))
    segment_ids = scope.segment_ids(policy.RECORDS)
    assert segment_ids
    for segment_id in segment_ids:
        members = Consumer.objects.filter(memberships__segment_id=segment_id).count()
        assert scope.segment_members[segment_id] == min(members, policy.SMALL_GRANT_MEMBERS)
    assert scope.is_small(policy.RECORDS)  # the demo's grants are small
    hashed = list(policy.visible_consumers(scope).order_by("public_id").values_list("pk", flat=True))
    monkeypatch.setattr(policy, "SMALL_GRANT_MEMBERS", 1)  # every grant is large: one probe per consumer
    assert not scope.is_small(policy.RECORDS)
    probed = list(policy.visible_consumers(scope).order_by("public_id").values_list("pk", flat=True))
    in_scope = Q(memberships__segment_id__in=segment_ids) | Q(pk__in=scope.consumer_ids(policy.RECORDS))
    expected = list(
        Consumer.objects.filter(in_scope).distinct().order_by("public_id").values_list("pk", flat=True)
    )
    assert hashed == probed == expected and hashed
