"""The access policy: the one answer to "what may this user see, and under which grant?".

Every path to consumer data (API, web pages, exports, the admin console) asks it. Scope comes only from
approved grants that are valid at this moment AND whose permissions guardian's tables hold: a guardian row
carries no validity, and a grant whose rows were removed gives nothing. Nobody has implicit scope, whatever
their role, staff or superuser flag (SPEC §3), and an account whose membership (organisation and role) a
second person has not approved has none at all, whatever its organisation holds.

A scope costs one query, whatever its size: the valid grants, each with guardian's rows for its object.
Querysets filter by the few segment ids in scope; a segment grant is one row, never one per consumer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission as AuthPermission
from django.db import connection
from django.db.models import (
    BooleanField,
    Exists,
    Expression,
    ExpressionWrapper,
    F,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.utils import timezone

from portal import rows
from portal.access.models import (
    AccessGrant,
    ConsumerGroupObjectPermission,
    ConsumerUserObjectPermission,
    Permission,
    SegmentGroupObjectPermission,
    SegmentUserObjectPermission,
    with_implied,
)
from portal.accounts.models import Membership, Organisation, User
from portal.prepared import prepared
from portal.records import selectors as records_selectors
from portal.records.models import (
    PUBLIC_ID_ALPHABET,
    PUBLIC_ID_LENGTH,
    Account,
    Consumer,
    ConsumerPublicId,
    Segment,
    SegmentMembership,
    Transaction,
)

RECORDS = Permission.VIEW_MASKED_RECORDS  # the least that shows rows at all
# Below this many members in all, a list in scope hashes the granted segments' memberships (one index range,
# a hash of at most this many ids) and tests each consumer against the hash; at or above it, each consumer
# the list walks probes the membership index (the list finds its first page after fewer consumers). Either
# way the rows are the same: the count only chooses the plan's shape, so it is counted no further than this.
SMALL_GRANT_MEMBERS = 2000
PUBLIC_ID_PATTERN = re.compile(rf"C[{PUBLIC_ID_ALPHABET}]{{{PUBLIC_ID_LENGTH - 1}}}")


class InvalidGrant(Exception):
    """The grant a client named (X-Access-Grant) is not a valid grant of theirs."""


@dataclass
class Scope:
    """What one user may see right now: per segment and per consumer, the permissions and the grants behind
    them. Built once per request."""

    user: User | None
    at: datetime
    grants: dict[int, AccessGrant] = field(default_factory=dict)
    segments: dict[int, dict[str, int]] = field(default_factory=dict)  # segment id -> {permission: grant id}
    consumers: dict[int, dict[str, int]] = field(
        default_factory=dict
    )  # consumer id -> {permission: grant id}
    # segment id -> its member count, counted up to SMALL_GRANT_MEMBERS (the scope statement reads it)
    segment_members: dict[int, int] = field(default_factory=dict)

    def segment_ids(self, permission: str) -> list[int]:
        return sorted(sid for sid, perms in self.segments.items() if permission in perms)

    def consumer_ids(self, permission: str) -> list[int]:
        return sorted(cid for cid, perms in self.consumers.items() if permission in perms)

    def segment_permissions(self, segment_id: int) -> set[str]:
        return set(self.segments.get(segment_id, {}))

    def grant_for_segment(self, segment_id: int, permission: str) -> AccessGrant | None:
        grant_id = self.segments.get(segment_id, {}).get(permission)
        return self.grants.get(grant_id) if grant_id is not None else None

    def is_empty(self) -> bool:
        return not self.segments and not self.consumers

    def is_small(self, permission: str) -> bool:
        """Whether the segments that carry `permission` have fewer than SMALL_GRANT_MEMBERS members in
        all: a list's query then hashes their memberships instead of probing them row by row."""
        counts = [self.segment_members.get(sid, SMALL_GRANT_MEMBERS) for sid in self.segment_ids(permission)]
        return sum(counts) < SMALL_GRANT_MEMBERS


