"""The second factor: TOTP devices and single-use recovery codes (django-otp), and who must present one."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts.models import User

TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"
MAX_OTP_LENGTH = 16


def mfa_required_for(user: User) -> bool:
    """Whether this user must present a second factor to log in. Anyone who has enrolled always must; when
    MFA_REQUIRED is on, everyone must, except the demo accounts during a demo run (PORTAL_DEMO)."""
    if user_has_device(user):
        return True
    if not settings.MFA_REQUIRED:
        return False
    return not (settings.PORTAL_DEMO and user.is_demo)


def has_second_factor(user: User) -> bool:
    return user_has_device(user)


def second_factor_verify(*, user: User, otp: str) -> Device | None:
    """The confirmed device (TOTP or recovery codes) that accepts `otp`, or None. A recovery code is used up;
    each device throttles its own failures (django-otp), on top of the login lockout."""
    # Recovery codes are lower-case base32; people copy them in any case and with spaces.
    otp = "".join(otp.split()).lower()
    if not otp or len(otp) > MAX_OTP_LENGTH:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, for_verify=True):
            if device.verify_token(otp):
                return device
    return None


def totp_enrolment_start(*, user: User) -> TOTPDevice:
    """A fresh unconfirmed TOTP device for `user` (replacing any earlier unconfirmed one)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def totp_pending(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def totp_enrolment_confirm(*, device: TOTPDevice, otp: str) -> bool:
    """Confirm the device if `otp` is a current code of it; then it is the user's one TOTP device."""
    otp = "".join(otp.split())
    if not otp.isdigit() or len(otp) != device.digits:
        return False
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if device.confirmed or not device.verify_token(otp):
            return False
        TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return True


def recovery_codes_generate(*, user: User) -> list[str]:
    """A new set of single-use recovery codes; earlier ones stop working. Shown once, stored as given
    (django-otp's static tokens), like the TOTP key itself."""
    with transaction.atomic():
        device, _created = StaticDevice.objects.get_or_create(
            user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(settings.MFA_RECOVERY_CODES)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def mfa_disable(*, user: User) -> None:
    """Remove every second factor of the user (TOTP and recovery codes)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def qr_svg(data: str) -> str:
    """The QR code of `data` as an SVG element, drawn here: the key never leaves for a QR service."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=16, border=2)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    # Inline in the page: drop the XML declaration.
    return svg[svg.index("<svg") :]
