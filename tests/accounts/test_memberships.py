"""Memberships are granted like data (SPEC §3): an account's organisation and role take effect only when a
second person approves them, whoever made the account and however (admin console, shell, API); until then
its scope is empty and its role opens nothing. Deactivation is immediate; every step is an event."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import AuditEvent
from audit.recorder import AuditWriteError
from portal.access import policy
from portal.access import services as grants
from portal.access.models import AccessGrant
from portal.accounts import services
from portal.accounts.models import Membership, Organisation, User, users_with_membership
from portal.accounts.tokens import token_check, token_create, user_with_membership
from tests.api.conftest import ApiClient, api, demo
from tests.factories import UserFactory

__all__ = ["api", "demo"]

JSON = "application/json"
REASON = "Joins the supervisory review team (HR ticket 4411)."


def _user(username: str) -> User:
    return User.objects.get(username=username)


def _consumers(user: User) -> list[str]:
    response = ApiClient(user).get("/api/v1/consumers/")
    assert response.status_code in (200, 403), response.content
    return [row["public_id"] for row in response.json().get("results", [])]


def _new_regulator(requester: str = "admin", username: str = "newreg") -> tuple[User, Membership]:
    return services.account_create(
        requester=_user(requester),
        username=username,
        email=f"{username}@pbc.example",
        role=User.Role.REGULATOR,
        organisation=Organisation.objects.get(short_name="pbc-crc"),
        reason=REASON,
    )


# --- The finding: one person gives an account its organisation's grants (admin console: tests/test_admin.py)
def test_an_account_made_in_a_shell_through_the_service_lists_nothing_until_approved(client, demo):
    newreg, membership = _new_regulator()
    assert policy.scope_for(newreg).is_empty()
    client.force_login(newreg)
    assert client.get("/consumers/").status_code == 403  # the web pages, too
    services.membership_approve(membership=membership, approver=_user("compliance2"))
    assert not policy.scope_for(_user("newreg")).is_empty()
    assert client.get("/consumers/").status_code == 200


def test_an_account_written_straight_into_the_database_lists_nothing(demo):
    # A shell without the services: no membership, so no scope, whatever the organisation holds.
    straight = User.objects.create(
        username="straight", role="regulator", organisation=_user("regulator").organisation
    )
    assert policy.scope_for(straight).is_empty()
    assert not straight.membership_in_force
    assert ApiClient(straight).get("/api/v1/consumers/").status_code == 403


def test_an_account_created_over_the_api_lists_nothing_until_approved(api, demo):
    response = api("admin").post(
        "/api/v1/accounts/",
        {"username": "apireg", "role": "regulator", "organisation": "pbc-crc", "reason": REASON},
        content_type=JSON,
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "requested"
    apireg = _user("apireg")
    me = ApiClient(apireg).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["membership_in_force"] is False
    assert _consumers(apireg) == []
    decided = api("compliance2").post(
        f"/api/v1/memberships/{response.json()['id']}/approve/", {}, content_type=JSON
    )
    assert decided.status_code == 200
    assert _consumers(_user("apireg"))
    assert ApiClient(_user("apireg")).get("/api/v1/me/").json()["membership_in_force"] is True


def test_the_requester_cannot_approve_their_own_membership_request(api, demo):
    requested = api("compliance").post(
        "/api/v1/accounts/",
        {"username": "selfreg", "role": "regulator", "organisation": "pbc-crc", "reason": REASON},
        content_type=JSON,
    )
    assert requested.status_code == 201
    membership_id = requested.json()["id"]
    refused = api("compliance").post(f"/api/v1/memberships/{membership_id}/approve/", {}, content_type=JSON)
    assert refused.status_code == 403
    assert Membership.objects.get(pk=membership_id).status == "requested"
    assert _consumers(_user("selfreg")) == []
    # Nor may an administrator (or anyone but compliance) decide at all.
    assert (
        api("admin").post(f"/api/v1/memberships/{membership_id}/approve/", {}, content_type=JSON).status_code
        == 403
    )
    assert (
        api("regulator")
        .post(f"/api/v1/memberships/{membership_id}/approve/", {}, content_type=JSON)
        .status_code
        == 403
    )


def test_nobody_approves_a_membership_of_their_own_account(demo):
    compliance = _user("compliance")
    membership = services.membership_request(
        requester=_user("admin"),
        user=compliance,
        role=User.Role.AUDITOR,
        organisation=compliance.organisation,
        reason=REASON,
    )
    with pytest.raises(services.AccountError) as refused:
        services.membership_approve(membership=membership, approver=compliance)
    assert refused.value.code == "four_eyes"


def test_compliance_accounts_made_by_an_admin_decide_nothing_until_an_officer_approves_them(api, demo):
    operator = Organisation.objects.get(short_name="operator")
    made = {}
    for name in ("officer3", "officer4"):
        made[name] = services.account_create(
            requester=_user("admin"),
            username=name,
            email="",
            role=User.Role.COMPLIANCE,
            organisation=operator,
            reason=REASON,
        )
    officer3, officer4 = _user("officer3"), _user("officer4")
    # They cannot approve each other...
    with pytest.raises(services.AccountError) as refused:
        services.membership_approve(membership=made["officer4"][1], approver=officer3)
    assert refused.value.code == "forbidden"
    assert (
        ApiClient(officer3)
        .post(f"/api/v1/memberships/{made['officer4'][1].pk}/approve/", {}, content_type=JSON)
        .status_code
        == 403
    )
    # ...nor decide a grant, nor reach the decision endpoints.
    pending = AccessGrant.objects.get(case_reference="NFRA-2026-0077")
    with pytest.raises(grants.GrantError):
        grants.grant_approve(grant=pending, approver=officer3)
    assert (
        ApiClient(officer4).post(f"/api/v1/grants/{pending.pk}/approve/", {}, content_type=JSON).status_code
        == 403
    )
    assert AccessGrant.objects.get(pk=pending.pk).status == "requested"
    # An officer in force approves one; that one may then decide.
    services.membership_approve(membership=made["officer3"][1], approver=_user("compliance"))
    decided = ApiClient(_user("officer3")).post(
        f"/api/v1/grants/{pending.pk}/approve/", {}, content_type=JSON
    )
    assert decided.status_code == 200, decided.content


def test_the_session_user_is_read_with_its_membership_as_the_orm_reads_it(demo, django_assert_num_queries):
    """The session's user (accounts.tokens.user_with_membership, written once in SQL) is the row and the
    in-force flag the ORM's users_with_membership gives: for an account in force, one written straight
    into the database, one moved there without approval, an administrator without organisation."""
    straight = User.objects.create(
        username="straight", role="regulator", organisation=_user("regulator").organisation
    )
    moved = _user("regulator2")
    moved.organisation = Organisation.objects.get(short_name="nfra")
    moved.save()
    fields = [f.attname for f in User._meta.concrete_fields]
    organisation_fields = [f.attname for f in Organisation._meta.concrete_fields]
    for user in (_user("regulator"), straight, moved, _user("admin"), _user("auditor")):
        read = user_with_membership(str(user.pk))  # as the session stores it
        expected = users_with_membership(User.objects.select_related("organisation").filter(pk=user.pk)).get()
        assert read is not None and read.membership_in_force == expected.membership_in_force, user.username
        assert [getattr(read, f) for f in fields] == [getattr(expected, f) for f in fields]
        with django_assert_num_queries(0):  # read with the user
            organisation = read.organisation
        if expected.organisation is None:
            assert organisation is None
        else:
            assert organisation is not None
            assert [getattr(organisation, f) for f in organisation_fields] == [
                getattr(expected.organisation, f) for f in organisation_fields
            ]
    assert user_with_membership(_user("regulator").pk).membership_in_force  # type: ignore[union-attr]
    assert not user_with_membership(straight.pk).membership_in_force  # type: ignore[union-attr]
    assert user_with_membership(10**9) is None
    assert user_with_membership("not a number") is None


# --- Moves, deactivation --------------------------------------------------------------------------------
def test_a_move_to_another_organisation_takes_effect_only_when_approved(demo):
    regulator = _user("regulator")
    before = policy.scope_for(regulator)
    assert not before.is_empty()
    nfra = Organisation.objects.get(short_name="nfra")
    move = services.membership_request(
        requester=_user("admin"), user=regulator, role=User.Role.REGULATOR, organisation=nfra, reason=REASON
    )
    # Requested only: still the old organisation and its grants.
    assert _user("regulator").organisation == Organisation.objects.get(short_name="pbc-crc")
    assert policy.scope_for(_user("regulator")).segments == before.segments
    services.membership_approve(membership=move, approver=_user("compliance"))
    moved = _user("regulator")
    assert moved.organisation == nfra
    assert policy.scope_for(moved).is_empty()  # nfra holds no approved grant in the demo
    assert list(moved.memberships.values_list("status", flat=True).order_by("pk")) == ["ended", "approved"]
    assert list(moved.groups.filter(organisation__isnull=False)) == [nfra.group]


def test_a_move_written_straight_into_the_database_empties_the_scope(demo):
    regulator = _user("regulator")
    regulator.organisation = Organisation.objects.get(short_name="nfra")
    regulator.save()
    assert policy.scope_for(_user("regulator")).is_empty()
    assert not _user("regulator").groups.filter(organisation__isnull=False).exists()
    # Putting it back where its approved membership is restores what was approved, nothing more.
    regulator.organisation = Organisation.objects.get(short_name="pbc-crc")
    regulator.save()
    assert not policy.scope_for(_user("regulator")).is_empty()


def test_deactivation_is_immediate_needs_one_person_and_only_an_approval_brings_the_account_back(api, demo):
    regulator = _user("regulator")
    secret, _token = token_create(user=regulator)
    response = api("admin").post(
        "/api/v1/accounts/regulator/deactivate/", {"reason": "Left the regulator."}, content_type=JSON
    )
    assert response.status_code == 204, response.content
    assert token_check(secret) is None
    gone = _user("regulator")
    assert not gone.is_active and policy.scope_for(gone).is_empty()
    assert not gone.memberships.filter(status="approved").exists()
    # Back only through a request and another person's approval.
    back = services.membership_request(
        requester=_user("admin"), user=gone, role="regulator", organisation=gone.organisation, reason=REASON
    )
    assert policy.scope_for(_user("regulator")).is_empty()
    services.membership_approve(membership=back, approver=_user("compliance2"))
    assert _user("regulator").is_active
    assert not policy.scope_for(_user("regulator")).is_empty()


def test_bad_membership_input_is_a_400_naming_the_field(api, demo):
    client = api("admin")
    for body, field in (
        ({"user": "nobody", "role": "regulator", "organisation": "pbc-crc", "reason": REASON}, "user"),
        (
            {"user": "regulator2", "role": "regulator", "organisation": "nowhere", "reason": REASON},
            "organisation",
        ),
        ({"user": "regulator2", "role": "regulator", "organisation": "operator", "reason": REASON}, "role"),
        ({"user": "regulator2", "role": "overlord", "organisation": "pbc-crc", "reason": REASON}, "role"),
        ({"user": "regulator2", "role": "regulator", "organisation": "pbc-crc", "reason": " "}, "reason"),
    ):
        response = client.post("/api/v1/memberships/", body, content_type=JSON)
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), response.json()
    assert (
        client.post("/api/v1/memberships/abc/approve/", {}, content_type=JSON).status_code == 403
    )  # admin: wrong role first
    assert (
        api("compliance").post("/api/v1/memberships/abc/approve/", {}, content_type=JSON).status_code == 404
    )
    assert (
        api("compliance").post("/api/v1/memberships/999999/approve/", {}, content_type=JSON).status_code
        == 404
    )
    assert api("regulator").get("/api/v1/memberships/").status_code == 403
    assert api("auditor").get("/api/v1/memberships/?status=requested").status_code == 200
    assert api("auditor").get("/api/v1/memberships/?status=nonsense").status_code == 400


def test_a_decided_membership_cannot_be_decided_again(api, demo):
    _newreg, membership = _new_regulator()
    assert (
        api("compliance")
        .post(f"/api/v1/memberships/{membership.pk}/reject/", {}, content_type=JSON)
        .status_code
        == 200
    )
    again = api("compliance2").post(f"/api/v1/memberships/{membership.pk}/approve/", {}, content_type=JSON)
    assert again.status_code == 409
    assert _consumers(_user("newreg")) == []


# --- Events ---------------------------------------------------------------------------------------------
def test_every_membership_step_is_an_event_from_the_service_itself(demo):
    _newreg, membership = _new_regulator()
    services.membership_approve(membership=membership, approver=_user("compliance"))
    services.account_deactivate(user=_user("newreg"), by=_user("admin"), reason="Left.")
    # No request in sight: the events are the services' own.
    events = AuditEvent.objects.filter(requested_id__endswith=":newreg").order_by("pk")
    assert [(e.action, e.actor_username) for e in events] == [
        ("account.create", "admin"),
        ("membership.request", "admin"),
        ("membership.approve", "compliance"),
        ("account.deactivate", "admin"),
    ]
    assert all(e.outcome == "allowed" and e.path == "" for e in events)


def test_a_membership_step_whose_event_cannot_be_written_changes_nothing(demo, monkeypatch):
    _newreg, membership = _new_regulator()

    def broken(**kwargs):
        raise AuditWriteError("the audit store refuses writes")

    monkeypatch.setattr("audit.recorder.record", broken)
    with pytest.raises(AuditWriteError):
        services.membership_approve(membership=membership, approver=_user("compliance"))
    assert Membership.objects.get(pk=membership.pk).status == "requested"
    assert policy.scope_for(_user("newreg")).is_empty()
    with pytest.raises(AuditWriteError):
        _new_regulator(username="another")
    assert not User.objects.filter(username="another").exists()


@pytest.mark.postgres
def test_an_approval_over_the_api_with_the_audit_store_failing_answers_503_and_changes_nothing(api, demo):
    _newreg, membership = _new_regulator()
    # A real refusal by the database, for this one action: the table refuses the membership's events.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_membership_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.action = 'membership.approve' THEN RAISE EXCEPTION 'audit store down'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse_membership_events BEFORE INSERT ON {AuditEvent._meta.db_table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_membership_events()"
        )
    response = api("compliance").post(f"/api/v1/memberships/{membership.pk}/approve/", {}, content_type=JSON)
    assert response.status_code == 503
    assert Membership.objects.get(pk=membership.pk).status == "requested"
    assert _consumers(_user("newreg")) == []


# --- The demo world and databases from before the workflow ----------------------------------------------
def test_seed_demo_makes_memberships_through_the_workflow_and_keeps_the_demo_scopes(demo):
    for username in (
        "regulator",
        "regulator2",
        "shareholder",
        "compliance",
        "compliance2",
        "auditor",
        "admin",
    ):
        user = _user(username)
        assert user.membership_in_force, username
        membership = user.memberships.get(status="approved")
        assert membership.requested_by is not None and membership.decided_by is not None
        assert membership.requested_by != membership.decided_by
        if username not in ("compliance", "compliance2"):
            assert (membership.requested_by.username, membership.decided_by.username) == (
                "compliance",
                "compliance2",
            )
    assert _consumers(_user("regulator"))
    assert policy.scope_for(_user("regulator2")).is_empty()
    assert sorted(policy.scope_for(_user("shareholder")).segments)  # two segments, aggregates
    # The bootstrap of the first two officers refuses once any officer is in force.
    with pytest.raises(services.AccountError):
        services.memberships_bootstrap(first=_user("compliance"), second=_user("compliance2"), reason="again")


APPROVED = importlib.import_module("portal.accounts.migrations.0006_existing_memberships_approved")


@pytest.fixture
def before_memberships(transactional_db):
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0005_memberships_and_credential_resets")])
    yield MigrationExecutor(connection)
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.postgres
def test_the_migration_records_existing_memberships_as_approved(before_memberships):
    placed = UserFactory.create(username="landed", membership=False)
    admin = UserFactory.create(username="root", role="admin", organisation=None, membership=False)
    inactive = UserFactory.create(username="gone", is_active=False, membership=False)
    assert not Membership.objects.exists()

    before_memberships.loader.build_graph()
    before_memberships.migrate([("accounts", "0006_existing_memberships_approved")])

    in_force = {m.user.username: m for m in Membership.objects.select_related("user")}
    assert set(in_force) == {"landed", "root"}
    assert (in_force["landed"].organisation_id, in_force["landed"].role) == (
        placed.organisation_id,
        "regulator",
    )
    assert in_force["root"].organisation_id is None
    assert User.objects.get(pk=placed.pk).membership_in_force
    assert User.objects.get(pk=admin.pk).membership_in_force
    assert not User.objects.get(pk=inactive.pk).membership_in_force


def test_a_fresh_installation_bootstraps_its_first_two_officers_once(db, capsys):
    from django.core.management import CommandError, call_command

    from tests.factories import OrganisationFactory

    operator = OrganisationFactory.create(kind="operator", short_name="op")
    for name in ("first", "second"):
        UserFactory.create(username=name, role="compliance", organisation=operator, membership=False)
    User.objects.filter(username="second").update(password="!")  # an account made without a password
    call_command("accounts_bootstrap", "first", "second", "--reason", "Installation.")
    out = capsys.readouterr().out
    assert _user("first").membership_in_force and _user("second").membership_in_force
    assert _user("first").memberships.get().decided_by == _user("second")
    assert "Enrolment link for second" in out and "Enrolment link for first" not in out
    UserFactory.create(username="third", role="compliance", organisation=operator, membership=False)
    with pytest.raises(CommandError, match="in force"):
        call_command("accounts_bootstrap", "third", "first", "--reason", "Again.")
    assert not _user("third").membership_in_force


def test_an_administrator_account_reaches_the_console_only_once_its_membership_is_approved(client, demo):
    made, membership = services.account_create(
        requester=_user("admin"),
        username="admin2",
        email="",
        role=User.Role.ADMIN,
        organisation=Organisation.objects.get(short_name="operator"),
        reason=REASON,
    )
    assert not made.is_staff and not made.is_superuser
    client.force_login(made)
    assert client.get("/admin/").status_code == 302  # to the console's login: not staff
    services.membership_approve(membership=membership, approver=_user("compliance"))
    assert _user("admin2").is_staff and not _user("admin2").is_superuser
    assert client.get("/admin/").status_code == 200
