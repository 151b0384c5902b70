"""Reads for the API: model cards, runs with progress, score history with reasons and model version."""

import pytest

from portal.records.models import Consumer
from scoring import selectors, services
from scoring.models import ScoreRun

pytestmark = pytest.mark.usefixtures("eager")


def test_model_card_shows_groups_bins_points_and_measured_quality(scorecard):
    card = selectors.scorecard_model_card(scorecard)
    assert card["version"] == "2026.1" and card["is_active"]
    assert card["scaling"]["pdo"] == 40.0 and "ln 2" in card["scaling"]["formula"]
    assert [g["code"] for g in card["groups"]] == [
        "payment_history",
        "amounts_owed",
        "length_of_history",
        "new_credit",
        "credit_mix",
    ]
    assert [g["target_weight"] for g in card["groups"]] == [0.35, 0.30, 0.15, 0.10, 0.10]
    features = [f for g in card["groups"] for f in g["features"]]
    assert {f["code"] for f in features} >= {"late_share_pct", "max_days_late", "utilisation_pct"}
    for feature in features:
        assert feature["label_en"] and feature["label_zh"]
        assert feature["bins"][-1]["missing"] and all("points" in b for b in feature["bins"])
    metrics = card["metrics"]
    assert metrics["auc"] >= 0.75 and metrics["deciles_fall_monotonically"]
    assert len(metrics["deciles"]) == 10
    assert metrics["calibration"]["seed"] != metrics["validation"]["seed"]
    assert selectors.scorecard_list()[0].version == "2026.1"
    assert selectors.scorecard_get(version="nope") is None


def test_score_history_of_a_consumer_newest_first_with_reasons(
    world, scorecard, django_capture_on_commit_callbacks, django_assert_num_queries
):
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            services.score_run_start(kind="full")
        ScoreRun.objects.update(status="finished")  # allow the next full run
    consumer = Consumer.objects.order_by("id")[3]
    # One query, however long the history: scores with their scorecard.
    with django_assert_num_queries(1):
        history = list(selectors.score_history(consumer))
    assert len(history) == 2
    assert history[0].computed_at >= history[1].computed_at
    assert history[0].run_id > history[1].run_id
    assert history[0].scorecard.version == "2026.1"
    assert all(isinstance(r["points_lost"], int) for r in history[0].reasons)
    # A queryset of consumers (what the access policy returns) works the same, and never widens it.
    some = Consumer.objects.filter(pk__in=Consumer.objects.order_by("id").values("pk")[:5])
    scores = selectors.score_history(some)
    assert scores.count() == 10
    assert set(scores.values_list("consumer_id", flat=True)) == set(some.values_list("pk", flat=True))


def test_run_progress_reports_counts_and_timings(
    world, scorecard, compliance, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.score_run_start(kind="full", requested_by=compliance)
    run = selectors.score_run_list()[0]
    progress = selectors.score_run_progress(run)
    assert progress["status"] == "finished" and progress["progress"] == 1.0
    assert progress["requested_by"] == "compliance-officer"
    assert progress["consumers_scored"] == progress["consumers_planned"] == 60
    assert progress["duration_seconds"] >= 0
    assert selectors.score_run_get(run_id=run.pk) == run
