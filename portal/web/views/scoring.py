"""Score runs: the list with live progress (a small static script polls the JSON below), and the start
button for compliance officers."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.recorder import AuditWriteError
from portal.accounts.models import Role
from portal.web import pages
from portal.web.forms import RunStartForm
from scoring import selectors, services
from scoring.models import ScoreRun

RUN_ROWS = 20


def _runs() -> list[ScoreRun]:
    return list(selectors.score_run_list()[:RUN_ROWS])


def _page(request: HttpRequest, form: RunStartForm, status: int = 200) -> HttpResponse:
    runs = _runs()
    return render(
        request,
        "web/score_runs.html",
        {
            "runs": runs,
            "running": any(run.status == ScoreRun.Status.RUNNING for run in runs),
            "form": form,
            "can_start": pages.user_of(request).role == Role.COMPLIANCE,
            "scorecard": selectors.scorecard_active(),
        },
        status=status,
    )


@pages.page("scoring_runs_read", "scoring.runs.read")
def run_list(request: HttpRequest) -> HttpResponse:
    pages.note(request).resource_kind = "score_run"
    return _page(request, RunStartForm())


@pages.page("scoring_runs_read", "scoring.runs.read")
def run_progress(request: HttpRequest) -> JsonResponse:
    """The progress of the latest runs, for the page's polling script."""
    pages.note(request).resource_kind = "score_run"
    runs = []
    for run in _runs():
        progress = selectors.score_run_progress(run)
        runs.append(
            {
                "id": run.pk,
                "status": run.status,
                "status_label": str(ScoreRun.Status(run.status).label),
                "progress": progress["progress"],
                "percent": round(progress["progress"] * 100),
                "chunks_done": run.chunks_done,
                "chunks_total": run.chunks_total,
                "consumers_scored": run.consumers_scored,
                "consumers_planned": run.consumers_planned,
                "finished_at": (
                    formats.date_format(timezone.localtime(run.finished_at), "Y-m-d H:i:s")
                    if run.finished_at
                    else ""
                ),
            }
        )
    return JsonResponse({"runs": runs, "running": any(r["status"] == ScoreRun.Status.RUNNING for r in runs)})


@require_POST
@pages.page("scoring_runs_start", "scoring.run.start")
def run_start(request: HttpRequest) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind = "score_run"
    form = RunStartForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        run = services.score_run_start(kind=form.cleaned_data["kind"], requested_by=pages.user_of(request))
    except services.UnknownScorecard:
        form.add_error("kind", _("No scorecard is active."))
        return _page(request, form, status=400)
    except services.RunAlreadyRunning:
        form.add_error("kind", _("A run of this kind is already running."))
        return _page(request, form, status=409)
    except services.NothingToScore:
        form.add_error("kind", _("No transactions have arrived since the last finished run."))
        return _page(request, form, status=409)
    except AuditWriteError:
        return HttpResponse(_("The audit trail is unavailable."), status=503)
    note.requested_id = str(run.pk)
    messages.success(request, _("Score run #%(id)s started.") % {"id": run.pk})
    return redirect("web:score-runs")