def _add(
    target: dict[int, dict[str, int]], object_id: int, permissions: Iterable[str], grant_id: int
) -> None:
    held = target.setdefault(object_id, {})
    for permission in with_implied(permissions):
        # The oldest grant authorises when several cover the same access: attribution stays stable.
        if permission not in held or grant_id < held[permission]:
            held[permission] = grant_id


def scope_for(user: Any, *, grant_id: int | None = None, at: datetime | None = None) -> Scope:
    """The user's scope now. With `grant_id` (a client's X-Access-Grant), only that grant counts."""
    at = at or timezone.now()
    scope = Scope(user=user, at=at)
    if user is None or not user.is_authenticated or not user.is_active:
        if grant_id is not None:
            raise InvalidGrant(grant_id)
        return scope
    assigned: set[tuple[int, str]] = set()
    grant_columns = _row_columns(AccessGrant, "valid")
    width, key = len(grant_columns.attnames), grant_columns.attnames.index(AccessGrant._meta.pk.attname)
    with connection.cursor() as cursor:
        cursor.execute(*_scope_sql(user, at, grant_id))
        rows = cursor.fetchall()
    for row in rows:  # each grant once per permission assigned for it (its columns, members, codename)
        grant_pk, segment_members, codename = row[key], row[width], row[width + 1]
        if grant_pk not in scope.grants:
            grant = grant_columns.instance(list(row[:width]), connection.alias)
            grant.segment_members = segment_members
            scope.grants[grant_pk] = grant
        if codename is not None:
            assigned.add((grant_pk, codename))
    if grant_id is not None and not scope.grants:
        raise InvalidGrant(grant_id)
    for grant in scope.grants.values():
        held = [p for p in grant.permissions if (grant.pk, p) in assigned]
        object_id = grant.segment_id if grant.segment_id is not None else grant.consumer_id
        if held and object_id is not None:
            target = scope.segments if grant.segment_id is not None else scope.consumers
            _add(target, object_id, held, grant.pk)
        if grant.segment_id is not None:
            scope.segment_members[grant.segment_id] = getattr(grant, "segment_members", 0)
    return scope


_ROW_COLUMNS: dict[tuple[type[Model], str, str], rows.Columns] = {}


def _row_columns(model: type[Model], alias: str) -> rows.Columns:
    """`model`'s columns through `alias` in this module's hand-written statements (portal.rows)."""
    key = (model, alias, connection.alias)
    found = _ROW_COLUMNS.get(key)
    if found is None:
        found = _ROW_COLUMNS[key] = rows.columns(model, alias, connection.alias)
    return found


