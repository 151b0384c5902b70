"""CSV exports of in-scope records (SPEC §6): requested under export_records, built by a worker through the
access policy, downloaded by the requester while the grant still allows it and the file has not expired."""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.access import masking, policy
from portal.access.models import Export, Permission
from portal.accounts.models import User
from portal.records.models import Segment, SegmentMembership

EXPORT_LIFETIME = timedelta(hours=24)
# A cell a spreadsheet would read as a formula is prefixed with a quote (OWASP: CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 5_000


class ExportError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def export_dir() -> Path:
    path = Path(settings.VAR_DIR) / "exports"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _file(export: Export) -> Path:
    return export_dir() / f"{export.public_id}.csv"


def _subjects_file(export: Export) -> Path:
    return export_dir() / f"{export.public_id}.subjects.json"


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_request(
    *,
    user: User,
    scope: policy.Scope,
    segment: Segment,
    kind: str,
    since: datetime | None,
    until: datetime | None,
) -> Export:
    """Record the request and hand it to a worker once committed. Needs export_records on the segment."""
    grant = scope.grant_for_segment(segment.pk, Permission.EXPORT_RECORDS)
    if grant is None:
        raise ExportError("segment", "Unknown segment.")
    with transaction.atomic():
        export = Export.objects.create(
            public_id=uuid.uuid4(),
            requested_by=user,
            grant=grant,
            segment=segment,
            kind=kind,
            since=since,
            until=until,
        )
        from portal.access.tasks import build_export

        transaction.on_commit(lambda: build_export.delay(export.pk))
    return export


def _rows(export: Export, scope: policy.Scope, full: bool) -> Iterator[tuple[list[str], str]]:
    """(CSV row, consumer public id) in a stable order, chunk by chunk (constant memory)."""
    members = SegmentMembership.objects.filter(segment_id=export.segment_id).values("consumer_id")
    if export.kind == Export.Kind.CONSUMERS:
        consumers = policy.visible_consumers(scope).filter(pk__in=members).order_by("pk")
        for c in consumers.iterator(chunk_size=CHUNK):
            shown = masking.identity(c, masked=not full)
            name, rid, phone = shown["name"], shown["resident_id"], shown["phone"]
            yield (
                [
                    c.public_id,
                    name,
                    rid,
                    phone,
                    c.province,
                    c.city,
                    str(c.birth_year),
                    c.joined_on.isoformat(),
                    c.status,
                ],
                c.public_id,
            )
        return
    transactions = policy.visible_transactions(scope).filter(consumer_id__in=members)
    if export.since:
        transactions = transactions.filter(occurred_at__gte=export.since)
    if export.until:
        transactions = transactions.filter(occurred_at__lte=export.until)
    transactions = transactions.select_related("consumer", "account", "merchant").order_by(
        "occurred_at", "pk"
    )
    for t in transactions.iterator(chunk_size=CHUNK):
        yield (
            [
                t.consumer.public_id,
                timezone.localtime(t.occurred_at).isoformat(),
                t.kind,
                str(t.amount),
                "CNY",
                t.account.product,
                t.merchant.name if t.merchant else "",
                t.merchant.category if t.merchant else "",
                t.channel,
                t.due_date.isoformat() if t.due_date else "",
                "" if t.days_late is None else str(t.days_late),
            ],
            t.consumer.public_id,
        )


HEADERS = {
    Export.Kind.CONSUMERS: [
        "public_id",
        "name",
        "resident_id",
        "phone",
        "province",
        "city",
        "birth_year",
        "joined_on",
        "status",
    ],
    Export.Kind.TRANSACTIONS: [
        "consumer",
        "occurred_at",
        "kind",
        "amount",
        "currency",
        "account_product",
        "merchant",
        "merchant_category",
        "channel",
        "due_date",
        "days_late",
    ],
}


def export_build(*, export_id: int, task_id: str = "") -> Export:
    """Write the CSV under the grant recorded at request time. Idempotent: a finished export is left as is."""
    with transaction.atomic():
        export = (
            Export.objects.select_for_update(of=("self",))
            .select_related("requested_by__organisation")
            .get(pk=export_id)
        )
        if export.status in (Export.Status.READY, Export.Status.FAILED):
            return export
        export.status, export.task_id = Export.Status.BUILDING, task_id
        export.save(update_fields=["status", "task_id"])
    try:
        scope = policy.scope_for(export.requested_by, grant_id=export.grant_id)
    except policy.InvalidGrant:
        return _fail(export, "The grant no longer allows this export.")
    if Permission.EXPORT_RECORDS not in scope.segment_permissions(export.segment_id):
        return _fail(export, "The grant no longer allows this export.")
    full = Permission.VIEW_RECORDS in scope.segment_permissions(export.segment_id)
    count, subjects = 0, set()
    path = _file(export)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS[Export.Kind(export.kind)])
        for row, subject in _rows(export, scope, full):
            writer.writerow([safe_cell(v) for v in row])
            subjects.add(subject)
            count += 1
    digest = _sha256(path)
    _subjects_file(export).write_text(json.dumps(sorted(subjects)))
    now = timezone.now()
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.READY,
        finished_at=now,
        expires_at=now + EXPORT_LIFETIME,
        row_count=count,
        sha256=digest,
        masked=not full,
    )
    export.refresh_from_db()
    return export


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail(export: Export, message: str) -> Export:
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.FAILED, error=message, finished_at=timezone.now()
    )
    export.refresh_from_db()
    return export


class Download:
    def __init__(self, export: Export, path: Path, subjects: list[str]) -> None:
        self.export, self.path, self.subjects = export, path, subjects


def export_for_download(*, export: Export, user: User) -> Download:
    """The file, if it is ready, unexpired, and the requester's grant still allows exporting the segment."""
    if (
        export.status != Export.Status.READY
        or export.expires_at is None
        or export.expires_at <= timezone.now()
    ):
        raise ExportError("export", "This export is not available (not ready, failed or expired).")
    try:
        scope = policy.scope_for(user, grant_id=export.grant_id)
    except policy.InvalidGrant:
        raise ExportError("export", "The grant behind this export no longer allows it.") from None
    if Permission.EXPORT_RECORDS not in scope.segment_permissions(export.segment_id):
        raise ExportError("export", "The grant behind this export no longer allows it.")
    path = _file(export)
    if _sha256(path) != export.sha256:
        raise ExportError("export", "The export file does not match its recorded SHA-256.")
    return Download(export, path, json.loads(_subjects_file(export).read_text()))
