"""What the lockout keeps of a failed login (django-axes' AccessAttempt, shown in the admin): never a secret
the client sent — password, one-time code (a TOTP code or a single-use recovery code), CSRF token."""

from __future__ import annotations

import json

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.postgres

RECOVERY_CODE = "q7w3k9zx"
WRONG_PASSWORD = "Tr0ub4dor&3-guess"
CSRF_TOKEN = "Zx8Yq2Lm4Nb6Vc0Tr5Ws3Pe7Ka9Jd1Hf" * 2


def stored(attempt: AccessAttempt) -> str:
    return "\n".join([attempt.post_data, attempt.get_data, attempt.http_accept, attempt.path_info])


def test_a_failed_web_login_keeps_no_one_time_code_password_or_csrf_token(enrolled):
    client = Client(enforce_csrf_checks=False)
    response = client.post(
        "/accounts/login/",
        {
            "username": "wei",
            "password": WRONG_PASSWORD,
            "otp": RECOVERY_CODE,
            "csrfmiddlewaretoken": CSRF_TOKEN,
        },
    )
    assert response.status_code == 401
    attempt = AccessAttempt.objects.get(username="wei")
    kept = stored(attempt)
    # The attempt is recorded, with each field present but masked.
    assert "otp=" in attempt.post_data and "password=" in attempt.post_data
    for secret in (RECOVERY_CODE, WRONG_PASSWORD, CSRF_TOKEN, PASSWORD):
        assert secret not in kept
    # The username is the lockout's key (its own column); the copy in the form data is masked as well.
    assert "username=wei" not in attempt.post_data


def test_a_failed_json_token_request_keeps_no_one_time_code(enrolled):
    body = json.dumps({"username": "wei", "password": WRONG_PASSWORD, "otp": RECOVERY_CODE})
    response = Client().post("/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 401
    kept = stored(AccessAttempt.objects.get(username="wei"))
    assert RECOVERY_CODE not in kept and WRONG_PASSWORD not in kept
