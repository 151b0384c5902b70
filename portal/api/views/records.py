"""Segments, consumers and transactions: every queryset comes from the access policy."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import masking, policy
from portal.access.models import Permission
from portal.accounts.models import Role
from portal.api import params
from portal.api.pagination import Keyset
from portal.api.renderers import FastJSONRenderer
from portal.api.schema import paginated
from portal.api.serializers import (
    TRANSACTION_VALUES,
    ConsumerDetailSerializer,
    ConsumerSerializer,
    SegmentSerializer,
    TransactionSerializer,
    consumer_rows,
    transaction_rows,
)
from portal.api.views.base import PortalView
from portal.records import selectors
from portal.records.models import Consumer, Segment, Transaction
from portal.records.synthetic import PROVINCE_NAMES_EN

CURSOR_PARAMS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From a response's next or previous link."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 200, default 50."),
]
GRANT_HEADER_PARAM = OpenApiParameter(
    "X-Access-Grant",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="Use only this grant of yours (and have the access attributed to it).",
)
PERIOD_PARAMS = [
    OpenApiParameter("since", OpenApiTypes.STR, description="YYYY-MM-DD or ISO 8601 date-time."),
    OpenApiParameter("until", OpenApiTypes.STR, description="YYYY-MM-DD (inclusive) or ISO 8601 date-time."),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=sorted(Transaction.Kind.values)),
]

SEGMENT_PAGES = Keyset("name", "id")
CONSUMER_PAGES = Keyset("public_id")
TRANSACTION_PAGES = Keyset("-occurred_at", "-id")


class SegmentListView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "segments"
    action = "segment.list"

    @extend_schema(parameters=[*CURSOR_PARAMS, GRANT_HEADER_PARAM], responses=paginated(SegmentSerializer))
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, set())
        self.note.resource_kind = "segment"
        if self.user.role == Role.COMPLIANCE:
            # Compliance manages grants on any segment, so sees every segment's name, kind and size only.
            segments = Segment.objects.annotate(size=Count("memberships"))
            page = SEGMENT_PAGES.paginate(request, segments)
            return Response(page.as_dict(SegmentSerializer(page.results, many=True).data))
        scope = self.scope()
        segments = policy.visible_segments(scope).annotate(size=Count("memberships"))
        page = SEGMENT_PAGES.paginate(request, segments)
        for segment in page.results:
            # A size is an aggregate: it follows view_aggregates and small-cell suppression like one.
            allowed = Permission.VIEW_AGGREGATES in scope.segment_permissions(segment.pk)
            segment.size = masking.suppress(segment.size) if allowed else None
        context = {"permissions": {s.pk: scope.segment_permissions(s.pk) for s in page.results}}
        return Response(page.as_dict(SegmentSerializer(page.results, many=True, context=context).data))


class SegmentSummaryView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "segment_summary"
    action = "segment.summary"

    @extend_schema(parameters=[GRANT_HEADER_PARAM], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, segment_id: str) -> Response:
        params.reject_unknown(request, set())
        segment = self.aggregate_segment(segment_id)
        figures = masking.suppress_figures(selectors.segment_figures(segment.pk))
        return Response(
            {
                "segment": {
                    "id": segment.pk,
                    "name": segment.name,
                    "name_zh": segment.name_zh,
                    "kind": segment.kind,
                },
                **figures,
            }
        )


def _segment_filter(view: PortalView, request: Request, permission: str) -> int | None:
    """The `segment` filter: a segment the caller holds `permission` on; any other id is unknown (400)."""
    segment_id = params.integer(request, "segment")
    if segment_id is not None and permission not in view.scope().segment_permissions(segment_id):
        raise params.bad("segment", "Unknown segment.")
    return segment_id


class ConsumerListView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "records"
    action = "consumer.list"

    @extend_schema(
        parameters=[
            OpenApiParameter("segment", OpenApiTypes.INT),
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="Exact public id, resident ID or phone number."
            ),
            OpenApiParameter("province", OpenApiTypes.STR, enum=sorted(PROVINCE_NAMES_EN)),
            *CURSOR_PARAMS,
            GRANT_HEADER_PARAM,
        ],
        operation_id="v1_consumers_list",
        responses=paginated(ConsumerSerializer),
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, {"segment", "q", "province"})
        self.note.resource_kind = "consumer"
        segment_id = _segment_filter(self, request, policy.RECORDS)
        term = params.search_term(request)
        province = params.choice(request, "province", PROVINCE_NAMES_EN)
        scope = self.scope()
        self.note.search_term = term
        consumers = policy.search_consumers(scope, term) if term else policy.visible_consumers(scope)
        if segment_id is not None:
            consumers = consumers.filter(memberships__segment_id=segment_id)
        if province is not None:
            consumers = consumers.filter(province=province)
        consumers = policy.with_full_records_flag(scope, consumers)
        page = CONSUMER_PAGES.paginate(request, consumers)
        self.note.subjects = [c.public_id for c in page.results]
        wanted = Permission.VIEW_RECORDS if term else policy.RECORDS  # a search needs full records
        self.attribute(policy.grant_for_list(scope, wanted, segment_id))
        # Each consumer under the grant it was shown under: full records' where unmasked.
        self.note.subject_grants = policy.subject_grants(
            scope,
            (
                (c.pk, c.public_id, Permission.VIEW_RECORDS if c.full_records else policy.RECORDS)
                for c in page.results
            ),
        )
        return Response(page.as_dict(consumer_rows(page.results)))


class ConsumerDetailView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "records"
    action = "consumer.read"

    @extend_schema(parameters=[GRANT_HEADER_PARAM], responses=ConsumerDetailSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        params.reject_unknown(request, set())
        access = self.consumer_access(public_id)
        consumer = access.consumer
        self.note.subjects = [consumer.public_id]
        # Attributed to the grant that let the response be what it is: full records, and scores if shown.
        self.attribute(access.shown_under)
        segments = [
            {"id": m.segment_id, "name": m.segment.name, "name_zh": m.segment.name_zh}
            for m in access.memberships().select_related("segment").order_by("segment__name")
        ]
        data = {
            "consumer": consumer,
            "masked": access.masked,
            "current_score": consumer.current_score if Permission.VIEW_SCORES in access.permissions else None,
            "accounts": list(access.accounts().order_by("opened_on", "pk")),
            "segments": segments,
        }
        return Response(ConsumerDetailSerializer(data).data)


def _transactions_filtered(request: Request, queryset):
    since, until = params.period(request)
    kind = params.choice(request, "kind", Transaction.Kind.values)
    return _transactions_period(queryset, since, until, kind)


def _transactions_period(queryset, since, until, kind):
    if since is not None:
        queryset = queryset.filter(occurred_at__gte=since)
    if until is not None:
        queryset = queryset.filter(occurred_at__lte=until)
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    return queryset.values(*TRANSACTION_VALUES)


class ConsumerTransactionListView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "records"
    action = "consumer.transactions"

    @extend_schema(
        parameters=[*PERIOD_PARAMS, *CURSOR_PARAMS, GRANT_HEADER_PARAM],
        responses=paginated(TransactionSerializer),
    )
    def get(self, request: Request, public_id: str) -> Response:
        params.reject_unknown(request, {"since", "until", "kind"})
        access = self.consumer_access(public_id)
        since, until = params.period(request)
        kind = params.choice(request, "kind", Transaction.Kind.values)
        inputs = {"consumer": access.consumer.pk, "since": since, "until": until, "kind": kind}

        def build(given: dict[str, Any]):
            # The policy's rows for this access (consumer_access has checked that it covers them), or for the
            # same access to a stand-in consumer when the page statement is first compiled.
            other = dataclasses.replace(access, consumer=Consumer(pk=given["consumer"]))
            return _transactions_period(
                other.transactions(), given.get("since"), given.get("until"), given.get("kind")
            )

        page = TRANSACTION_PAGES.paginate_statement(
            request,
            "consumer.transactions",
            Transaction,
            build,
            {name: value for name, value in inputs.items() if value is not None},
        )
        self.note.subjects = [access.consumer.public_id]
        self.note.row_count = len(page.results)
        return Response(page.as_dict(transaction_rows(page.results)))


class TransactionListView(PortalView):
    renderer_classes = [FastJSONRenderer]
    gate = "records"
    action = "transaction.list"

    @extend_schema(
        parameters=[
            OpenApiParameter("segment", OpenApiTypes.INT),
            *PERIOD_PARAMS,
            *CURSOR_PARAMS,
            GRANT_HEADER_PARAM,
        ],
        responses=paginated(TransactionSerializer),
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, {"segment", "since", "until", "kind"})
        self.note.resource_kind = "transaction"
        segment_id = _segment_filter(self, request, policy.RECORDS)
        scope = self.scope()
        transactions = policy.visible_transactions(scope, segment_id=segment_id)
        page = TRANSACTION_PAGES.paginate(request, _transactions_filtered(request, transactions))
        self.note.subjects = [t["consumer__public_id"] for t in page.results]
        self.note.row_count = len(page.results)
        self.attribute(policy.grant_for_list(scope, policy.RECORDS, segment_id))
        self.note.subject_grants = policy.subject_grants(
            scope, ((t["consumer_id"], t["consumer__public_id"], policy.RECORDS) for t in page.results)
        )
        return Response(page.as_dict(transaction_rows(page.results)))
