"""Admin console pages for records. Consumer data is read-only here and reaches a staff user only through the
access policy, exactly as on every other path."""

from django.contrib import admin
from django.http import HttpRequest

from portal.access import policy
from portal.records.models import Account, Consumer, Merchant, Segment, Transaction


class PolicyScopedAdmin(admin.ModelAdmin):
    """Read-only, and scoped by the access policy: no superuser sees past their grants."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Consumer)
class ConsumerAdmin(PolicyScopedAdmin):
    list_display = ["public_id", "province", "city", "status", "current_score"]
    list_filter = ["status"]
    show_full_result_count = False

    def get_queryset(self, request):
        return policy.visible_consumers(request.user)


@admin.register(Account)
class AccountAdmin(PolicyScopedAdmin):
    list_display = ["id", "consumer", "product", "status", "opened_on"]
    list_select_related = ["consumer"]
    show_full_result_count = False

    def get_queryset(self, request):
        return policy.visible_accounts(request.user)


@admin.register(Transaction)
class TransactionAdmin(PolicyScopedAdmin):
    list_display = ["id", "consumer", "kind", "amount", "occurred_at", "channel"]
    list_select_related = ["consumer"]
    show_full_result_count = False

    def get_queryset(self, request):
        return policy.visible_transactions(request.user)


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "category"]
    list_filter = ["category"]
    search_fields = ["code", "name"]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Segment definitions are not personal data; their members are, and are not listed here."""

    list_display = ["name", "name_zh", "slug", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "name_zh", "slug"]
    exclude = ["consumers"]
