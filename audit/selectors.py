"""Reads of the audit trail for the API and web pages: event search, the per-consumer access log, checkpoints
and chain status. Querysets come back ordered newest first; callers paginate them by (occurred_at, id)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Expression,
    F,
    Max,
    Min,
    QuerySet,
    TextField,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit import chain, checkpoints, cosigning
from audit.models import AuditCheckpoint, AuditCosignature, AuditEvent, AuditSubject

# What the per-consumer log shows of each event (the inquiry list of a credit report).
ACCESS_LOG_FIELDS = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_organisation",
    "actor_role",
    "action",
    "outcome",
    "resource_kind",
    "grant_id",
    "purpose",
    "row_count",
)


class _HasSubject(Expression):
    """`EXISTS (a subject of the row's event with this public id)`, on (event, occurred_at). Written as one
    SQL fragment, as the access policy writes its segment condition: Django's Exists selects a bound constant
    (`SELECT %s AS a ... LIMIT 1`), which keeps the event list's page statement from being compiled once
    and prepared (portal.api.pagination), and the list runs on every search of the trail. The event's columns
    stay expressions, so that the condition follows its query's aliases."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, public_id: str) -> None:
        super().__init__()
        self.public_id = public_id
        self.event, self.occurred_at = F("id"), F("occurred_at")

    def get_source_expressions(self) -> list[Any]:
        return [self.event, self.occurred_at]

    def set_source_expressions(self, exprs: Any) -> None:
        self.event, self.occurred_at = exprs

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        event, event_params = compiler.compile(self.event)
        occurred_at, occurred_params = compiler.compile(self.occurred_at)
        table = connection.ops.quote_name(AuditSubject._meta.db_table)
        sql = (
            f"EXISTS (SELECT 1 FROM {table} s WHERE s.public_id = %s "  # noqa: S608 - names from _meta
            f"AND s.event_id = {event} AND s.occurred_at = {occurred_at})"
        )
        return sql, [self.public_id, *event_params, *occurred_params]


