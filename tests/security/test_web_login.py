"""The second factor and the lockout through the web's own login page (`/accounts/login/`), the way a person
signs in: the form's `otp` field reaches the backend, a verified session is not kept to enrolment, and the
sixth wrong password meets the lockout, each step audited."""

from __future__ import annotations

import pytest
from django_otp import DEVICE_ID_SESSION_KEY

from audit.models import AuditEvent
from tests.security.conftest import PASSWORD, current_code

pytestmark = pytest.mark.postgres

LOGIN = "/accounts/login/"


def test_login_page_without_the_code_is_refused_where_the_user_enrolled(client, enrolled):
    response = client.post(LOGIN, {"username": "wei", "password": PASSWORD})
    assert response.status_code == 401
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(actor_username="wei").latest("id")
    assert (event.action, event.outcome) == ("auth.login_failed", "denied")


def test_login_page_with_the_code_makes_a_verified_session(client, enrolled, settings):
    settings.MFA_REQUIRED = True
    response = client.post(LOGIN, {"username": "wei", "password": PASSWORD, "otp": current_code(enrolled)})
    assert response.status_code == 302
    assert client.session[DEVICE_ID_SESSION_KEY] == enrolled.persistent_id
    # Verified: the dashboard opens instead of the enrolment page.
    assert client.get("/dashboard/").status_code == 200


def test_where_mfa_is_required_an_unenrolled_login_is_sent_to_enrolment(client, regulator, settings):
    settings.MFA_REQUIRED = True
    assert client.post(LOGIN, {"username": "wei", "password": PASSWORD}).status_code == 302
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"] == "/accounts/mfa/"


def test_sixth_wrong_password_on_the_login_page_is_locked_out_and_audited(client, regulator):
    statuses = [client.post(LOGIN, {"username": "wei", "password": "wrong"}).status_code for _ in range(5)]
    assert statuses == [401] * 4 + [429]
    sixth = client.post(LOGIN, {"username": "wei", "password": PASSWORD})
    assert sixth.status_code == 429 and int(sixth["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    events = AuditEvent.objects.filter(actor_username="wei").order_by("id")
    actions = list(events.values_list("action", flat=True))
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.locked_out") == 1
    assert actions[-1] == "auth.login_locked"
