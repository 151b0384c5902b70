"""The regulator's pages: the dashboard, consumer search and list, and the consumer page. Every row comes
from the access policy and every page tells the audit trail whose data it showed, as the API does."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Avg, Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from audit import selectors as audit_selectors
from portal.access import masking, policy
from portal.access.models import AccessGrant, Permission
from portal.access.selectors import shown_grant_purposes
from portal.web import pages
from portal.web.forms import SearchForm, TransactionFilterForm
from portal.web.paging import Keyset, SortedList
from scoring import selectors as scoring_selectors
from scoring.models import MAX_SCORE, MIN_SCORE

# The consumer list's sortable columns: the URL's `sort` -> a keyset ordering (the last field unique).
# Only columns stored in the clear and shown to everyone on the list: a masked or hidden value (name, ids,
# a score outside view_scores) is never a sort key, or the order would tell it.
CONSUMER_LIST = SortedList(
    {
        "-public_id": Keyset("-public_id"),
        "public_id": Keyset("public_id"),
        "province": Keyset("province", "public_id"),
        "-province": Keyset("-province", "-public_id"),
    },
    default="-public_id",
)
# What the consumer page shows of each transaction (templatetags.portal_web.transaction_rows), read as named
# rows: the page needs these values only, not three model instances per row.
TRANSACTION_ROW = (
    "id",
    "occurred_at",
    "kind",
    "amount",
    "channel",
    "due_date",
    "days_late",
    "account__product",
    "merchant_id",
    "merchant__name",
    "merchant__category",
)
# A consumer's transactions: by time (newest first) or by amount; the count read with the page.
TRANSACTION_LIST = SortedList(
    {
        "-occurred_at": Keyset("-occurred_at", "-id"),
        "occurred_at": Keyset("occurred_at", "id"),
        "-amount": Keyset("-amount", "-id"),
        "amount": Keyset("amount", "id"),
    },
    default="-occurred_at",
    count_in_page=True,
    row_fields=TRANSACTION_ROW,
)
SCORE_HISTORY_POINTS = 24
ACCESS_LOG_ROWS = 20
RECENT_ACTIVITY_ROWS = 10
RECENTLY_ENDED = timedelta(days=30)  # ended grants stay on the dashboard this long, marked as ended


def _organisation_grants(request: HttpRequest):
    user = pages.user_of(request)
    return AccessGrant.objects.filter(
        Q(grantee_organisation_id=user.organisation_id) | Q(grantee_user=user) | Q(requested_by=user)
    ).select_related("segment", "consumer", "grantee_organisation", "grantee_user")


def _grant_state(grant: AccessGrant, in_force: bool, now: datetime) -> tuple[str, str]:
    """The dashboard's word for a grant: (badge class, label)."""
    if in_force:
        return "active", str(_("In force"))
    if grant.status == AccessGrant.Status.REQUESTED:
        return "requested", grant.get_status_display()
    if grant.status == AccessGrant.Status.REVOKED:
        return "revoked", grant.get_status_display()
    if grant.status == AccessGrant.Status.APPROVED and grant.valid_from > now:
        return "pending", str(_("Not yet in force"))
    return "expired", str(AccessGrant.Status.EXPIRED.label)


