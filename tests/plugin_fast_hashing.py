"""Tests hash passwords with a fast hasher: PBKDF2's deliberate cost would dominate the suite's run time."""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
