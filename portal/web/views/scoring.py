"""Score runs: the list with live progress (a small static script polls the JSON below), and the start
button for compliance officers. Model cards: every version for everyone, and its lifecycle steps for
compliance officers (the scoring services refuse what governance forbids; the pages say so first)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_POST

from audit.recorder import AuditWriteError
from portal.accounts.models import Role
from portal.web import pages
from portal.web.forms import RunStartForm
from scoring import selectors, services
from scoring.models import Scorecard, ScoreRun

RUN_ROWS = 20


def _runs() -> list[ScoreRun]:
    return list(selectors.score_run_list()[:RUN_ROWS])


def _stability(monitored: dict[str, Any] | None, scorecard: Scorecard) -> dict[str, Any]:
    """A run's PSI in total and per characteristic (worst first) as the pages show it, labelled from its
    scorecard: no queries."""
    monitored = monitored or {}
    chinese = pages.chinese()
    labels = {
        f["code"]: f.get("label_zh" if chinese else "label_en") or f["code"] for f in scorecard.features
    }
    level = monitored.get("level", "none")
    return {
        "psi": monitored.get("psi"),
        "level": level,
        "badge": LEVEL_BADGES.get(level, ""),
        "characteristics": [
            {
                "code": code,
                "label": labels.get(code, code),
                "psi": figures["psi"],
                "level": figures["level"],
                "badge": LEVEL_BADGES.get(figures["level"], ""),
            }
            for code, figures in sorted(
                monitored.get("features", {}).items(), key=lambda item: -item[1]["psi"]
            )
        ],
    }


def _with_stability(runs: list[ScoreRun]) -> list[ScoreRun]:
    for run in runs:
        run.shown_stability = _stability(run.monitoring, run.scorecard)  # type: ignore[attr-defined]
    return runs


def _page(request: HttpRequest, form: RunStartForm, status: int = 200) -> HttpResponse:
    runs = _with_stability(_runs())
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


# --- Model cards: every version for everyone; the lifecycle buttons for compliance ------------------------
LEVEL_BADGES = {"stable": "ok", "warning": "warn", "alert": "bad", "none": ""}
STEP_TITLES = {
    "validate": gettext_noop("Validate model %(version)s?"),
    "approve": gettext_noop("Approve model %(version)s?"),
    "activate": gettext_noop("Activate model %(version)s?"),
}
STEP_EXPLAINED = {
    "validate": gettext_noop(
        "You confirm that you reviewed the validation report below independently of the person who fitted "
        "the model. It is recorded in the audit trail with your name."
    ),
    "approve": gettext_noop(
        "You approve the validated model for use, as a second person. It is recorded in the audit trail with "
        "your name."
    ),
    "activate": gettext_noop(
        "The next score runs use this model; the active one is retired and stays readable with its scores. "
        "It is recorded in the audit trail with your name."
    ),
}
STEP_FROM = {
    "validate": Scorecard.Status.DRAFT,
    "approve": Scorecard.Status.VALIDATED,
    "activate": Scorecard.Status.APPROVED,
}
STEP_DONE = {
    "validate": gettext_noop("Model %(version)s validated."),
    "approve": gettext_noop("Model %(version)s approved."),
    "activate": gettext_noop("Model %(version)s activated."),
}


def _next_step(card: Scorecard) -> str | None:
    for step, status in STEP_FROM.items():
        if card.status == status and not (step == "activate" and card.source == Scorecard.Source.EXTERNAL):
            return step
    return None


def _step_refusal(card: Scorecard, user: Any, step: str) -> tuple[str, int] | None:
    """What the lifecycle service would refuse, told in the page's language before anything is asked."""
    if user.role != Role.COMPLIANCE:
        return _("Only a compliance officer takes a model through its lifecycle."), 403
    if card.fitted_by_id is not None and card.fitted_by_id == user.pk:
        return _("Four eyes: the person who fitted a model may not validate, approve or activate it."), 403
    if step == "approve" and card.validated_by_id == user.pk:
        return _("Four eyes: the person who validated a model may not approve it."), 403
    if step == "activate" and card.source == Scorecard.Source.EXTERNAL:
        return _(
            "A model fitted on an external extract is a validation artefact and is never activated."
        ), 409
    if card.status != STEP_FROM[step]:
        return _("This model is not in the state this step starts from."), 409
    if step == "validate" and not (card.report.get("cv_auc") or card.report.get("holdout_auc")):
        return _("This model has no validation report."), 409
    return None


def _card_or_404(version: str) -> Scorecard:
    card = selectors.scorecard_list().filter(version=version[:40]).first()
    if card is None:
        raise pages.NotFound
    return card


def _model_page(
    request: HttpRequest, card: Scorecard, *, error: str | None = None, status: int = 200
) -> HttpResponse:
    stability = selectors.scorecard_stability(card)
    user = pages.user_of(request)
    step = _next_step(card) if user.role == Role.COMPLIANCE else None
    refusal = _step_refusal(card, user, step) if step else None
    return render(
        request,
        "web/scoring/model_detail.html",
        {
            "card": card,
            "model": selectors.scorecard_model_card(card),
            "stability": stability,
            "shown_stability": _stability(stability, card) if stability else None,
            # Fitted models: out-of-fold calibration by decile; calibrated ones: deciles on the held-out seed.
            "calibration_rows": card.report.get("calibration") or card.report.get("deciles") or [],
            "step": step,
            "step_refusal": refusal[0] if refusal else None,
            "error": error,
        },
        status=status,
    )


@pages.page("scoring_models", "scoring.models.read")
def model_list(request: HttpRequest) -> HttpResponse:
    pages.note(request).resource_kind = "scorecard"
    return render(request, "web/scoring/model_list.html", {"cards": list(selectors.scorecard_list())})


@pages.page("scoring_models", "scoring.model.read")
def model_detail(request: HttpRequest, version: str) -> HttpResponse:
    note = pages.note(request)
    note.resource_kind, note.requested_id = "scorecard", version[:100]
    return _model_page(request, _card_or_404(version))


@require_POST
@pages.page("scoring_models_decide", "scoring.model.step")
def model_step(request: HttpRequest, version: str, step: str) -> HttpResponse:
    """A lifecycle step in two POSTs: the first shows what is about to happen (or why it is refused), the
    second, with `confirm=yes`, takes it through the service, which writes the event with the change."""
    note = pages.note(request)
    note.resource_kind, note.requested_id = "scorecard", version[:100]
    if step not in STEP_FROM:
        raise pages.NotFound
    note.action = f"scoring.model.{step}"
    card = _card_or_404(version)
    user = pages.user_of(request)
    refusal = _step_refusal(card, user, step)
    if request.POST.get("confirm") != "yes":
        note.action = f"scoring.model.{step}_confirm"
        if refusal is not None:
            return _model_page(request, card, error=refusal[0], status=refusal[1])
        return render(
            request,
            "web/scoring/model_confirm.html",
            {
                "card": card,
                "step": step,
                "title": _(STEP_TITLES[step]) % {"version": card.version},
                "explained": _(STEP_EXPLAINED[step]),
            },
        )
    try:
        services.LIFECYCLE[step](scorecard=card, actor=user)
    except services.GovernanceError:
        # The service refused (and wrote the refusal to the trail): say why in the page's language.
        message, code = refusal or (_("This model is not in the state this step starts from."), 409)
        return _model_page(request, _card_or_404(version), error=message, status=code)
    except AuditWriteError:
        return HttpResponse(_("The audit trail is unavailable."), status=503)
    messages.success(request, _(STEP_DONE[step]) % {"version": card.version})
    return redirect("web:scoring-model", version=card.version)