def event_list(
    *,
    actor: str | None = None,
    organisation: str | None = None,
    consumer: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every filter given: actor username, organisation name (as recorded), a consumer's
    public id (events whose subjects include it), action, outcome, and time since (inclusive) / until
    (exclusive)."""
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_username=actor)
    if organisation:
        events = events.filter(actor_organisation=organisation)
    if consumer:
        # A semi-join, not a join: an event is listed once, whatever else it touched. On (event, occurred_at),
        # so that each subject reads only its own month's partition of the events.
        events = events.filter(_HasSubject(consumer))
    if action:
        events = events.filter(action=action)
    if outcome:
        events = events.filter(outcome=outcome)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    return events.order_by("-occurred_at", "-id")


# What the event list shows of each event: every recorded field but the internal user id, and its hash.
EVENT_LIST_FIELDS = (*(name for name in chain.EVENT_FIELDS if name != "actor_id"), "hash")


def with_subject_ids(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """`events` with `subject_ids`: a JSON array (text) of each event's subjects' public ids, sorted (the
    order of the (event, public id) index, and of the chain's canonical bytes), read with the event in the
    same statement, on (event, occurred_at): on PostgreSQL each event's own month's partition of the
    subjects. Raw SQL: the ordered aggregate into one value is each vendor's own (json_agg,
    json_group_array). Table names only, no input: nothing to bind."""
    table = AuditEvent._meta.db_table
    where = f"s.event_id = {table}.id AND s.occurred_at = {table}.occurred_at"  # the outer row: no parameter
    if connection.vendor == "postgresql":
        sql = (
            "SELECT COALESCE(json_agg(s.public_id ORDER BY s.public_id)::text, '[]') "  # noqa: S608
            f"FROM {AuditSubject._meta.db_table} s WHERE {where}"
        )
    else:
        sql = (
            "SELECT json_group_array(public_id) FROM "  # noqa: S608
            f"(SELECT s.public_id FROM {AuditSubject._meta.db_table} s WHERE {where} ORDER BY s.public_id)"
        )
    return events.annotate(subject_ids=RawSQL(sql, (), output_field=TextField()))  # noqa: S611 - no input


def consumer_access_log(*, public_id: str, organisation: str | None = None) -> QuerySet[AuditEvent]:
    """Every event that returned this consumer's data: who (user and organisation), when, what, under which
    grant and purpose; with `organisation`, only that organisation's (as recorded). Each row carries
    `subject_grant_id`: the grant this consumer was shown under (recorded per subject; the event's grant for
    subjects recorded before subjects carried one). Served from the (public_id, occurred_at, event) index of
    the subjects, newest first, each joined to its event on (id, occurred_at): the events' primary key, and
    on PostgreSQL the month's partition only (pruned at run time), not every partition of the trail."""
    events = AuditEvent.objects.filter(
        # One filter() call: both conditions apply to the same subject row, which the annotation reuses.
        subjects__public_id=public_id,
        subjects__occurred_at=F("occurred_at"),
    )
    if organisation is not None:
        events = events.filter(actor_organisation=organisation)
    return (
        events.annotate(subject_grant_id=Coalesce(F("subjects__grant_id"), F("grant_id")))
        .only(*ACCESS_LOG_FIELDS, "chain_position")
        .order_by("-occurred_at", "-id")
    )


def consumer_access_log_latest(*, public_id: str, organisation: str, rows: int) -> list[AuditEvent]:
    """The first `rows` of consumer_access_log(public_id=…, organisation=…): the same events, fields and
    order. On PostgreSQL read newest first from the subjects' (public_id, occurred_at, event) index, each
    subject looking up its own event (in its month's partition) until `rows` of the organisation's are
    found: a cost of the rows shown, not of every event that ever named the consumer. The planner would
    rather hash-join every event of the month with every subject of the consumer and sort them (it takes
    the two-column join for one row), so the lookup is a LATERAL subquery it cannot flatten (OFFSET 0).
    Raw SQL because the ORM writes no LATERAL; only table and column names are interpolated."""
    if connection.vendor != "postgresql":
        return list(consumer_access_log(public_id=public_id, organisation=organisation)[:rows])
    columns = ", ".join(f"e.{name}" for name in (*ACCESS_LOG_FIELDS, "chain_position"))
    sql = (
        f"SELECT {columns}, COALESCE(s.grant_id, e.grant_id) AS subject_grant_id "  # noqa: S608
        f"FROM {AuditSubject._meta.db_table} s CROSS JOIN LATERAL ("
        f"SELECT * FROM {AuditEvent._meta.db_table} e WHERE e.id = s.event_id "
        "AND e.occurred_at = s.occurred_at AND e.actor_organisation = %s OFFSET 0) e "
        f"WHERE s.public_id = %s ORDER BY s.occurred_at DESC, s.event_id DESC LIMIT {int(rows)}"
    )
    return list(AuditEvent.objects.raw(sql, [organisation, public_id]))


def consumer_access_log_others(*, public_id: str, organisation: str) -> int:
    """How many of this consumer's access-log entries belong to other organisations than this one (a
    regulator sees only the count of those): consumer_access_log(public_id=…) without `organisation`'s
    entries, counted. In SQL written once: compiling the ORM's count of it (a join on two columns and an
    exclusion) took longer than the database takes to count. Table and column names only are interpolated."""
    sql = (
        f"SELECT COUNT(*) FROM {AuditSubject._meta.db_table} s JOIN {AuditEvent._meta.db_table} e "  # noqa: S608
        "ON e.id = s.event_id AND e.occurred_at = s.occurred_at "
        "WHERE s.public_id = %s AND NOT (e.actor_organisation = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [public_id, organisation])
        (count,) = cursor.fetchone()
    return int(count)


def checkpoint_list() -> QuerySet[AuditCheckpoint]:
    """Signed checkpoints, newest first (`audit.checkpoints.checkpoint_document` gives the download)."""
    return AuditCheckpoint.objects.order_by("-chain_position")


@dataclass(frozen=True)
class ChainStatus:
    sealed: int
    pending: int
    oldest_pending_seconds: float | None
    pending_warning: bool
    head_position: int
    head_hash: str
    latest_checkpoint: dict[str, Any] | None  # a checkpoint document
    public_key: str
    public_key_fingerprint: str
    # The newest checkpoint this installation signed within the sealed chain (forged rows do not count), its
    # age, and whether it is older than AUDIT_CHECKPOINT_MAX_AGE (or missing while events are sealed).
    checkpoint_age_seconds: float | None = None
    checkpoint_warning: bool = False
    # Each witness of AUDIT_WITNESSES: the largest checkpoint it cosigned, whether it has cosigned the
    # latest, and what the last submission came to; a warning when one is behind.
    witnesses: list[dict[str, Any]] = field(default_factory=list)
    witness_warning: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def chain_status() -> ChainStatus:
    """Where sealing stands, in three cheap queries (positions are gap-free: the head's is the count)."""
    head = chain.head()
    pending = AuditEvent.objects.filter(chain_position__isnull=True).aggregate(
        count=Count("id"), oldest=Min("occurred_at")
    )
    age = None
    if pending["oldest"] is not None:
        age = max(0.0, (timezone.now() - pending["oldest"]).total_seconds())
    latest = checkpoints.latest_valid(head.position)
    checkpoint_age = (
        None if latest is None else max(0.0, (timezone.now() - latest.created_at).total_seconds())
    )
    key = checkpoints.public_key()
    witnesses = witness_status(latest)
    return ChainStatus(
        sealed=head.position,
        pending=pending["count"],
        oldest_pending_seconds=age,
        pending_warning=age is not None and age > settings.AUDIT_PENDING_WARNING_SECONDS,
        head_position=head.position,
        head_hash=head.hash,
        latest_checkpoint=None if latest is None else checkpoints.checkpoint_document(latest),
        public_key=key,
        public_key_fingerprint=checkpoints.public_key_fingerprint(key),
        checkpoint_age_seconds=checkpoint_age,
        checkpoint_warning=head.position > 0
        and (checkpoint_age is None or checkpoint_age > settings.AUDIT_CHECKPOINT_MAX_AGE),
        witnesses=witnesses,
        witness_warning=any(not w["ok"] for w in witnesses),
    )


# A witness may take this long to cosign a new checkpoint before it counts as behind (unless its last
# submission already failed).
WITNESS_GRACE_SECONDS = 120


def witness_status(latest: AuditCheckpoint | None) -> list[dict[str, Any]]:
    """Per configured witness: the largest checkpoint it cosigned, and whether it vouches for `latest`
    (one query for all witnesses; the last attempt's outcome comes from the cache)."""
    configured = cosigning.witnesses()
    if not configured:
        return []
    cosigned = {
        row["witness_key"]: row
        for row in AuditCosignature.objects.filter(witness_key__in=[w.key for w in configured])
        .values("witness_key")
        .annotate(size=Max("checkpoint__tree_size"), at=Max("cosigned_at"))
    }
    age = None if latest is None else (timezone.now() - latest.created_at).total_seconds()
    found = []
    for target in configured:
        row = cosigned.get(target.key, {})
        size = row.get("size") or 0
        attempt = cosigning.last_attempt(target.key)
        current = latest is None or size >= (latest.tree_size or 0)
        failed = attempt is not None and attempt["outcome"] != "cosigned"
        found.append(
            {
                "name": target.name,
                "url": target.url,
                "cosigned_size": size,
                "cosigned_at": row.get("at"),
                "current": current,
                "last_attempt": attempt,
                "ok": current or not (failed or (age is not None and age > WITNESS_GRACE_SECONDS)),
            }
        )
    return found
