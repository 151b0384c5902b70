"""The compliance screen for account requests: memberships and credential resets decided by a second person,
never by the requester or the account itself."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts import services
from portal.accounts.models import CredentialReset, Membership, Organisation, User
from tests.api.conftest import demo

__all__ = ["demo"]

PAGE = "/accounts/requests/"


def _user(username: str) -> User:
    return User.objects.get(username=username)


def _browser(username: str) -> Client:
    client = Client()
    client.force_login(_user(username))
    return client


@pytest.fixture
def waiting(demo):
    _user_made, membership = services.account_create(
        requester=_user("compliance"),
        username="newreg",
        email="",
        role="regulator",
        organisation=Organisation.objects.get(short_name="pbc-crc"),
        reason="New supervisor.",
    )
    reset = services.credential_reset_request(
        requester=_user("admin"), user=_user("regulator"), reason="Lost."
    )
    return membership, reset


def test_only_compliance_opens_the_screen(waiting):
    for username in ("regulator", "auditor", "admin", "shareholder"):
        assert _browser(username).get(PAGE).status_code == 403, username
    page = _browser("compliance2").get(PAGE)
    assert page.status_code == 200
    assert b'data-membership-id="' in page.content and b'data-reset-id="' in page.content


def test_the_requester_sees_no_buttons_and_cannot_decide_their_own_request(waiting):
    membership, _reset = waiting
    page = _browser("compliance").get(PAGE).content.decode()
    assert 'data-own-request="true"' in page
    refused = _browser("compliance").post(f"{PAGE}membership/{membership.pk}/approve/", {"note": ""})
    assert refused.status_code == 403
    assert Membership.objects.get(pk=membership.pk).status == "requested"


def test_a_second_officer_approves_a_membership_and_a_reset_whose_link_is_shown_once(waiting):
    membership, reset = waiting
    browser = _browser("compliance2")
    done = browser.post(f"{PAGE}membership/{membership.pk}/approve/", {"note": "Checked."})
    assert done.status_code == 302
    assert _user("newreg").membership_in_force
    shown = browser.post(f"{PAGE}credential_reset/{reset.pk}/approve/", {"note": ""})
    assert shown.status_code == 200
    assert b"/accounts/enrol/?token=enr_" in shown.content
    assert CredentialReset.objects.get(pk=reset.pk).status == "approved"
    again = browser.post(f"{PAGE}credential_reset/{reset.pk}/approve/", {"note": ""})
    assert again.status_code == 409 and b"token=enr_" not in again.content


@pytest.mark.parametrize(
    "path",
    ["membership/abc/approve/", "membership/999999/approve/", "nothing/1/approve/", "membership/1/grant/"],
)
def test_unknown_or_malformed_requests_are_404(waiting, path):
    assert _browser("compliance2").post(PAGE + path, {"note": ""}).status_code == 404
