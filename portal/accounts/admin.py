from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from portal.accounts.models import Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "name_zh", "short_name", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "name_zh", "short_name"]
    readonly_fields = ["group", "created_at"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "role", "organisation", "is_active", "last_login"]
    list_filter = ["role", "organisation", "is_active"]
    list_select_related = ["organisation"]
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Portal", {"fields": ("role", "organisation")}),
    )
    add_fieldsets = (
        *BaseUserAdmin.add_fieldsets,
        ("Portal", {"fields": ("role", "organisation")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # An existing account never changes organisation or role here: moving a user into an organisation
        # hands them that organisation's grants at once, past the four-eyes workflow.
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "role", "organisation"] if obj is not None else readonly
