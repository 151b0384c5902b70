"""Asynchronous CSV exports: request, status, audited download."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import exports
from portal.access.models import Export, Permission
from portal.api.views.base import NOT_FOUND, PortalView
from portal.records.models import Segment


class ExportRequestSerializer(serializers.Serializer):
    segment = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=Export.Kind.values, default=Export.Kind.TRANSACTIONS)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class ExportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    segment = serializers.IntegerField(source="segment_id")
    grant = serializers.IntegerField(source="grant_id")
    download = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "status",
            "kind",
            "segment",
            "grant",
            "since",
            "until",
            "created_at",
            "finished_at",
            "expires_at",
            "row_count",
            "sha256",
            "masked",
            "error",
            "download",
        ]

    def get_download(self, export: Export) -> str | None:
        if export.status != Export.Status.READY:
            return None
        return self.context["request"].build_absolute_uri(f"/api/v1/exports/{export.public_id}/download/")


class ExportListView(PortalView):
    gate = "records"
    action = "export.request"

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportSerializer})
    def post(self, request: Request) -> Response:
        self.note.resource_kind = "export"
        form = ExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError({"until": ["Must not come before 'since'."]})
        scope = self.scope()
        segment = Segment.objects.filter(pk=data["segment"]).first()
        held = scope.segment_permissions(segment.pk) if segment is not None else set()
        if segment is None or not held:
            # A segment outside every grant of the caller's is not there for them, like an unknown id.
            raise ValidationError({"segment": ["Unknown segment."]})
        if Permission.EXPORT_RECORDS not in held:
            # The caller sees this segment (GET /api/v1/segments/ lists it): what they lack is the right to
            # export it, and the answer says which.
            raise PermissionDenied(
                {
                    "detail": f"Exporting segment {segment.pk} needs the "
                    f"{Permission.EXPORT_RECORDS.value} permission, which no grant of yours gives on it.",
                    "missing_permission": Permission.EXPORT_RECORDS.value,
                }
            )
        try:
            export = exports.export_request(
                user=self.user,
                scope=scope,
                segment=segment,
                kind=data["kind"],
                since=data.get("since"),
                until=data.get("until"),
            )
        except exports.ExportError as error:
            raise ValidationError({error.field: [error.message]}) from None
        self.attribute(export.grant)
        self.note.requested_id = str(export.public_id)
        export.refresh_from_db()
        return Response(
            ExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


def _own_export(view: PortalView, export_id: str) -> Export:
    view.note.resource_kind, view.note.requested_id = "export", export_id[:100]
    export = None
    try:
        export = (
            Export.objects.select_related("grant").filter(public_id=export_id, requested_by=view.user).first()
        )
    except Exception:  # a malformed UUID is an unknown id
        export = None
    if export is None:
        raise NotFound(NOT_FOUND)
    view.attribute(export.grant)
    return export


class ExportDetailView(PortalView):
    gate = "records"
    action = "export.status"

    @extend_schema(responses=ExportSerializer)
    def get(self, request: Request, export_id: str) -> Response:
        export = _own_export(self, export_id)
        return Response(ExportSerializer(export, context={"request": request}).data)


class ExportDownloadView(PortalView):
    gate = "records"
    action = "export.download"

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request: Request, export_id: str):
        export = _own_export(self, export_id)
        try:
            download = exports.export_for_download(export=export, user=self.user)
        except exports.ExportError as error:
            self.note.outcome = "denied"
            return Response({"detail": error.message}, status=status.HTTP_410_GONE)
        self.note.subjects = download.subjects
        self.note.row_count = export.row_count
        self.note.export_sha256 = export.sha256
        response = FileResponse(
            download.path.open("rb"),
            content_type="text/csv; charset=utf-8",
            as_attachment=True,
            filename=f"export-{export.public_id}.csv",
        )
        response["X-Content-SHA256"] = export.sha256
        return response
