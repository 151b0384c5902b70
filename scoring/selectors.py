"""Reads of the scoring app for the API and web: model cards, runs with progress, score history.

Score history takes consumers the caller may already see (a Consumer, or a queryset from the access policy):
this module decides nothing about access, it only never widens what it is given.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from portal.records.models import Consumer
from scoring.features import GROUPS, MISSING_REASONS
from scoring.models import CreditScore, Scorecard, ScoreRun


def scorecard_list() -> QuerySet[Scorecard]:
    """Every scorecard version, the active one first, then newest first."""
    return Scorecard.objects.select_related(
        "fitted_by", "validated_by", "approved_by", "activated_by"
    ).order_by("-is_active", "-created_at", "-id")


def scorecard_active() -> Scorecard | None:
    return Scorecard.objects.filter(is_active=True).first()


def scorecard_get(*, version: str) -> Scorecard | None:
    return Scorecard.objects.filter(version=version).first()


def _bin_label(b: dict[str, Any]) -> str:
    if b["missing"]:
        return "missing"
    if b["lower"] is None:
        return f"< {b['upper']}"
    if b["upper"] is None:
        return f">= {b['lower']}"
    return f"{b['lower']} to < {b['upper']}"


def scorecard_model_card(scorecard: Scorecard) -> dict[str, Any]:
    """What the model card shows: scaling, features with bins and points by group, and the measured quality.
    Built from the row alone (no queries)."""
    groups = []
    for code, (label_en, label_zh, target) in GROUPS.items():
        features = [f for f in scorecard.features if f.get("group") == code]
        groups.append(
            {
                "code": code,
                "label_en": label_en,
                "label_zh": label_zh,
                "target_weight": target,
                "fitted_weight": scorecard.metrics.get("group_weights", {}).get(code, {}).get("fitted"),
                "features": [
                    {
                        "code": f["code"],
                        "label_en": f["label_en"],
                        "label_zh": f["label_zh"],
                        "risk_rises": f["risk_rises"],
                        "coefficient": f.get("coefficient"),
                        "iv": f.get("iv"),
                        "bins": [
                            {
                                "label": _bin_label(b),
                                "lower": b["lower"],
                                "upper": b["upper"],
                                "missing": b["missing"],
                                "points": b["points"],
                                "calibration_count": b["count"],
                                "calibration_default_rate": b["bad_rate"],
                            }
                            for b in f["bins"]
                        ],
                    }
                    for f in features
                ],
            }
        )
    metrics = scorecard.metrics

    def who(user: Any) -> str | None:
        return user.get_username() if user is not None else None

    external = [
        {"code": f["code"], "kind": f.get("kind"), "iv": f.get("iv"), "bins": f["bins"]}
        for f in scorecard.features
        if "group" not in f
    ]
    return {
        "version": scorecard.version,
        "name": scorecard.name,
        "is_active": scorecard.is_active,
        "status": scorecard.status,
        "source": scorecard.source,
        "source_detail": scorecard.source_detail,
        "created_at": scorecard.created_at,
        "lifecycle": {
            "fitted_by": who(scorecard.fitted_by),
            "fitted_at": scorecard.fitted_at,
            "validated_by": who(scorecard.validated_by),
            "validated_at": scorecard.validated_at,
            "approved_by": who(scorecard.approved_by),
            "approved_at": scorecard.approved_at,
            "activated_by": who(scorecard.activated_by),
            "activated_at": scorecard.activated_at,
            "review_due": scorecard.review_due,
        },
        "validation_report": scorecard.report,
        "external_features": external,
        "scaling": {
            "pdo": scorecard.pdo,
            "base_score": scorecard.base_score,
            "base_odds": scorecard.base_odds,
            "base_points": scorecard.base_points,
            "formula": "score = offset + factor * ln(good:bad odds), factor = PDO / ln 2, clipped to 300-850",
        },
        "groups": groups,
        "missing_values": [
            {
                "code": code,
                "text_en": spec["reason_en"],
                "text_zh": spec["reason_zh"],
                "points": spec["points"],
            }
            for code, spec in scorecard.missing_groups.items()
            if code in MISSING_REASONS
        ],
        "metrics": {
            "auc": metrics.get("auc"),
            "deciles": metrics.get("deciles", []),
            "deciles_fall_monotonically": metrics.get("deciles_fall_monotonically"),
            "outcome": metrics.get("outcome"),
            "population": metrics.get("population"),
            "calibration": metrics.get("calibration"),
            "validation": metrics.get("validation"),
            "dropped_features": metrics.get("dropped", {}),
        },
    }


def scorecard_stability(scorecard: Scorecard) -> dict[str, Any] | None:
    """The latest finished run's stability against this model's development sample, if it scored any."""
    run = (
        ScoreRun.objects.filter(scorecard=scorecard, status=ScoreRun.Status.FINISHED)
        .order_by("-finished_at", "-id")
        .first()
    )
    if run is None:
        return None
    return {"run": run.pk, "finished_at": run.finished_at, **(run.monitoring or {})}


def score_run_list() -> QuerySet[ScoreRun]:
    """Runs newest first, with what a progress list shows in the same query."""
    return ScoreRun.objects.select_related("scorecard", "requested_by").order_by("-created_at", "-id")


def score_run_get(*, run_id: int) -> ScoreRun | None:
    return score_run_list().filter(pk=run_id).first()


def score_run_progress(run: ScoreRun) -> dict[str, Any]:
    """Progress and timings of a run, from its counters (no queries)."""
    finished = run.finished_at
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "scorecard_version": run.scorecard.version,
        "requested_by": run.requested_by.get_username() if run.requested_by else None,
        "created_at": run.created_at,
        "finished_at": finished,
        "duration_seconds": (finished - run.created_at).total_seconds() if finished else None,
        "as_of": run.as_of,
        "watermark_from": run.watermark_from,
        "watermark_to": run.watermark_to,
        "chunks_total": run.chunks_total,
        "chunks_done": run.chunks_done,
        "chunks_failed": run.chunks_failed,
        "consumers_planned": run.consumers_planned,
        "consumers_scored": run.consumers_scored,
        "progress": round(run.progress, 4),
        "errors": run.errors,
        "psi": (run.monitoring or {}).get("psi"),
        "stability": (run.monitoring or {}).get("level", "none"),
        "psi_by_characteristic": {
            code: f["psi"] for code, f in (run.monitoring or {}).get("features", {}).items()
        },
    }


def score_history(consumers: Consumer | QuerySet[Consumer]) -> QuerySet[CreditScore]:
    """Scores of a consumer, or of a queryset of consumers, newest first, with the model version at hand
    (select_related: one query however long the history). Reasons are on each row (CreditScore.reasons)."""
    scores = CreditScore.objects.select_related("scorecard")
    if isinstance(consumers, Consumer):
        scores = scores.filter(consumer=consumers)
    else:
        scores = scores.filter(consumer__in=consumers.values("pk"))
    return scores.order_by("-computed_at", "-id")
