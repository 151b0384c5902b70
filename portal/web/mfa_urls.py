"""Two-factor enrolment, mounted at /accounts/mfa/."""

from django.urls import path

from portal.web.views import mfa

app_name = "mfa"

urlpatterns = [
    path("", mfa.overview, name="overview"),
    path("totp/", mfa.totp_start, name="totp-start"),
    path("totp/confirm/", mfa.totp_confirm, name="totp-confirm"),
    path("recovery-codes/", mfa.recovery_codes, name="recovery-codes"),
    path("disable/", mfa.disable, name="disable"),
]