def _scope_sql(user: Any, at: datetime, grant_id: int | None) -> tuple[str, list[Any]]:
    """One statement for a scope: the user's grants valid at `at` (through a membership in force: approved,
    and matching the account's organisation and role), each once per permission guardian holds for its
    holder on its object (the last column; NULL when it holds none).

    Guardian's rows carry no validity and grants carry no assignment: a permission counts only where both
    agree, so a grant whose rows were removed gives nothing, and a row without a valid grant gives nothing.
    The membership is a condition of the same statement, so it can never be read stale. Each grant also
    carries its segment's member count up to SMALL_GRANT_MEMBERS (`segment_members`, one short index range),
    for the lists' plan shape (Scope.is_small). In SQL because it runs on every request, and the ORM's
    compilation of the equivalent correlated subqueries costs more than the query itself; its rows become
    grants through portal.rows, not RawQuerySet, for the same reason.
    """
    grant = AccessGrant._meta.db_table
    organisation = Organisation._meta.db_table
    permission = AuthPermission._meta.db_table
    membership = Membership._meta.db_table
    segment_membership = SegmentMembership._meta.db_table
    when = connection.ops.adapt_datetimefield_value(at)
    params: list[Any] = [AccessGrant.Status.APPROVED, when, when, user.pk]
    holder = "g.grantee_user_id = %s"
    if user.organisation_id is not None:
        holder += " OR g.grantee_organisation_id = %s"
        params.append(user.organisation_id)
    params += [user.pk, Membership.Status.APPROVED, user.role]
    if user.organisation_id is not None:
        same_organisation = "m.organisation_id = %s"
        params.append(user.organisation_id)
    else:
        same_organisation = "m.organisation_id IS NULL"
    only = ""
    if grant_id is not None:
        only = " AND g.id = %s"
        params.append(grant_id)
    by_group = f"JOIN {organisation} o ON o.id = v.grantee_organisation_id AND o.group_id = r.group_id"
    # Each branch gives permission ids; their codenames are joined once, outside the union: four joins
    # fewer for the planner, which costs more than the statement's execution on every request.
    parts = " UNION ALL ".join(
        f"SELECT v.id AS grant_id, r.permission_id FROM valid v "  # noqa: S608 - names from _meta
        f"JOIN {model._meta.db_table} r ON r.content_object_id = v.{target} {holder_join}"
        for model, target, holder_join in (
            (SegmentGroupObjectPermission, "segment_id", by_group),
            (SegmentUserObjectPermission, "segment_id", "AND r.user_id = v.grantee_user_id"),
            (ConsumerGroupObjectPermission, "consumer_id", by_group),
            (ConsumerUserObjectPermission, "consumer_id", "AND r.user_id = v.grantee_user_id"),
        )
    )
    sql = (
        f"WITH valid AS (SELECT g.*, (SELECT count(*) FROM (SELECT 1 FROM {segment_membership} sm "  # noqa: S608
        f"WHERE sm.segment_id = g.segment_id LIMIT {SMALL_GRANT_MEMBERS:d}) counted) AS segment_members "
        f"FROM {grant} g WHERE g.status = %s AND g.valid_from <= %s "
        f"AND g.valid_until > %s AND ({holder}) AND EXISTS (SELECT 1 FROM {membership} m "
        f"WHERE m.user_id = %s AND m.status = %s AND m.role = %s AND {same_organisation}){only}) "
        f"SELECT {_row_columns(AccessGrant, 'valid').select}, valid.segment_members, p.codename FROM valid "
        f"LEFT JOIN ({parts}) a ON a.grant_id = valid.id LEFT JOIN {permission} p ON p.id = a.permission_id "
        f"ORDER BY valid.id"
    )
    return prepared(sql), params


