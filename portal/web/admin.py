"""Admin console pages for records. Consumer data is read-only here and reaches a staff user only through the
access policy, exactly as on every other path: a superuser without a grant sees no consumer. Consumers are
addressed by public id in admin URLs too, and each page tells the audit trail whose data it showed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.urls import reverse
from guardian.admin import GuardedModelAdmin

from audit.recorder import note_for
from portal.access import masking, policy
from portal.access.models import AccessGrant
from portal.records.models import Account, Consumer, Merchant, Segment, Transaction

GRANTS_ONLY = "Object permissions change only through approved access grants."
GRANT_LOOKUPS = frozenset(
    {"status", "status__exact", "grantee_organisation", "grantee_organisation__id__exact"}
)


def _scope(request: HttpRequest) -> policy.Scope:
    scope = getattr(request, "access_scope", None)
    if scope is None:
        scope = request.access_scope = policy.scope_for(request.user)  # type: ignore[attr-defined]
    return scope


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False
    # No links to per-row pages: a transaction's or an account's page would show its sequential id, and the
    # consumer's page is reached by public id from the consumer list.
    list_display_links: Any = None

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        """Only the sidebar filters. Django's admin otherwise accepts a filter on any field from the query
        string (?resident_id__startswith=...), which would confirm masked values character by character."""
        return lookup in self.allowed_lookups

    allowed_lookups: frozenset[str] = frozenset()

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (
            getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        )
        if changelist is not None:
            note = note_for(request)
            note.resource_kind = self.model._meta.model_name or ""
            note.subjects = [self.subject_of(obj) for obj in changelist.result_list]
            grant = policy.grant_for_list(_scope(request), policy.RECORDS)
            if grant is not None:
                note.grant_id, note.purpose = grant.pk, grant.purpose
        return response

    def subject_of(self, obj) -> str:
        return obj.consumer.public_id


class ConsumerChangeList(ChangeList):
    def url_for_result(self, result) -> str:
        site = self.model_admin.admin_site.name
        return reverse("admin:records_consumer_change", args=(result.public_id,), current_app=site)


@admin.register(Consumer)
class ConsumerAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "province", "city", "status"]
    list_display_links = ["public_id"]
    list_filter = ["status"]
    allowed_lookups = frozenset({"status", "status__exact"})
    fields = (
        "public_id",
        "name",
        "resident_id",
        "phone",
        "province",
        "city",
        "birth_year",
        "joined_on",
        "status",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return policy.visible_consumers(_scope(request))

    def get_changelist(self, request, **kwargs):
        return ConsumerChangeList

    def subject_of(self, obj) -> str:
        return obj.public_id

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return admin.ModelAdmin.has_view_permission(self, request, obj)

    def get_object(self, request, object_id, from_field=None):
        """By public id, through the policy; unknown and out-of-scope look the same. Personal fields arrive
        masked when the grant allows only masked records (the page is read-only: nothing saves them)."""
        cached = getattr(request, "consumer_access", None)
        if cached is not None and cached.consumer.public_id == object_id:
            return cached.consumer
        note = note_for(request)
        note.resource_kind, note.requested_id = "consumer", str(object_id)[:100]
        try:
            access = policy.consumer_access(_scope(request), str(object_id))
        except policy.NotVisible:
            return None
        consumer = access.consumer
        for field, value in masking.identity(consumer, masked=access.masked).items():
            setattr(consumer, field, value)
        request.consumer_access = access
        note.subjects = [consumer.public_id]
        note.grant_id, note.purpose = access.grant.pk, access.grant.purpose
        return consumer

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if self.get_object(request, object_id) is None:
            raise Http404("No consumer matches the given query.")
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["consumer", "product", "status", "opened_on"]
    list_select_related = ["consumer"]

    def get_queryset(self, request):
        return policy.visible_accounts(_scope(request))


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ["consumer", "kind", "amount", "occurred_at", "channel"]
    list_select_related = ["consumer"]

    def get_queryset(self, request):
        return policy.visible_transactions(_scope(request))


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "category"]
    list_filter = ["category"]
    search_fields = ["code", "name"]


@admin.register(Segment)
class SegmentAdmin(GuardedModelAdmin):
    """Segment definitions are not personal data; their members are, and are not listed here.

    Guardian's object-permission screen shows who holds what on a segment, read-only: permissions change only
    through the grant workflow, so the screens that would assign them refuse.
    """

    list_display = ["name", "name_zh", "slug", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "name_zh", "slug"]
    exclude = ["consumers"]

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        """Only the sidebar's filter. Django's admin otherwise takes any local field from the query string,
        the members included: ?consumers=1 would tell which segments consumer 1 belongs to, outside any
        grant."""
        return lookup in ("kind", "kind__exact")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """Never from the console: its confirmation page lists every membership of the segment (who is in it),
        which no grant covers; and a segment that grants name is not deleted at all."""
        return False

    def obj_perms_manage_view(self, request, object_pk):
        if request.method != "GET":
            raise PermissionDenied(GRANTS_ONLY)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        raise PermissionDenied(GRANTS_ONLY)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        raise PermissionDenied(GRANTS_ONLY)


@admin.register(AccessGrant)
class AccessGrantAdmin(admin.ModelAdmin):
    """Grants are decided in the portal's workflow (four eyes); the console only shows them."""

    list_display = [
        "pk",
        "status",
        "grantee_organisation",
        "grantee_user",
        "segment",
        "target_consumer",
        "valid_from",
        "valid_until",
        "requested_by",
        "decided_by",
    ]
    list_filter = ["status", "grantee_organisation"]
    list_select_related = [
        "grantee_organisation",
        "grantee_user",
        "segment",
        "consumer",
        "requested_by",
        "decided_by",
    ]
    exclude = ["consumer"]

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        """Only the sidebar's filters: ?consumer=<internal id> would map a consumer's sequential id to the
        public id shown in the list, and any other field could be probed the same way."""
        return lookup in GRANT_LOOKUPS

    @admin.display(description="consumer")
    def target_consumer(self, obj: AccessGrant) -> str:
        return obj.consumer.public_id if obj.consumer else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
