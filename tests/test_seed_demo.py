"""seed_demo builds the demo world of SPEC §8, and running it again changes nothing."""

from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count, Max, Min

from portal.accounts.models import Organisation, User
from portal.management.commands.seed_demo import DEMO_CONSUMERS
from portal.records.models import Account, Consumer, Segment, SegmentMembership, Transaction


def snapshot() -> dict:
    return {
        "organisations": list(
            Organisation.objects.order_by("pk").values_list("pk", "short_name", "group_id")
        ),
        "users": list(User.objects.order_by("pk").values_list("pk", "username", "password", "role")),
        "counts": [m.objects.count() for m in (Consumer, Account, Transaction, Segment, SegmentMembership)],
        "max_ids": [m.objects.aggregate(Max("pk"))["pk__max"] for m in (Consumer, Account, Transaction)],
    }


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def test_demo_organisations_match_the_spec(demo):
    kinds = Counter(Organisation.objects.values_list("kind", flat=True))
    assert kinds == {"regulator": 2, "shareholder": 2, "operator": 1}


def test_demo_users_have_their_roles_and_the_demo_password(demo):
    expected = {
        "regulator": "regulator",
        "regulator2": "regulator",
        "shareholder": "shareholder",
        "compliance": "compliance",
        "compliance2": "compliance",
        "auditor": "auditor",
        "admin": "admin",
    }
    users = {u.username: u for u in User.objects.select_related("organisation")}
    assert {name: u.role for name, u in users.items()} == expected
    for user in users.values():
        assert user.check_password(settings.DEMO_PASSWORD)
        assert user.organisation is not None
        assert user.groups.filter(pk=user.organisation.group_id).exists()
    assert users["regulator"].organisation != users["regulator2"].organisation
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert not any(u.is_superuser for name, u in users.items() if name != "admin")


def test_demo_world_has_a_few_thousand_consumers_in_overlapping_segments(demo):
    assert Consumer.objects.count() == DEMO_CONSUMERS
    sizes = dict(Segment.objects.annotate(n=Count("memberships")).values_list("slug", "n"))
    assert len(sizes) >= 5 and all(n >= 20 for n in sizes.values())
    in_several = (
        SegmentMembership.objects.values("consumer").annotate(n=Count("segment")).filter(n__gt=1).count()
    )
    assert in_several > 100


def test_demo_world_has_at_least_a_year_of_transactions(demo):
    span = Transaction.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    assert span["last"] - span["first"] > timedelta(days=365)
    assert Transaction.objects.count() > 30 * DEMO_CONSUMERS


def test_seed_demo_twice_changes_nothing(demo):
    before = snapshot()
    call_command("seed_demo", verbosity=0)
    assert snapshot() == before


def test_seed_demo_prints_the_demo_password_and_where_it_comes_from(db, capsys, settings):
    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "password: portal-demo (the default; set DEMO_PASSWORD to choose another)" in out
    settings.DEMO_PASSWORD = "another-demo-password"
    call_command("seed_demo")
    assert "password: another-demo-password (from DEMO_PASSWORD)" in capsys.readouterr().out