# --- Querysets --------------------------------------------------------------------------------------------
class _InSegments(Expression):
    """`EXISTS (a membership of the row's consumer in one of these segments)`: the condition every list in
    scope carries. Written as one SQL fragment because it is built and compiled on every request, and the
    ORM's Exists over a membership queryset (a queryset, its filters, a subquery compilation) costs more
    than the database's planning of it. The consumer column stays an expression, so that the condition
    follows its query when that becomes a subquery of another (aliases relabelled)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, consumer: Any, segment_ids: Iterable[int], *, hashed: bool = False) -> None:
        super().__init__()
        self.consumer = consumer
        self.segment_ids = tuple(segment_ids)
        self.hashed = hashed

    def get_source_expressions(self) -> list[Any]:
        return [self.consumer]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.consumer,) = exprs

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.consumer)
        marks = ", ".join(["%s"] * len(self.segment_ids))
        table = connection.ops.quote_name(SegmentMembership._meta.db_table)
        if self.hashed and connection.vendor == "postgresql":
            # `IS TRUE` keeps PostgreSQL from turning the IN into a join, which for a list in public-id order
            # it would run as one membership probe per consumer walked; as a condition it is a hashed
            # subplan: the granted memberships read once (a small grant: Scope.is_small), one hash lookup
            # per consumer. consumer_id is NOT NULL, so IN is never unknown and IS TRUE changes no row.
            sql = (
                f"({column} IN (SELECT segment_member.consumer_id FROM {table} segment_member "  # noqa: S608
                f"WHERE segment_member.segment_id IN ({marks}))) IS TRUE"
            )
            return sql, [*params, *self.segment_ids]
        sql = (
            f"EXISTS (SELECT 1 FROM {table} segment_member "  # noqa: S608 - names from _meta, ids as params
            f"WHERE segment_member.consumer_id = {column} AND segment_member.segment_id IN ({marks}))"
        )
        return sql, [*params, *self.segment_ids]


def _consumer_condition(
    scope: Scope, permission: str, consumer_field: str, *, hashed: bool = False
) -> Q | None:
    segment_ids = scope.segment_ids(permission)
    consumer_ids = scope.consumer_ids(permission)
    if not segment_ids and not consumer_ids:
        return None
    if not segment_ids:
        return Q(**{f"{consumer_field}__in": consumer_ids})
    members = Q(_InSegments(F(consumer_field), segment_ids, hashed=hashed))
    return Q(**{f"{consumer_field}__in": consumer_ids}) | members if consumer_ids else members


def visible_segments(scope: Scope, permission: str | None = None) -> QuerySet[Segment]:
    """Segments the user holds `permission` on (any permission when None)."""
    ids = list(scope.segments) if permission is None else scope.segment_ids(permission)
    return Segment.objects.filter(pk__in=ids)


def visible_consumers(scope: Scope, permission: str = RECORDS) -> QuerySet[Consumer]:
    """Consumers the user holds `permission` on; for a small grant, tested against a hash of its members."""
    condition = _consumer_condition(scope, permission, "pk", hashed=scope.is_small(permission))
    return Consumer.objects.none() if condition is None else Consumer.objects.filter(condition)


def visible_transactions(
    scope: Scope, permission: str = RECORDS, *, segment_id: int | None = None
) -> QuerySet[Transaction]:
    """Transactions of visible consumers; with `segment_id`, of that segment's members only."""
    condition = _consumer_condition(scope, permission, "consumer_id")
    if condition is None:
        return Transaction.objects.none()
    transactions = Transaction.objects.filter(condition)
    if segment_id is not None:
        members = SegmentMembership.objects.filter(segment_id=segment_id).values("consumer_id")
        transactions = transactions.filter(consumer_id__in=members)
    return transactions


def visible_accounts(scope: Scope, permission: str = RECORDS) -> QuerySet[Account]:
    condition = _consumer_condition(scope, permission, "consumer_id")
    return Account.objects.none() if condition is None else Account.objects.filter(condition)


def search_consumers(scope: Scope, term: str) -> QuerySet[Consumer]:
    """Exact match on public id, resident ID or phone, among consumers the user may see in full: a masked
    view must not confirm that a known identifier is in scope (SPEC §3)."""
    # Identifiers are encrypted at rest: they are found by their keyed hashes, through the key tables.
    return visible_consumers(scope, Permission.VIEW_RECORDS).filter(
        records_selectors.identifier_condition(term)
    )


# --- One consumer ----------------------------------------------------------------------------------------
class NotVisible(Exception):
    """Unknown, or outside the user's scope: the two are answered identically (404)."""


@dataclass(frozen=True)
class ConsumerAccess:
    """One consumer the user may see, and what of theirs: views take the consumer's rows from here (never
    from a model manager after the check), so a row cannot be served past the permission that covers it."""

    consumer: Consumer
    permissions: frozenset[str]
    grant: AccessGrant  # the grant behind the permission asked for
    grants: dict[str, AccessGrant]  # the grant behind each permission held on this consumer
    scope: Scope | None = None  # the scope it was checked in (for the segments it is seen through)

    @property
    def masked(self) -> bool:
        return Permission.VIEW_RECORDS not in self.permissions

    @property
    def shown_under(self) -> AccessGrant:
        """The grant the consumer's records are shown under: full records' when unmasked."""
        return self.grants[Permission.VIEW_RECORDS if not self.masked else RECORDS]

    def _require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise NotVisible(self.consumer.public_id)

    def transactions(self) -> QuerySet[Transaction]:
        self._require(RECORDS)
        return Transaction.objects.filter(consumer_id=self.consumer.pk)

    def accounts(self) -> QuerySet[Account]:
        self._require(RECORDS)
        return Account.objects.filter(consumer_id=self.consumer.pk)

    def memberships(self) -> QuerySet[SegmentMembership]:
        """The consumer's memberships in segments the user holds records permissions on (never others)."""
        self._require(RECORDS)
        segment_ids = self.scope.segment_ids(RECORDS) if self.scope is not None else []
        return SegmentMembership.objects.filter(consumer_id=self.consumer.pk, segment_id__in=segment_ids)

    def scored(self) -> Consumer:
        """The consumer, for reading their scores (scoring's selectors): only under view_scores."""
        self._require(Permission.VIEW_SCORES)
        return self.consumer


