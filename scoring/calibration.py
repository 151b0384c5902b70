"""Calibrating the portal's scorecard: PDO arithmetic, the portal's features fitted with optbinning and
scikit-learn (scoring.fitting), and decile default rates.

The fitting itself needs the `modeling` extra and is imported only when a scorecard is fitted; the rest is
arithmetic that the scoring path and the quality measure share.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Value = int | None


def pdo_factor(pdo: float) -> float:
    """Points per unit of ln(odds): doubling the good:bad odds adds `pdo` points."""
    return pdo / math.log(2)


def pdo_offset(*, pdo: float, base_score: float, base_odds: float) -> float:
    """The score at odds 1:1, such that good:bad odds of `base_odds` score `base_score`."""
    return base_score - pdo_factor(pdo) * math.log(base_odds)


def score_of_log_odds(log_odds: float, *, pdo: float, base_score: float, base_odds: float) -> float:
    """score = offset + factor * ln(good:bad odds), before rounding and clipping."""
    return pdo_offset(pdo=pdo, base_score=base_score, base_odds=base_odds) + pdo_factor(pdo) * log_odds


def auc(scores: Sequence[float], bads: Sequence[bool]) -> float:
    """Probability that a random good outscores a random bad (ties count half): scikit-learn's ROC AUC."""
    from sklearn.metrics import roc_auc_score  # the modeling extra: only measuring needs it

    if all(bads) or not any(bads):
        raise ValueError("AUC needs both goods and bads")
    return float(roc_auc_score([1 if b else 0 for b in bads], [-s for s in scores]))


def decile_default_rates(scores: Sequence[float], bads: Sequence[bool], ids: Sequence[int]) -> list[dict]:
    """Default rate per score decile, lowest scores first. Ties are broken by id, so deciles are equal-sized
    and the split is reproducible."""
    order = sorted(range(len(scores)), key=lambda k: (scores[k], ids[k]))
    n = len(order)
    deciles = []
    for d in range(10):
        members = order[d * n // 10 : (d + 1) * n // 10]
        defaults = sum(1 for k in members if bads[k])
        deciles.append(
            {
                "decile": d + 1,
                "min_score": min(scores[k] for k in members),
                "max_score": max(scores[k] for k in members),
                "consumers": len(members),
                "defaults": defaults,
                "default_rate": round(defaults / len(members), 4) if members else 0.0,
            }
        )
    return deciles


def falls_monotonically(deciles: Sequence[Mapping]) -> bool:
    rates = [d["default_rate"] for d in deciles]
    return all(a >= b for a, b in itertools.pairwise(rates))


@dataclass(frozen=True)
class Candidate:
    """What calibration needs to know of a feature: its code, its declared direction (enforced as optbinning's
    monotonic trend of the bad rate), and the structural reason its value can be missing, if any."""

    code: str
    risk_rises: bool
    missing_group: str | None


@dataclass
class FittedFeature:
    code: str
    bins: list[dict[str, Any]]  # [lower, upper) integer edges, then the missing bin; with points, WoE, counts
    iv: float


@dataclass
class FittedModel:
    features: list[FittedFeature]
    base_points: int  # 0: optbinning's PDO scaling spreads the offset over the features' points
    report: dict[str, Any]
    # Each missing group's owner: the feature whose reason code a missing value shows.
    missing_owner: dict[str, str]
    dropped: dict[str, str]  # code -> why


def fit_scorecard(
    candidates: Sequence[Candidate],
    rows: Sequence[Mapping[str, Value]],
    bads: Sequence[bool],
    *,
    pdo: float,
    base_score: float,
    base_odds: float,
    folds: int = 5,
) -> FittedModel:
    """Bin every feature with optbinning in its declared direction, fit optbinning's Scorecard (logistic
    regression on WoE, PDO scaling) and cross-validate it next to a one-hot baseline (scoring.fitting).

    Bins of integer features become [lower, upper) integer intervals, which the production SQL applies. A
    feature whose bins pooled into one carries no evidence in its declared direction: it is listed in
    `dropped` (its one bin's points stay, since each feature's points carry a share of the offset).
    """
    import pandas as pd  # the modeling extra

    from scoring import fitting

    frame = pd.DataFrame(
        {c.code: [math.nan if (v := r[c.code]) is None else float(v) for r in rows] for c in candidates}
    )
    spec = fitting.Spec(
        numeric=[c.code for c in candidates],
        trends={c.code: "ascending" if c.risk_rises else "descending" for c in candidates},
        pdo=pdo,
        base_score=base_score,
        base_odds=base_odds,
    )
    fit = fitting.fit(frame, [1 if b else 0 for b in bads], spec, folds=folds)
    features, dropped = [], {}
    for c in candidates:
        bins = fitting.integer_bins(fit.bins[c.code])
        if sum(1 for b in bins if not b["missing"]) <= 1:
            # Kept, since its points carry a share of the scaling offset: it only tells missing from present.
            dropped[c.code] = "no evidence in the declared direction: its bins pooled into one"
        features.append(FittedFeature(c.code, bins, fit.iv[c.code]))
    owners: dict[str, str] = {}
    kept = {f.code for f in features}
    for c in candidates:
        if c.missing_group and c.code in kept and c.missing_group not in owners:
            owners[c.missing_group] = c.code
    return FittedModel(features, 0, fit.report, owners, dropped)
