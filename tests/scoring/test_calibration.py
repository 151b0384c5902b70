"""The maths of scorecards: PDO scaling, clipping, monotone binning, logistic regression, AUC and deciles."""

import itertools
import math
import random
from types import SimpleNamespace

import pytest

from scoring import calibration
from scoring.scorecards import clip, score_features


def test_doubling_the_odds_adds_pdo_points():
    scale = {"pdo": 40.0, "base_score": 660.0, "base_odds": 32.0}
    at_base = calibration.score_of_log_odds(math.log(32), **scale)
    doubled = calibration.score_of_log_odds(math.log(64), **scale)
    halved = calibration.score_of_log_odds(math.log(16), **scale)
    assert at_base == pytest.approx(660.0)
    assert doubled - at_base == pytest.approx(40.0)
    assert at_base - halved == pytest.approx(40.0)
    assert calibration.pdo_factor(40.0) == pytest.approx(40.0 / math.log(2))
    # The offset is the score at even odds: base_score - factor * ln(base_odds).
    assert calibration.pdo_offset(**scale) == pytest.approx(660.0 - 40.0 / math.log(2) * math.log(32))


def _card(base_points: int, points: int) -> SimpleNamespace:
    feature = {
        "code": "late_share_pct",
        "reason_en": "late",
        "reason_zh": "逾期",
        "missing_group": None,
        "bins": [
            {"lower": None, "upper": 10, "missing": False, "points": points},
            {"lower": 10, "upper": None, "missing": False, "points": -points},
            {"lower": None, "upper": None, "missing": True, "points": 0},
        ],
    }
    return SimpleNamespace(base_points=base_points, features=[feature], missing_groups={})


def test_scores_are_clipped_to_300_and_850():
    assert clip(120) == 300
    assert clip(1200) == 850
    assert clip(640) == 640
    assert score_features(_card(800, 200), {"late_share_pct": 0}).value == 850
    assert score_features(_card(400, 200), {"late_share_pct": 50}).value == 300
    assert score_features(_card(600, 20), {"late_share_pct": 50}).value == 580


def test_reason_is_the_points_lost_against_the_best_bin():
    scored = score_features(_card(600, 20), {"late_share_pct": 50})
    assert [(r.code, r.points_lost) for r in scored.reasons] == [("late_share_pct", 40)]
    assert score_features(_card(600, 20), {"late_share_pct": 0}).reasons == ()


def _fitted(values, bads, *, risk_rises):
    model = calibration.fit_scorecard(
        [calibration.Candidate("x", risk_rises=risk_rises, missing_group=None)],
        [{"x": v} for v in values],
        bads,
        pdo=40,
        base_score=660,
        base_odds=32,
        folds=3,
    )
    return model, model.features[0].bins


def test_bins_follow_the_declared_direction():
    rng = random.Random(1)
    values = [rng.randint(0, 100) for _ in range(5_000)]
    # Risk rises with the value, with noise that makes raw quantile bins non-monotone.
    bads = [rng.random() < 0.02 + 0.002 * v + (0.05 if 40 <= v < 50 else 0) for v in values]
    model, bins = _fitted(values, bads, risk_rises=True)
    present = [b for b in bins if not b["missing"]]
    assert len(present) > 1
    rates = [b["bad_rate"] for b in present]
    assert rates == sorted(rates)
    assert bins[-1]["missing"]
    # Integer edges, [lower, upper), contiguous: what the production SQL applies.
    assert present[0]["lower"] is None and present[-1]["upper"] is None
    assert all(
        a["upper"] == b["lower"] and isinstance(a["upper"], int) for a, b in itertools.pairwise(present)
    )
    # WoE is the log of good share over bad share: safer bins have larger WoE and more points.
    assert [b["woe"] for b in present] == sorted((b["woe"] for b in present), reverse=True)
    assert [b["points"] for b in present] == sorted((b["points"] for b in present), reverse=True)
    assert sum(b["count"] for b in bins) == len(values)
    assert 0.5 < model.report["cv_auc"] < 1 and model.report["folds"] == 3


def test_a_feature_against_its_declared_direction_pools_into_one_bin():
    rng = random.Random(2)
    values = [rng.randint(0, 100) for _ in range(3_000)]
    bads = [rng.random() < 0.01 + 0.003 * v for v in values]
    model, bins = _fitted(values, bads, risk_rises=False)
    assert len([b for b in bins if not b["missing"]]) == 1
    assert "x" in model.dropped


def test_auc_counts_ties_as_half():
    assert calibration.auc([1, 2, 3, 4], [True, True, False, False]) == 1.0
    assert calibration.auc([4, 3, 2, 1], [True, True, False, False]) == 0.0
    assert calibration.auc([5, 5, 5, 5], [True, False, True, False]) == 0.5


def test_deciles_are_equal_sized_lowest_scores_first():
    scores = list(range(100))
    bads = [s < 30 for s in scores]
    deciles = calibration.decile_default_rates(scores, bads, list(range(100)))
    assert [d["consumers"] for d in deciles] == [10] * 10
    assert [d["default_rate"] for d in deciles] == [1.0, 1.0, 1.0] + [0.0] * 7
    assert calibration.falls_monotonically(deciles)
    assert not calibration.falls_monotonically([{"default_rate": 0.1}, {"default_rate": 0.2}])


def test_missing_values_get_their_own_points_per_group():
    rng = random.Random(4)
    candidates = [
        calibration.Candidate("late", risk_rises=True, missing_group="no_history"),
        calibration.Candidate("worst", risk_rises=True, missing_group="no_history"),
        calibration.Candidate("income", risk_rises=False, missing_group=None),
    ]
    rows, bads = [], []
    for _ in range(4_000):
        risk = rng.random()
        thin = rng.random() < 0.4
        late = None if thin else int(risk * 50 + rng.gauss(0, 5))
        worst = None if thin else int(risk * 90 + rng.gauss(0, 10))
        rows.append(
            {"late": late, "worst": worst, "income": int(10_000 - 6_000 * risk + rng.gauss(0, 1_000))}
        )
        bads.append(rng.random() < 0.01 + 0.15 * risk * risk)
    model = calibration.fit_scorecard(candidates, rows, bads, pdo=40, base_score=660, base_odds=32, folds=3)
    assert [f.code for f in model.features] == ["late", "worst", "income"]
    assert model.missing_owner == {"no_history": "late"}
    for feature in model.features:
        assert feature.bins[-1]["missing"] and feature.iv > 0
        present = [b["points"] for b in feature.bins if not b["missing"]]
        # Points fall as risk rises (late, worst) and rise with income.
        assert present == sorted(present, reverse=feature.code != "income")
    assert set(model.report["iv"]) == {"late", "worst", "income"}
    assert abs(model.report["cv_auc"] - model.report["baseline_cv_auc"]) < 0.05
