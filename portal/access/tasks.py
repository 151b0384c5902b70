"""Periodic upkeep of grants and exports: expire what ran out, keep guardian's tables equal to the active
grants, delete export files that may no longer be downloaded."""

from celery import shared_task
from django.db import transaction

from audit.recorder import record_decision
from portal.access.exports import exports_discard
from portal.access.services import grants_expire, permissions_reconcile


@shared_task(
    name="access.expire_grants",
    ignore_result=True,
    time_limit=300,
    soft_time_limit=240,
    autoretry_for=(Exception,),
    max_retries=3,
    retry_backoff=True,
)
def expire_grants() -> None:
    """Idempotent: a second run finds nothing to expire and nothing to reconcile. The policy already ignores a
    grant past its end; this makes the records say so too. Each grant ended has its own `grant.expire`
    event (written by grants_expire with the change); a reconciliation that changed rows has one too."""
    grants_expire()
    with transaction.atomic():
        added, removed = permissions_reconcile()
        if added or removed:
            record_decision(
                actor=None,
                action="access.permissions.reconcile",
                resource_kind="guardian_permissions",
                resource_id="",
                detail={"added": added, "removed": removed},
                row_count=added + removed,
            )
    exports_discard()


@shared_task(
    name="exports.discard_expired",
    ignore_result=True,
    time_limit=300,
    soft_time_limit=240,
    autoretry_for=(Exception,),
    max_retries=3,
    retry_backoff=True,
)
def discard_expired_exports() -> None:
    """Delete the files of expired exports and of exports whose grant has ended. Idempotent."""
    exports_discard()


@shared_task(
    name="exports.build",
    bind=True,
    ignore_result=True,
    time_limit=3600,
    soft_time_limit=3300,
    acks_late=True,
    max_retries=2,
)
def build_export(self, export_id: int) -> None:
    from portal.access.exports import export_build

    export_build(export_id=export_id, task_id=self.request.id or "")