def _consumer_in_groups(public_id: str, groups: list[list[int]]) -> Consumer | None:
    """The consumer with this public id, annotated `in_group_<i>`: whether they belong to a segment of
    groups[i]. Outside Citus one statement written by hand, as the scope's: it runs on every request for one
    consumer, and compiling the ORM's equivalent (a subquery and an Exists per group) cost more than running
    it."""
    if settings.PORTAL_CITUS:  # the key lookup first, on its own (records.selectors.consumers_by_public_id)
        annotations = {
            f"in_group_{index}": Exists(
                SegmentMembership.objects.filter(consumer_id=OuterRef("pk"), segment_id__in=ids)
            )
            for index, ids in enumerate(groups)
        }
        return records_selectors.consumers_by_public_id(public_id).annotate(**annotations).first()
    membership = SegmentMembership._meta.db_table
    flags = "".join(
        f", EXISTS (SELECT 1 FROM {membership} m WHERE m.consumer_id = c.id "  # noqa: S608 - names from _meta
        f"AND m.segment_id IN ({', '.join(['%s'] * len(ids))})) AS in_group_{index}"
        for index, ids in enumerate(groups)
    )
    consumer_columns = _row_columns(Consumer, "c")
    sql = (
        f"SELECT {consumer_columns.select}{flags} FROM {Consumer._meta.db_table} c "  # noqa: S608 - _meta
        f"WHERE c.id IN (SELECT k.consumer_id FROM {ConsumerPublicId._meta.db_table} k "
        "WHERE k.public_id = %s)"
    )
    params: list[Any] = [segment_id for ids in groups for segment_id in ids]
    with connection.cursor() as cursor:
        cursor.execute(prepared(sql), [*params, public_id])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(consumer_columns.attnames)
    consumer = consumer_columns.instance(list(row[:width]), connection.alias)
    for index, flag in enumerate(row[width:]):
        setattr(consumer, f"in_group_{index}", flag)
    return consumer


def consumer_access(scope: Scope, public_id: str, permission: str = RECORDS) -> ConsumerAccess:
    """The consumer with this public id if the user holds `permission` on them, and the grant that says so."""
    if scope.is_empty() or not PUBLIC_ID_PATTERN.fullmatch(public_id):
        raise NotVisible(public_id)
    # One query: the consumer, and whether it belongs to a segment of each group of segments that carry the
    # same permissions under the same grants (usually one group: one subquery).
    groups: dict[frozenset[tuple[str, int]], list[int]] = {}
    for segment_id, perms in scope.segments.items():
        groups.setdefault(frozenset(perms.items()), []).append(segment_id)
    keyed = list(groups.items())
    consumer = _consumer_in_groups(public_id, [ids for _perms, ids in keyed])
    if consumer is None:
        raise NotVisible(public_id)
    held: dict[str, int] = dict(scope.consumers.get(consumer.pk, {}))
    for index, (group_permissions, _ids) in enumerate(keyed):
        if getattr(consumer, f"in_group_{index}"):
            for perm, grant_id in group_permissions:
                if perm not in held or grant_id < held[perm]:
                    held[perm] = grant_id
    if permission not in held:
        raise NotVisible(public_id)
    grants = {perm: scope.grants[grant_id] for perm, grant_id in held.items()}
    return ConsumerAccess(consumer, frozenset(held), grants[permission], grants, scope)


