"""Periodic upkeep of grants: expire what ran out and keep guardian's tables equal to the active grants."""

from celery import shared_task

from audit.recorder import record
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
    grant past its end; this makes the records say so too."""
    expired = grants_expire()
    added, removed = permissions_reconcile()
    if expired or added or removed:
        record(
            action="grant.expire",
            outcome="allowed",
            resource_kind="grant",
            row_count=expired,
            purpose=f"{expired} grant(s) expired; guardian rows reconciled: {added} added, {removed} removed",
        )


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
