"""The admin console works with the demo credentials and grants no implicit scope over consumer data."""

import pytest
from django.conf import settings
from django.core.management import call_command

from portal.records.models import Consumer


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def test_admin_login_works_with_the_demo_credentials(client, demo):
    # Through the admin's login form: the lockout backend needs the request that client.login() lacks.
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": settings.DEMO_PASSWORD}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_superuser_sees_no_consumer_without_a_grant(admin_client_demo):
    response = admin_client_demo.get("/admin/records/consumer/")
    assert response.status_code == 200
    assert Consumer.objects.exists()
    assert response.context["cl"].result_count == 0


def test_consumer_data_is_read_only_in_the_admin(admin_client_demo):
    assert admin_client_demo.get("/admin/records/consumer/add/").status_code == 403
    assert admin_client_demo.get("/admin/records/transaction/add/").status_code == 403


def test_the_admin_never_shows_a_sequential_consumer_id(demo):
    consumer = Consumer.objects.earliest("pk")
    assert str(consumer) == consumer.public_id


@pytest.fixture
def admin_client_demo(client, demo):
    from portal.accounts.models import User

    client.force_login(User.objects.get(username="admin"))
    return client


# --- Credentials are the user's own; memberships go through the workflow (SPEC §3) ------------------------
def test_the_admin_cannot_set_another_users_password(admin_client_demo):
    from portal.accounts.models import User

    regulator = User.objects.get(username="regulator")
    page = f"/admin/accounts/user/{regulator.pk}/password/"
    assert admin_client_demo.get(page).status_code in (403, 404)
    chosen = "the admin's choice of password 1"
    response = admin_client_demo.post(
        page, {"password1": chosen, "password2": chosen, "usable_password": "true"}
    )
    assert response.status_code in (403, 404)
    regulator.refresh_from_db()
    assert regulator.check_password(settings.DEMO_PASSWORD)
    assert not regulator.check_password(chosen)
    # Nor does the change page offer it.
    change = admin_client_demo.get(f"/admin/accounts/user/{regulator.pk}/change/")
    assert change.status_code == 200
    assert b"/password/" not in change.content


def test_the_admin_cannot_plant_or_read_a_second_factor(admin_client_demo):
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    from portal.accounts import mfa
    from portal.accounts.models import User

    regulator = User.objects.get(username="regulator")
    response = admin_client_demo.post(
        "/admin/otp_static/staticdevice/add/",
        {
            "user": regulator.pk,
            "name": "planted",
            "confirmed": "on",
            "token_set-TOTAL_FORMS": "1",
            "token_set-INITIAL_FORMS": "0",
            "token_set-0-token": "planted1",
        },
    )
    assert response.status_code == 404
    assert not StaticDevice.objects.filter(user=regulator).exists()
    codes = mfa.recovery_codes_generate(user=regulator)
    device = StaticDevice.objects.get(user=regulator)
    for page in (
        "/admin/otp_static/staticdevice/",
        f"/admin/otp_static/staticdevice/{device.pk}/change/",
        "/admin/otp_totp/totpdevice/",
        "/admin/otp_totp/totpdevice/add/",
    ):
        shown = admin_client_demo.get(page)
        assert shown.status_code == 404, page
        assert not any(code.encode() in shown.content for code in codes)
    assert StaticToken.objects.filter(device=device).count() == len(codes)


def test_the_admin_user_form_changes_no_membership_password_group_or_flag(admin_client_demo):
    from portal.accounts.models import Organisation, User

    regulator2 = User.objects.get(username="regulator2")
    before = (regulator2.organisation_id, regulator2.role, regulator2.password, regulator2.is_active)
    response = admin_client_demo.post(
        f"/admin/accounts/user/{regulator2.pk}/change/",
        {
            "username": "regulator2",
            "first_name": "Min",
            "last_name": "Li",
            "email": "min.li@nfra.example",
            "organisation": Organisation.objects.get(short_name="pbc-crc").pk,
            "role": "regulator",
            "is_superuser": "on",
            "is_staff": "on",
            "groups": [Organisation.objects.get(short_name="pbc-crc").group_id],
            "password": "pbkdf2_sha256$1$x$y",
        },
    )
    assert response.status_code == 302, response.content
    regulator2.refresh_from_db()
    assert regulator2.email == "min.li@nfra.example"  # what the form may change
    assert (regulator2.organisation_id, regulator2.role, regulator2.password, regulator2.is_active) == before
    assert not regulator2.is_superuser and not regulator2.is_staff
    assert list(regulator2.groups.values_list("name", flat=True)) == ["org:nfra"]


