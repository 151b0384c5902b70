"""Demo accounts (seed_demo's, with a published password) and production: a database seeded before the
`is_demo` mark existed gets its demo users marked by migration, and production's accounts.E001 check also
refuses an active user with a demo username whose password is still the published default."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from portal.accounts import checks
from portal.accounts.checks import DEMO_DEFAULT_PASSWORD, DEMO_USERNAMES, demo_accounts_check
from portal.accounts.models import User
from portal.management.commands import seed_demo
from tests.factories import UserFactory

pytestmark = pytest.mark.postgres

FLAGGED = importlib.import_module("portal.accounts.migrations.0004_demo_accounts_flagged")


def test_the_demo_usernames_are_seed_demos():
    assert set(DEMO_USERNAMES) == {u[0] for u in seed_demo.USERS} == set(FLAGGED.DEMO_USERNAMES)
    assert DEMO_DEFAULT_PASSWORD == "portal-demo"


@pytest.fixture
def before_the_mark(transactional_db):
    """The database as it was before 0004: accounts at 0003_security; put back at the end."""
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0003_security")])
    yield MigrationExecutor(connection)
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_the_migration_marks_seed_demos_users_seeded_before_the_mark(before_the_mark):
    # seed_demo before the mark: its users with the published password, unmarked.
    # No organisation and no membership: the memberships table comes later (accounts.0005), and a user's
    # organisation group follows their membership.
    for username in ("regulator", "admin"):
        UserFactory.create(
            username=username, password=DEMO_DEFAULT_PASSWORD, organisation=None, membership=False
        )
    UserFactory.create(username="wei", organisation=None, membership=False)
    assert not User.objects.filter(is_demo=True).exists()

    before_the_mark.loader.build_graph()
    before_the_mark.migrate([("accounts", "0004_demo_accounts_flagged")])

    assert set(User.objects.filter(is_demo=True).values_list("username", flat=True)) == {"regulator", "admin"}


@pytest.fixture
def production(settings, db):
    settings.PRODUCTION = True
    settings.PORTAL_DEMO = False
    return settings


def test_production_refuses_an_unmarked_demo_username_with_the_published_password(production):
    UserFactory.create(username="regulator", password=DEMO_DEFAULT_PASSWORD, is_demo=False)
    errors = demo_accounts_check(databases=["default"])
    assert [e.id for e in errors] == ["accounts.E001"]
    assert "regulator" in errors[0].msg


def test_a_demo_username_with_a_password_of_its_own_or_deactivated_passes(production):
    UserFactory.create(username="admin", password="a long password of the operator's own")
    UserFactory.create(username="auditor", password=DEMO_DEFAULT_PASSWORD, is_active=False)
    # The published password on another username is not a demo account (and is not looked at).
    UserFactory.create(username="wei", password=DEMO_DEFAULT_PASSWORD)
    assert demo_accounts_check(databases=["default"]) == []


def test_the_check_hashes_at_most_one_password_per_demo_username_and_only_in_production(settings, db):
    for username in (*DEMO_USERNAMES, "wei", "li", "zhang"):
        UserFactory.create(username=username, password="not the demo password")
    settings.PORTAL_DEMO = False
    settings.PRODUCTION = False
    with mock.patch.object(checks, "check_password", wraps=checks.check_password) as hashed:
        assert demo_accounts_check(databases=["default"]) == []
        assert hashed.call_count == 0
        settings.PRODUCTION = True
        assert demo_accounts_check(databases=["default"]) == []
        assert hashed.call_count == len(DEMO_USERNAMES) == 7
        settings.PORTAL_DEMO = True
        assert demo_accounts_check(databases=["default"]) == []
        assert hashed.call_count == 7
