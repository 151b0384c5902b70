"""CSV exports of in-scope records (SPEC §6): requested under export_records, built by a worker through the
access policy, downloaded by the requester while the grant still allows it and the file has not expired.
The files hold personal data in clear: they are deleted when they expire or their grant ends (a periodic
sweep, and at once on revocation).

On PostgreSQL a transactions export is one `COPY (the policy's query) TO STDOUT WITH CSV`, formatted and
formula-escaped in SQL, and one streaming pass in Python that turns PostgreSQL's line ends into the csv
module's, hashes, counts and collects the subjects: the bytes of the row-by-row builder (kept for SQLite,
and for consumers, whose identifiers are decrypted in Python), at close to COPY's rate, in constant memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.recorder import record_decision
from portal.access import masking, policy
from portal.access.models import AccessGrant, Export, Permission
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
        detail = {"segment": segment.pk, "kind": kind}
        if since is not None:
            detail["since"] = timezone.localtime(since).isoformat()
        if until is not None:
            detail["until"] = timezone.localtime(until).isoformat()
        # With the request, or not at all: an export nobody can find in the trail must never be built.
        record_decision(
            actor=user,
            action="export.requested",
            resource_kind="export",
            resource_id=export.public_id,
            grant=grant,
            detail=detail,
        )
        from portal.access.tasks import build_export

        transaction.on_commit(lambda: build_export.delay(export.pk))
    return export


def _transactions(export: Export, scope: policy.Scope) -> Any:
    """The export's transactions as the policy gives them: in scope, in the segment, in the period."""
    members = SegmentMembership.objects.filter(segment_id=export.segment_id).values("consumer_id")
    transactions = policy.visible_transactions(scope).filter(consumer_id__in=members)
    if export.since:
        transactions = transactions.filter(occurred_at__gte=export.since)
    if export.until:
        transactions = transactions.filter(occurred_at__lte=export.until)
    return transactions


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
    transactions = _transactions(export, scope).select_related("consumer", "account", "merchant")
    for t in transactions.order_by("occurred_at", "pk").iterator(chunk_size=CHUNK):
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
    path = _file(export)
    if connection.vendor == "postgresql" and export.kind == Export.Kind.TRANSACTIONS:
        count, subjects, digest = write_transactions_copy(path, _transactions(export, scope))
    else:
        count, subjects, digest = write_rows(path, export, scope, full)
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


def write_rows(path: Path, export: Export, scope: policy.Scope, full: bool) -> tuple[int, set[str], str]:
    """The row-by-row builder: (rows, subjects, SHA-256) of the CSV written to `path`."""
    count, subjects = 0, set()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS[Export.Kind(export.kind)])
        for row, subject in _rows(export, scope, full):
            writer.writerow([safe_cell(v) for v in row])
            subjects.add(subject)
            count += 1
    return count, subjects, _sha256(path)


def _safe_sql(expression: str) -> str:
    """safe_cell in SQL; an empty text becomes NULL, which COPY writes unquoted, as the csv module does."""
    prefixes = ", ".join(f"chr({ord(p)})" for p in FORMULA_PREFIXES)
    return (
        f"NULLIF(CASE WHEN left({expression}, 1) IN ({prefixes}) THEN chr(39) || {expression} "
        f"ELSE {expression} END, '')"
    )


# The transactions export's columns (HEADERS), formatted as _rows formats them: times in the session's zone
# (set to the portal's) as Python's isoformat writes them, amounts and dates as their text.
_ISO_TIME = (
    """to_char(r.occurred_at, 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN """
    "extract(microseconds FROM r.occurred_at)::bigint % 1000000 <> 0 THEN to_char(r.occurred_at, '.US') "
    "ELSE '' END || to_char(r.occurred_at, 'TZH:TZM')"
)
_TRANSACTION_COLUMNS = [
    "r.consumer",
    _ISO_TIME,
    "r.kind",
    "r.amount::text",
    "'CNY'",
    "r.product",
    "r.merchant",
    "r.category",
    "r.channel",
    "r.due_date::text",
    "r.days_late::text",
]
_TRANSACTION_VALUES = (
    "consumer__public_id",
    "occurred_at",
    "kind",
    "amount",
    "account__product",
    "merchant__name",
    "merchant__category",
    "channel",
    "due_date",
    "days_late",
    "id",
)
_NAMES = "consumer, occurred_at, kind, amount, product, merchant, category, channel, due_date, days_late, id"


