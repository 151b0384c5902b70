"""Users with and without a second factor, and the codes their authenticator shows now."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts.models import User
from tests.factories import OrganisationFactory, UserFactory

PASSWORD = "correct horse battery staple"


def current_code(device: TOTPDevice) -> str:
    """The code an authenticator app shows now for this device."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
    return f"{code:0{device.digits}d}"


@pytest.fixture(autouse=True)
def _generous_login_rate(settings):
    # Many tests log in from the same test client address; the per-address login rate is not under test here.
    settings.LOGIN_THROTTLE_RATE = "10000/min"


@pytest.fixture
def regulator(db) -> User:
    organisation = OrganisationFactory.create(kind="regulator", short_name="reg-sec")
    return UserFactory.create(username="wei", role=User.Role.REGULATOR, organisation=organisation)


@pytest.fixture
def enrolled(regulator) -> TOTPDevice:
    """A confirmed authenticator of `regulator`."""
    return TOTPDevice.objects.create(user=regulator, name="app", confirmed=True)