@pages.page("dashboard", "web.dashboard")
def dashboard(request: HttpRequest) -> HttpResponse:
    """My organisation's grants and their expiry, figures of the segments in scope, recent activity of my
    organisation, and the consumer search. A fixed number of queries, whatever the scope."""
    note = pages.note(request)
    note.resource_kind = "dashboard"
    user = pages.user_of(request)
    now = timezone.now()
    scope = pages.scope(request)
    recently = now - RECENTLY_ENDED
    status = AccessGrant.Status
    grants = list(
        _organisation_grants(request)
        .filter(
            Q(status=status.REQUESTED, valid_until__gt=now)
            | Q(status__in=[status.APPROVED, status.EXPIRED], valid_until__gt=recently)
            | Q(status=status.REVOKED, revoked_at__gt=recently)
        )
        .order_by("valid_until", "pk")
    )
    for grant in grants:
        # Only a grant the access policy counts right now is live; an approved grant past its end (before the
        # periodic expiry marks it) or not yet started is shown as such, with no days left.
        grant.in_force = grant.pk in scope.grants
        grant.state, grant.state_label = _grant_state(grant, grant.in_force, now)
        grant.days_left = max(0, (grant.valid_until - now) // timedelta(days=1)) if grant.in_force else None
    segments = list(
        policy.visible_segments(scope, Permission.VIEW_AGGREGATES)
        .annotate(size=Count("memberships"), average_score=Avg("memberships__consumer__current_score"))
        .order_by("name")
    )
    for segment in segments:
        shown = masking.suppress(segment.size)
        segment.size = shown
        if shown is None:
            segment.average_score = None
        segment.permissions = sorted(scope.segment_permissions(segment.pk))  # type: ignore[attr-defined]
    # A grant's segment is a link only where the segment page would open: a requested, ended or not yet
    # started grant names its segment without a link to a page that answers 404.
    visible = {segment.pk for segment in segments}
    for grant in grants:
        grant.segment_in_scope = grant.segment_id in visible
    activity = (
        list(audit_selectors.event_list(organisation=str(user.organisation))[:RECENT_ACTIVITY_ROWS])
        if user.organisation_id
        else []
    )
    return render(
        request,
        "web/dashboard.html",
        {
            "grants": grants,
            "segments": segments,
            "activity": activity,
            "search_form": SearchForm(),
            "can_search": bool(
                scope.segment_ids(Permission.VIEW_RECORDS) or scope.consumer_ids(Permission.VIEW_RECORDS)
            ),
        },
    )


@pages.page("records", "consumer.list")
def consumer_list(request: HttpRequest) -> HttpResponse:
    """Consumers in scope, or the exact match of a search (which needs view_records, SPEC §3)."""
    note = pages.note(request)
    note.resource_kind = "consumer"
    scope = pages.scope(request)
    form = SearchForm(request.GET) if "q" in request.GET else None
    status = 200
    consumers = policy.visible_consumers(scope)
    wanted = policy.RECORDS
    if form is not None:
        if form.is_valid():
            term = form.cleaned_data["q"]
            note.search_term = term
            consumers = policy.search_consumers(scope, term)
            wanted = Permission.VIEW_RECORDS
        else:
            consumers, status = consumers.none(), 400
    consumers = policy.with_scores_flag(scope, policy.with_full_records_flag(scope, consumers))
    listing = CONSUMER_LIST.read(request, consumers, keep=("q",))
    if listing.invalid:
        status = 400
    page = listing.page
    rows = []
    for consumer in page.results:
        identity = masking.identity(consumer, masked=not consumer.full_records)
        # A score only where view_scores covers the row, as on the consumer page and in the API.
        score = consumer.current_score if consumer.scores_visible else None
        rows.append(
            {"consumer": consumer, "score": score, "scores_visible": consumer.scores_visible, **identity}
        )
    note.subjects = [c.public_id for c in page.results]
    pages.attribute(request, policy.grant_for_list(scope, wanted))
    note.subject_grants = policy.subject_grants(
        scope,
        (
            (c.pk, c.public_id, Permission.VIEW_RECORDS if c.full_records else policy.RECORDS)
            for c in page.results
        ),
    )
    return render(
        request,
        "web/consumer_list.html",
        {
            "form": form or SearchForm(),
            "searched": form is not None,
            "rows": rows,
            "listing": listing,
            "page": page,
            "can_search": bool(
                scope.segment_ids(Permission.VIEW_RECORDS) or scope.consumer_ids(Permission.VIEW_RECORDS)
            ),
        },
        status=status,
    )


@pages.page("records", "consumer.read")
def consumer_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """One consumer: profile (masked per SPEC §3), segments in scope, accounts, transactions with filters and
    keyset paging, the current score with its history and reason codes, and the access log."""
    # The statements of one consumer are planned once per connection (pages.planned_once); not the count
    # of other organisations' access-log entries: its generic plan looks up every entry's event one by one.
    with pages.planned_once():
        access = pages.consumer_access(request, public_id)
        consumer = access.consumer
        note = pages.note(request)
        note.subjects = [consumer.public_id]
        # Attributed to the grant that let the page be what it is: full records when shown unmasked.
        pages.attribute(request, access.shown_under)
        # A refused filter or cursor is shown next to its field on the page, which still shows (and the
        # trail records, as allowed) the profile it discloses, but no transactions: what is served is what
        # is recorded.
        filters = TransactionFilterForm(request.GET)
        transactions = access.transactions()
        transactions = filters.apply(transactions) if filters.is_valid() else transactions.none()
        listing = TRANSACTION_LIST.read(request, transactions, keep=tuple(TransactionFilterForm.base_fields))
        page, cursor_error = listing.page, listing.invalid
        note.row_count = len(page.results)
        segments = [
            m.segment for m in access.memberships().select_related("segment").order_by("segment__name")
        ]
        scores = None
        if Permission.VIEW_SCORES in access.permissions:
            history = list(scoring_selectors.score_history(access.scored())[:SCORE_HISTORY_POINTS])
            scores = {"latest": history[0] if history else None, "history": history[::-1]}
        access_log, organisation = None, None
        if Permission.VIEW_RECORDS in access.permissions:
            # The viewer's own organisation's entries in full; of other organisations', only how many.
            organisation = str(pages.user_of(request).organisation or "")
            access_log = audit_selectors.consumer_access_log_latest(
                public_id=consumer.public_id, organisation=organisation, rows=ACCESS_LOG_ROWS
            )
            shown_grant_purposes(access_log)
        accounts = list(access.accounts().order_by("opened_on", "pk"))
    access_log_others = (
        audit_selectors.consumer_access_log_others(public_id=consumer.public_id, organisation=organisation)
        if organisation is not None
        else 0
    )
    return render(
        request,
        "web/consumer_detail.html",
        {
            "consumer": consumer,
            "identity": masking.identity(consumer, masked=access.masked),
            "masked": access.masked,
            "segments": segments,
            "accounts": accounts,
            "filters": filters,
            "page": page,
            "listing": listing,
            "cursor_error": cursor_error,
            "scores": scores,
            "score_range": (MIN_SCORE, MAX_SCORE),
            "access_log": access_log,
            "access_log_others": access_log_others,
            "grant": access.shown_under,
        },
    )
