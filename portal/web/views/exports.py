"""CSV downloads on screens, through the export workflow (portal.access.exports): requested under
export_records on a segment, built by a worker through the access policy, downloaded by the requester with
the file's SHA-256 in the audit trail, exactly as through the API."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.access import exports
from portal.access.models import Export, Permission
from portal.records.models import Segment
from portal.web import pages
from portal.web.forms import ExportRequestForm
from portal.web.paging import Keyset, SortedList

# My exports: newest or oldest first, filtered by state, counted and paged.
EXPORT_LIST = SortedList(
    {"-created_at": Keyset("-created_at", "-pk"), "created_at": Keyset("created_at", "pk")},
    default="-created_at",
)


@pages.page("records", "export.list")
def export_list(request: HttpRequest) -> HttpResponse:
    """My exports, newest first, with their state; a ready one can be downloaded."""
    note = pages.note(request)
    note.resource_kind = "export"
    user = pages.user_of(request)
    exports_of_user = Export.objects.filter(requested_by=user).select_related("segment")
    listing = EXPORT_LIST.read(request, exports_of_user, choices={"status": Export.Status.values})
    status = 400 if listing.invalid else 200
    rows = listing.page.results
    running = any(e.status in (Export.Status.PENDING, Export.Status.BUILDING) for e in rows)
    return render(
        request,
        "web/exports.html",
        {
            "exports": rows,
            "running": running,
            "listing": listing,
            "status_filter": request.GET.get("status") or "",
            "statuses": Export.Status.choices,
        },
        status=status,
    )


@require_POST
@pages.page("records", "export.request")
def export_create(request: HttpRequest) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind = "export"
    scope = pages.scope(request)
    form = ExportRequestForm(request.POST)
    segment = None
    if form.is_valid():
        segment = Segment.objects.filter(pk=form.cleaned_data["segment"]).first()
    if segment is None or Permission.EXPORT_RECORDS not in scope.segment_permissions(segment.pk):
        raise pages.NotFound
    try:
        export = exports.export_request(
            user=pages.user_of(request),
            scope=scope,
            segment=segment,
            kind=form.cleaned_data["kind"],
            since=None,
            until=None,
        )
    except exports.ExportError:
        raise pages.NotFound from None
    pages.attribute(request, export.grant)
    note.requested_id = str(export.public_id)
    messages.success(request, _("The export is being built; it appears below when it is ready."))
    return redirect("web:exports")


@pages.page("records", "export.download")
def export_download(request: HttpRequest, export_id: str) -> HttpResponseBase:
    note = pages.note(request)
    note.resource_kind, note.requested_id = "export", export_id[:100]
    user = pages.user_of(request)
    try:
        export = Export.objects.select_related("grant").filter(public_id=export_id, requested_by=user).first()
    except Exception:  # a malformed UUID is an unknown id
        export = None
    if export is None:
        raise pages.NotFound
    pages.attribute(request, export.grant)
    try:
        download = exports.export_for_download(export=export, user=user)
    except exports.ExportError as error:
        note.outcome = "denied"
        messages.error(request, _(error.message))
        return render(request, "web/exports.html", {"exports": [export], "running": False}, status=410)
    note.subjects = download.subjects
    note.row_count = export.row_count
    note.export_sha256 = export.sha256
    response = FileResponse(
        download.path.open("rb"),
        content_type="text/csv; charset=utf-8",
        as_attachment=True,
        filename=f"export-{export.public_id}.csv",
    )
    response["X-Content-SHA256"] = export.sha256
    return response