class _CsvSink:
    """Where COPY writes. PostgreSQL ends a record with LF, the csv module with CRLF: outside quoted fields
    (a field with a quote, a comma or a line break is quoted, its quotes doubled) every LF ends a record;
    inside one it is data and stays. Passes the bytes on hashed, counts the records and collects their
    first field (the consumer's public id, never quoted), a block of about a megabyte at a time."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest = handle, hashlib.sha256()
        self.quoted = False  # inside a quoted field where the last block ended
        self.first: bytes | None = b""  # the current record's first field while it is still being read
        self.rows, self.subjects = 0, set[bytes]()
        self.buffer: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.buffer.append(data)
        self.size += len(data)
        if self.size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        parts = b"".join(self.buffer).split(b'"')
        self.buffer, self.size = [], 0
        for index, part in enumerate(parts):
            if (index % 2 == 1) != self.quoted:  # inside quotes: data
                continue
            lines = part.split(b"\n")
            if self.first is not None:
                comma = lines[0].find(b",")
                if comma >= 0:
                    self.subjects.add(self.first + lines[0][:comma])
                    self.first = None
                elif len(lines) == 1:
                    self.first += lines[0]
            for line in lines[1:]:
                comma = line.find(b",")
                if comma >= 0:
                    self.subjects.add(line[:comma])
                    self.first = None
                else:
                    self.first = line
            self.rows += len(lines) - 1
            parts[index] = b"\r\n".join(lines)
        if len(parts) % 2 == 0:  # an odd number of quotes in the block
            self.quoted = not self.quoted
        block = b'"'.join(parts)
        self.digest.update(block)
        self.handle.write(block)


def write_transactions_copy(path: Path, transactions: Any) -> tuple[int, set[str], str]:
    """The transactions export through COPY: (rows, subjects, SHA-256) of the CSV written to `path`."""
    sql, params = transactions.order_by().values_list(*_TRANSACTION_VALUES).query.sql_with_params()
    columns = ", ".join(_safe_sql(column) for column in _TRANSACTION_COLUMNS)
    header = io.StringIO()
    csv.writer(header).writerow(HEADERS[Export.Kind.TRANSACTIONS])
    head = header.getvalue().encode()
    with transaction.atomic(), connection.cursor() as cursor, path.open("wb") as handle:
        # The portal's zone for the times and ISO dates, for this transaction only.
        cursor.execute(
            "SELECT set_config('TimeZone', %s, true), set_config('DateStyle', 'ISO', true)",
            [timezone.get_current_timezone_name()],
        )
        query = cursor.mogrify(sql, params).decode()
        copy = (
            f"COPY (SELECT {columns} FROM ({query}) AS r({_NAMES}) "  # noqa: S608 - bound by mogrify
            "ORDER BY r.occurred_at, r.id) TO STDOUT WITH (FORMAT csv)"
        )
        handle.write(head)
        sink = _CsvSink(handle)
        sink.digest.update(head)
        cursor.copy_expert(copy, sink)
        sink.flush()
    return sink.rows, {subject.decode() for subject in sink.subjects}, sink.digest.hexdigest()


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
        or export.files_deleted_at is not None
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


def _delete_files(public_ids: list[str]) -> None:
    for public_id in public_ids:
        for path in (export_dir() / f"{public_id}.csv", export_dir() / f"{public_id}.subjects.json"):
            path.unlink(missing_ok=True)


def exports_discard(*, grant_id: int | None = None, now: datetime | None = None) -> int:
    """Delete the files of exports that may no longer be downloaded: expired ones, and those whose grant has
    ended (revoked, expired, or past its end); with `grant_id`, only that grant's exports, whatever their
    expiry. Marks them (files_deleted_at) in the caller's transaction and deletes the files once it commits,
    so that a rolled-back revocation leaves its exports alone. Idempotent; returns how many were marked."""
    now = now or timezone.now()
    pending = Export.objects.filter(files_deleted_at__isnull=True).exclude(
        status__in=[Export.Status.PENDING, Export.Status.BUILDING]
    )
    if grant_id is not None:
        pending = pending.filter(grant_id=grant_id)
    else:
        ended = ~Q(grant__status=AccessGrant.Status.APPROVED) | Q(grant__valid_until__lte=now)
        pending = pending.filter(Q(expires_at__lte=now) | Q(expires_at__isnull=True) | ended)
    with transaction.atomic():
        public_ids = [
            str(p) for p in pending.select_for_update(of=("self",)).values_list("public_id", flat=True)
        ]
        if not public_ids:
            return 0
        Export.objects.filter(public_id__in=public_ids).update(files_deleted_at=now)
        transaction.on_commit(lambda: _delete_files(public_ids))
    return len(public_ids)
