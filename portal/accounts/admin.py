"""Admin console pages for organisations and accounts. Nothing here gives an account its organisation, role,
password or second factor (SPEC §3): adding an account requests its membership, which a compliance officer
approves elsewhere; passwords and second factors are their owner's: no page sets or reads them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import Http404, HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.accounts import services
from portal.accounts.models import CredentialReset, Membership, Organisation, User, users_with_membership

# django-otp's own pages would let an administrator plant, change or read another user's second factor (a
# TOTP key, recovery codes): gone. Users enrol their own at /accounts/mfa/.
for _device in (StaticDevice, TOTPDevice):
    if admin.site.is_registered(_device):
        admin.site.unregister(_device)

REASON_HELP = "Why: recorded with the request, read by the compliance officer who decides."


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "name_zh", "short_name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "name_zh", "short_name"]
    readonly_fields = ["group", "created_at"]


class AccountAddForm(forms.ModelForm):
    """A new account: who they are and the membership asked for. No password (the owner sets one through a
    credential reset's link) and no permissions or groups."""

    reason = forms.CharField(widget=forms.Textarea, help_text=REASON_HELP)

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email", "role", "organisation"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "role", "organisation", "membership", "is_active", "last_login"]
    list_filter = ["role", "organisation", "is_active"]
    list_select_related = ["organisation"]
    add_form = AccountAddForm
    add_fieldsets = (
        (None, {"fields": ("username", "first_name", "last_name", "email")}),
        ("Membership requested", {"fields": ("role", "organisation", "reason")}),
    )
    fieldsets = (
        (None, {"fields": ("username", "first_name", "last_name", "email")}),
        (
            "Portal",
            {"fields": ("role", "organisation", "membership", "is_active", "is_staff", "is_superuser")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    # Who an account is and what it may do change only through the membership workflow; deactivation is
    # the action below, with its event.
    locked_fields = (
        "role",
        "organisation",
        "membership",
        "is_active",
        "is_staff",
        "is_superuser",
        "last_login",
        "date_joined",
    )
    actions = ["deactivate"]

    @admin.display(description="membership")
    def membership(self, obj: User) -> str:
        if obj.membership_in_force:
            return "in force"
        waiting = obj.memberships.filter(status=Membership.Status.REQUESTED).exists()
        return "awaiting approval" if waiting else "none"

    def get_queryset(self, request: HttpRequest) -> Any:
        return users_with_membership(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, *self.locked_fields] if obj is not None else readonly

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # accounts are deactivated, never deleted: the trail and the workflow refer to them

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        raise Http404("Passwords are their owner's: a lost one is a credential reset request.")

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        user, _membership = services.account_create(
            requester=request.user,  # type: ignore[arg-type]
            username=obj.username,
            email=obj.email,
            first_name=obj.first_name,
            last_name=obj.last_name,
            role=obj.role,
            organisation=obj.organisation,
            reason=form.cleaned_data["reason"],
        )
        obj.pk, obj._state.adding, obj._state.db = user.pk, False, user._state.db

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)
        except services.AccountError as error:
            # The account was not made (the service refused it); say why on the list.
            self.message_user(request, error.message, messages.ERROR)
            return self.changelist_view(request)

    @admin.action(description="Deactivate the selected accounts (immediate)")
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for user in queryset.filter(is_active=True):
            try:
                services.account_deactivate(
                    user=user,
                    by=request.user,  # type: ignore[arg-type]
                    reason=f"Deactivated in the admin console by {request.user.get_username()}.",
                )
                done += 1
            except services.AccountError as error:
                self.message_user(request, f"{user}: {error.message}", messages.ERROR)
        self.message_user(request, f"{done} account(s) deactivated.")


class _RequestAdmin(admin.ModelAdmin):
    """Requests are made here and decided by a compliance officer (API or web): nothing is edited."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)
        except services.AccountError as error:
            self.message_user(request, error.message, messages.ERROR)
            return self.changelist_view(request)


class MembershipRequestForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organisation", "role", "reason"]
        help_texts = {"reason": REASON_HELP}


@admin.register(Membership)
class MembershipAdmin(_RequestAdmin):
    list_display = [
        "pk",
        "user",
        "organisation",
        "role",
        "status",
        "requested_by",
        "decided_by",
        "requested_at",
    ]
    list_filter = ["status", "role", "organisation"]
    list_select_related = ["user", "organisation", "requested_by", "decided_by"]
    search_fields = ["user__username"]
    form = MembershipRequestForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["user", "organisation", "role", "reason"]
        return [f.name for f in Membership._meta.fields if f.name != "id"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        made = services.membership_request(
            requester=request.user,  # type: ignore[arg-type]
            user=obj.user,
            role=obj.role,
            organisation=obj.organisation,
            reason=obj.reason,
        )
        obj.pk, obj._state.adding, obj._state.db = made.pk, False, made._state.db


class CredentialResetRequestForm(forms.ModelForm):
    class Meta:
        model = CredentialReset
        fields = ["user", "reason"]
        help_texts = {"reason": REASON_HELP}


@admin.register(CredentialReset)
class CredentialResetAdmin(_RequestAdmin):
    list_display = ["pk", "user", "status", "requested_by", "decided_by", "requested_at", "expires_at"]
    list_filter = ["status"]
    list_select_related = ["user", "requested_by", "decided_by"]
    search_fields = ["user__username"]
    form = CredentialResetRequestForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["user", "reason"]
        # Never the link's hash.
        return [f.name for f in CredentialReset._meta.fields if f.name not in ("id", "token_hash")]

    def save_model(self, request: HttpRequest, obj: CredentialReset, form: Any, change: bool) -> None:
        made = services.credential_reset_request(
            requester=request.user,  # type: ignore[arg-type]
            user=obj.user,
            reason=obj.reason,
        )
        obj.pk, obj._state.adding, obj._state.db = made.pk, False, made._state.db
