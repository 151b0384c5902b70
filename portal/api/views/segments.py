"""A segment's fairness view: default rate and score distribution by province and by age band, for holders of
view_aggregates (the segment summary's gate and scope), small cells withheld as the summary withholds them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import masking
from portal.api import params
from portal.api.views.base import PortalView
from portal.api.views.records import GRANT_HEADER_PARAM


class FairnessBucketSerializer(serializers.Serializer):
    locals()["from"] = serializers.IntegerField()  # a keyword in Python, the summary's field name
    to = serializers.IntegerField()
    consumers = serializers.IntegerField(allow_null=True)


class FairnessCellSerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text="The province (as stored, in Chinese) or the age band (18-24 ... 55+)."
    )
    name_en = serializers.CharField(help_text="The province's English name; the band itself for an age band.")
    suppressed = serializers.BooleanField(
        help_text="True when the cell's consumers are withheld: fewer than ten, or they would give one away."
    )
    consumers = serializers.IntegerField(allow_null=True)
    delinquency_rate = serializers.FloatField(allow_null=True, help_text="30+ days late, as the summary.")
    delinquent_consumers = serializers.IntegerField(allow_null=True)
    default_rate = serializers.FloatField(allow_null=True, help_text="90+ days late, the scoring outcome.")
    defaulted_consumers = serializers.IntegerField(allow_null=True)
    score_histogram = FairnessBucketSerializer(many=True)


class FairnessSegmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    name_zh = serializers.CharField()
    kind = serializers.CharField()


class SegmentFairnessSerializer(serializers.Serializer):
    segment = FairnessSegmentSerializer()
    window_months = serializers.IntegerField(help_text="Repayments due in this many months count.")
    delinquency_days_late_at_least = serializers.IntegerField()
    default_days_late_at_least = serializers.IntegerField()
    age_basis = serializers.CharField(help_text="How an age band is computed.")
    by_province = FairnessCellSerializer(many=True)
    by_age_band = FairnessCellSerializer(many=True)
    suppressed_below = serializers.IntegerField()


class SegmentFairnessView(PortalView):
    gate = "segment_summary"
    action = "segment.fairness"

    @extend_schema(
        parameters=[GRANT_HEADER_PARAM],
        responses=SegmentFairnessSerializer,
        operation_id="v1_segments_fairness_retrieve",
    )
    def get(self, request: Request, segment_id: str) -> Response:
        params.reject_unknown(request, set())
        segment = self.aggregate_segment(segment_id)
        body = {
            "segment": {
                "id": segment.pk,
                "name": segment.name,
                "name_zh": segment.name_zh,
                "kind": segment.kind,
            },
            **masking.segment_fairness(segment.pk),
        }
        return Response(SegmentFairnessSerializer(body).data)