def test_deactivation_from_the_admin_is_immediate_and_recorded(admin_client_demo):
    from audit.models import AuditEvent
    from portal.accounts.models import User

    regulator = User.objects.get(username="regulator")
    response = admin_client_demo.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [regulator.pk]}
    )
    assert response.status_code == 302
    regulator.refresh_from_db()
    assert not regulator.is_active and not regulator.membership_in_force
    assert AuditEvent.objects.filter(action="account.deactivate", actor_username="admin").exists()


def test_membership_and_reset_requests_from_the_admin_wait_for_compliance(admin_client_demo):
    from portal.accounts.models import CredentialReset, Membership, Organisation, User

    regulator2 = User.objects.get(username="regulator2")
    response = admin_client_demo.post(
        "/admin/accounts/membership/add/",
        {
            "user": regulator2.pk,
            "organisation": Organisation.objects.get(short_name="pbc-crc").pk,
            "role": "regulator",
            "reason": "Seconded to the PBC review.",
        },
    )
    assert response.status_code == 302, response.content
    waiting = Membership.objects.get(user=regulator2, status="requested")
    assert waiting.requested_by == User.objects.get(username="admin")
    assert User.objects.get(pk=regulator2.pk).organisation == Organisation.objects.get(short_name="nfra")
    response = admin_client_demo.post(
        "/admin/accounts/credentialreset/add/", {"user": regulator2.pk, "reason": "Lost phone."}
    )
    assert response.status_code == 302, response.content
    assert CredentialReset.objects.get(user=regulator2).status == "requested"
    assert User.objects.get(pk=regulator2.pk).check_password(settings.DEMO_PASSWORD)
    # Nothing there is decided or edited in the console.
    membership = Membership.objects.get(user=regulator2, status="requested")
    assert (
        admin_client_demo.post(
            f"/admin/accounts/membership/{membership.pk}/change/", {"status": "approved"}
        ).status_code
        == 403
    )
    assert Membership.objects.get(pk=membership.pk).status == "requested"


def test_an_account_added_in_the_admin_console_lists_nothing_until_a_second_person_approves(
    admin_client_demo,
):
    from portal.accounts.models import Organisation, User
    from tests.api.conftest import ApiClient

    def listed(username: str) -> list[str]:
        response = ApiClient(User.objects.get(username=username)).get("/api/v1/consumers/")
        return [row["public_id"] for row in response.json().get("results", [])]

    response = admin_client_demo.post(
        "/admin/accounts/user/add/",
        {
            "username": "newreg",
            "email": "newreg@pbc.example",
            "role": "regulator",
            "organisation": Organisation.objects.get(short_name="pbc-crc").pk,
            "reason": "Joins the supervisory review team.",
            # What the stock form asked for: ignored now, an account gets no password from anyone.
            "usable_password": "true",
            "password1": "a password of the admin's choosing",
            "password2": "a password of the admin's choosing",
        },
    )
    assert response.status_code == 302, response.content
    newreg = User.objects.get(username="newreg")
    assert newreg.organisation == User.objects.get(username="regulator").organisation
    assert listed("regulator")  # the organisation's grant is live...
    assert listed("newreg") == []  # ...and does not reach an account nobody else approved
    assert not newreg.has_usable_password()

    membership = newreg.memberships.get()
    assert (membership.status, membership.requested_by) == ("requested", User.objects.get(username="admin"))
    approved = ApiClient(User.objects.get(username="compliance")).post(
        f"/api/v1/memberships/{membership.pk}/approve/", {}, content_type="application/json"
    )
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved"
    assert listed("newreg")
