"""Access grants, and the guardian permission tables that approved grants fill.

A grant is the only source of scope. Guardian's rows say which permissions a grant assigned; the policy joins
them back to grants that are valid right now, because a guardian row carries no validity of its own.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from portal.accounts.models import Organisation
from portal.records.models import Consumer, Segment


class Permission(models.TextChoices):
    VIEW_AGGREGATES = "view_aggregates", _("View aggregates")
    VIEW_MASKED_RECORDS = "view_masked_records", _("View masked records")
    VIEW_RECORDS = "view_records", _("View records")
    VIEW_SCORES = "view_scores", _("View scores")
    EXPORT_RECORDS = "export_records", _("Export records")


# What each permission brings with it (SPEC §3): records imply masked records imply aggregates.
IMPLIED = {
    Permission.VIEW_RECORDS: {Permission.VIEW_MASKED_RECORDS, Permission.VIEW_AGGREGATES},
    Permission.VIEW_MASKED_RECORDS: {Permission.VIEW_AGGREGATES},
}
SEGMENT_PERMISSIONS = frozenset(Permission)
CONSUMER_PERMISSIONS = frozenset({Permission.VIEW_RECORDS, Permission.VIEW_SCORES})


def with_implied(permissions) -> set[str]:
    expanded = set(permissions)
    for permission in permissions:
        expanded |= IMPLIED.get(permission, set())
    return expanded


class AccessGrant(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        REVOKED = "revoked", _("Revoked")
        EXPIRED = "expired", _("Expired")

    grantee_organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="grants", null=True, blank=True
    )
    grantee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants", null=True, blank=True
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.PROTECT, related_name="grants", null=True, blank=True
    )
    # No foreign key in the database: grants are a Citus reference table, consumers a distributed one, and
    # Citus has no foreign key from the first kind to the second (deploy/SCALING.md §3.1). grant_request
    # takes a consumer read from the database; consumers are never deleted (PROTECT still holds in the ORM).
    consumer = models.ForeignKey(
        Consumer, on_delete=models.PROTECT, related_name="grants", null=True, blank=True, db_constraint=False
    )
    permissions = models.JSONField(_("permissions"))  # codenames of Permission, deduplicated and sorted
    purpose = models.TextField(_("purpose"))
    legal_basis = models.CharField(_("legal basis"), max_length=300)
    case_reference = models.CharField(_("case reference"), max_length=100)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants_requested"
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="grants_decided",
        null=True,
        blank=True,
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="grants_revoked",
        null=True,
        blank=True,
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revocation_reason = models.TextField(_("revocation reason"), blank=True)

    class Meta:
        verbose_name = _("access grant")
        verbose_name_plural = _("access grants")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(grantee_organisation__isnull=False, grantee_user__isnull=True)
                | models.Q(grantee_organisation__isnull=True, grantee_user__isnull=False),
                name="grant_one_grantee",
            ),
            models.CheckConstraint(
                condition=models.Q(segment__isnull=False, consumer__isnull=True)
                | models.Q(segment__isnull=True, consumer__isnull=False),
                name="grant_one_target",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__gt=models.F("valid_from")), name="grant_ends"
            ),
            # Four eyes, enforced by the database as well as the service.
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("requested_by")),
                name="grant_four_eyes",
            ),
        ]
        indexes = [
            models.Index(fields=["grantee_organisation", "status", "valid_until"], name="grant_org_status"),
            models.Index(fields=["grantee_user", "status", "valid_until"], name="grant_user_status"),
            models.Index(fields=["status", "valid_until"], name="grant_status_until"),
        ]

    def __str__(self) -> str:
        return f"Grant #{self.pk} ({self.status})"

    @property
    def target_kind(self) -> str:
        return "segment" if self.segment_id else "consumer"

    @property
    def grantee_label(self) -> str:
        if self.grantee_user_id is not None and self.grantee_user is not None:
            return self.grantee_user.get_username()
        return str(self.grantee_organisation)


# Guardian's direct-foreign-key tables (guardian docs, "performance"): one row per holder, permission and
# object, never one per consumer for a segment grant. `content_object` keeps its reverse relation so guardian
# finds these tables instead of falling back to its generic one.
class SegmentUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Segment, on_delete=models.CASCADE)


class SegmentGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Segment, on_delete=models.CASCADE)


# The case-level rows are few (one per case grant and permission) and read by holder on every request: on
# Citus they are reference tables beside the segment-level ones, so the policy's one statement over all four
# runs on one node; hence no foreign key to the distributed consumers in the database (as for grants).
class ConsumerUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Consumer, on_delete=models.CASCADE, db_constraint=False)


class ConsumerGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Consumer, on_delete=models.CASCADE, db_constraint=False)


class Export(models.Model):
    """A CSV of in-scope records, built by a worker under one grant and downloadable by its requester for a
    limited time. The file's SHA-256 goes into the audit event of each download."""

    class Kind(models.TextChoices):
        TRANSACTIONS = "transactions", _("Transactions")
        CONSUMERS = "consumers", _("Consumers")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    public_id = models.UUIDField(_("public id"), unique=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports"
    )
    grant = models.ForeignKey(AccessGrant, on_delete=models.PROTECT, related_name="exports")
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="exports")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    since = models.DateTimeField(_("since"), null=True, blank=True)
    until = models.DateTimeField(_("until"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    masked = models.BooleanField(_("masked"), default=True)
    error = models.TextField(_("error"), blank=True)
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    # When its files were deleted (expiry, or its grant ended): the download then answers 410 for good.
    files_deleted_at = models.DateTimeField(_("files deleted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        indexes = [models.Index(fields=["requested_by", "-created_at"], name="export_requester")]

    def __str__(self) -> str:
        return f"Export {self.public_id}"