def consumer_grants(scope: Scope, consumer_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """For each of these consumers (a page of a list), the grant behind each permission held on them, the
    oldest covering one as consumer_access attributes it. One query, whatever the page size."""
    ids = sorted(set(consumer_ids))
    held: dict[int, dict[str, int]] = {cid: dict(scope.consumers.get(cid, {})) for cid in ids}
    if ids and scope.segments:
        memberships = SegmentMembership.objects.filter(
            consumer_id__in=ids, segment_id__in=list(scope.segments)
        ).values_list("consumer_id", "segment_id")
        for consumer_id, segment_id in memberships:
            target = held[consumer_id]
            for perm, grant_id in scope.segments[segment_id].items():
                if perm not in target or grant_id < target[perm]:
                    target[perm] = grant_id
    return held


def subject_grants(scope: Scope, shown: Iterable[tuple[int, str, str]]) -> dict[str, int]:
    """The grant each consumer of a list was shown under, for the audit trail: `shown` gives (consumer id,
    public id, the permission the row needed: full or masked records). A list spanning several grants thus
    credits each consumer to its own (SPEC §3)."""
    rows = list(shown)
    wanted = {permission for _consumer_id, _public_id, permission in rows}
    sources = {
        permission: {
            perms[permission]
            for perms in (*scope.segments.values(), *scope.consumers.values())
            if permission in perms
        }
        for permission in wanted
    }
    if all(len(grant_ids) == 1 for grant_ids in sources.values()):
        # One grant behind each permission (the usual scope): every row was shown under it, no query needed.
        only = {permission: next(iter(grant_ids)) for permission, grant_ids in sources.items()}
        return {public_id: only[permission] for _consumer_id, public_id, permission in rows}
    held = consumer_grants(scope, [consumer_id for consumer_id, _public_id, _permission in rows])
    return {
        public_id: held[consumer_id][permission]
        for consumer_id, public_id, permission in rows
        if permission in held[consumer_id]
    }


def grant_for_list(scope: Scope, permission: str, segment_id: int | None = None) -> AccessGrant | None:
    """The grant a list is attributed to: the segment's when filtered by one, else the oldest covering it."""
    if segment_id is not None:
        return scope.grant_for_segment(segment_id, permission)
    candidates = [
        perms[permission]
        for perms in (*scope.segments.values(), *scope.consumers.values())
        if permission in perms
    ]
    return scope.grants[min(candidates)] if candidates else None


def _flag(scope: Scope, consumers: QuerySet[Consumer], name: str, permission: str) -> QuerySet[Consumer]:
    """Annotate `name`: whether the user holds `permission` on each row of `consumers`, which are visible
    consumers (this module's querysets). Where `permission` comes with records on every segment and
    consumer that shows records at all (the usual scope: one grant), every visible row has it: a constant,
    so that the page's query does not test (and the database does not hash) the grant's memberships."""
    if scope.segment_ids(permission) == scope.segment_ids(RECORDS) and scope.consumer_ids(
        permission
    ) == scope.consumer_ids(RECORDS):
        held = not scope.is_empty() and bool(scope.segment_ids(RECORDS) or scope.consumer_ids(RECORDS))
        return consumers.annotate(**{name: Value(held, output_field=BooleanField())})
    condition = _consumer_condition(scope, permission, "pk")
    if condition is None:
        return consumers.annotate(**{name: Value(False, output_field=BooleanField())})
    return consumers.annotate(**{name: ExpressionWrapper(condition, output_field=BooleanField())})


def with_full_records_flag(scope: Scope, consumers: QuerySet[Consumer]) -> QuerySet[Consumer]:
    """Annotate `full_records`: whether the user holds view_records (not only masked records) on each row of
    these visible consumers."""
    return _flag(scope, consumers, "full_records", Permission.VIEW_RECORDS)


def with_scores_flag(scope: Scope, consumers: QuerySet[Consumer]) -> QuerySet[Consumer]:
    """Annotate `scores_visible`: whether the user holds view_scores on each row of these visible consumers
    (a list shows a consumer's score only then, as the consumer page and the API do)."""
    return _flag(scope, consumers, "scores_visible", Permission.VIEW_SCORES)
