from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from portal.access.models import AccessGrant, SegmentGroupObjectPermission
from portal.access.tasks import expire_grants


def test_the_periodic_task_expires_reconciles_and_is_audited(demo):
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    AccessGrant.objects.filter(pk=grant.pk).update(
        valid_from=timezone.now() - timedelta(days=2), valid_until=timezone.now() - timedelta(seconds=1)
    )
    expire_grants.apply()
    grant.refresh_from_db()
    assert grant.status == AccessGrant.Status.EXPIRED
    assert not SegmentGroupObjectPermission.objects.filter(content_object_id=grant.segment_id).exists()
    event = AuditEvent.objects.get(action="grant.expire")
    assert (event.grant_id, event.purpose) == (grant.pk, grant.purpose)
    before = AuditEvent.objects.count()
    expire_grants.apply()
    assert AuditEvent.objects.count() == before
