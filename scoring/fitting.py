"""Fitting and validating a scorecard with the field's libraries: optbinning's BinningProcess (optimal binning
with a monotonic trend per feature) and Scorecard (logistic regression on weight of evidence, points scaled by
points-to-double-the-odds), and scikit-learn's stratified k-fold, metrics and a one-hot logistic regression
baseline fitted in the same run on the same folds.

Needs the `modeling` extra (pip install -e .[modeling]); nothing the web server or the workers import reaches
this module, so they run without it. Free of Django: it takes a data frame and returns plain data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from optbinning import BinningProcess, Scorecard
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from scoring.calibration import falls_monotonically

SEED = 20_260_101  # fixed: the same data and options always give the same folds, bins and points
DECILES = 10


@dataclass
class Spec:
    """What to fit: the columns, which of them are categorical, each numeric column's monotonic trend of the
    bad rate ("ascending", "descending" or "auto_asc_desc"), and values that mean "special" rather than a
    number (e.g. -9 for "not asked")."""

    numeric: list[str]
    categorical: list[str] = field(default_factory=list)
    trends: dict[str, str] = field(default_factory=dict)
    special_codes: list[float] = field(default_factory=list)
    pdo: float = 40.0
    base_score: float = 660.0
    base_odds: float = 32.0

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def _scorecard(spec: Spec) -> Scorecard:
    process = BinningProcess(
        spec.columns,
        categorical_variables=spec.categorical or None,
        special_codes=spec.special_codes or None,
        binning_fit_params={
            c: {"monotonic_trend": spec.trends.get(c, "auto_asc_desc")} for c in spec.numeric
        },
    )
    return Scorecard(
        binning_process=process,
        estimator=LogisticRegression(max_iter=1_000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": spec.pdo, "odds": spec.base_odds, "scorecard_points": spec.base_score},
        rounding=True,
    )


def _baseline(spec: Spec) -> Any:
    """A plain logistic regression: numeric columns imputed (with a missing indicator) and standardised,
    categorical columns one-hot encoded; no binning, no monotonicity."""
    parts = []
    if spec.numeric:
        parts.append(
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                spec.numeric,
            )
        )
    if spec.categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                spec.categorical,
            )
        )
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=1_000))


def ks_statistic(bads: ArrayLike, risk: ArrayLike) -> float:
    """Kolmogorov-Smirnov: the largest gap between the bads' and the goods' cumulative risk distributions."""
    fpr, tpr, _ = roc_curve(bads, risk)
    return float(np.max(tpr - fpr))


def calibration_table(bads: ArrayLike, pd_: ArrayLike, scores: ArrayLike) -> list[dict]:
    """By score decile, lowest scores first: consumers, predicted and observed default rate."""
    s = np.asarray(scores)
    order = np.lexsort((np.arange(len(s)), s))
    n = len(order)
    y = np.asarray(bads)
    p = np.asarray(pd_)
    table = []
    for d in range(DECILES):
        members = order[d * n // DECILES : (d + 1) * n // DECILES]
        if not len(members):
            continue
        table.append(
            {
                "decile": d + 1,
                "min_score": float(s[members].min()),
                "max_score": float(s[members].max()),
                "consumers": len(members),
                "defaults": int(y[members].sum()),
                "default_rate": round(float(y[members].mean()), 4),
                "predicted_default_rate": round(float(p[members].mean()), 4),
            }
        )
    return table


@dataclass
class Fit:
    card: Any  # the Scorecard fitted on all rows
    bins: dict[str, list[dict[str, Any]]]  # per column, in optbinning's order: bins, special, missing
    iv: dict[str, float]
    report: dict[str, Any]


def _bins_of(card: Scorecard, spec: Spec) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    table = card.table(style="detailed")
    bins: dict[str, list[dict[str, Any]]] = {}
    iv: dict[str, float] = {}
    for column in spec.columns:
        optb = card.binning_process_.get_binned_variable(column)
        rows = table[table["Variable"] == column].reset_index(drop=True)
        splits = list(optb.splits) if optb.splits is not None else []
        found = []
        for k, row in rows.iterrows():
            label = str(row["Bin"])
            entry: dict[str, Any] = {
                "points": int(row["Points"]),
                "woe": round(float(row["WoE"]), 4),
                "count": int(row["Count"]),
                "bad_rate": round(float(row["Event rate"]), 4),
                "missing": label == "Missing",
                "special": label == "Special",
            }
            if not entry["missing"] and not entry["special"]:
                index = int(k)
                if column in spec.categorical:
                    entry["categories"] = [str(v) for v in splits[index]] if splits else []
                else:
                    entry["lower"] = float(splits[index - 1]) if index > 0 else None
                    entry["upper"] = float(splits[index]) if index < len(splits) else None
            found.append(entry)
        bins[column] = found
        iv[column] = round(float(rows["IV"].sum()), 4)
    return bins, iv


def fit(frame: pd.DataFrame, bads: Sequence[int], spec: Spec, *, folds: int = 5, seed: int = SEED) -> Fit:
    """Cross-validate the scorecard and the one-hot baseline on the same stratified folds, then fit the
    scorecard on every row. The report's AUC, Gini, KS, Brier and calibration come from out-of-fold scores."""
    y = np.asarray(bads, dtype=int)
    if folds < 2:
        raise ValueError("folds must be at least 2")
    if int(y.sum()) < folds or int(len(y) - y.sum()) < folds:
        raise ValueError(f"each of the {folds} folds needs goods and bads: too few of one outcome")
    x = frame[spec.columns]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    oof_score = np.zeros(len(y))
    oof_pd = np.zeros(len(y))
    fold_auc, fold_baseline = [], []
    for train, test in splitter.split(x, y):
        card = _scorecard(spec).fit(x.iloc[train], y[train])
        oof_score[test] = card.score(x.iloc[test])
        oof_pd[test] = card.predict_proba(x.iloc[test])[:, 1]
        fold_auc.append(roc_auc_score(y[test], -oof_score[test]))
        baseline = clone(_baseline(spec)).fit(x.iloc[train], y[train])
        fold_baseline.append(roc_auc_score(y[test], baseline.predict_proba(x.iloc[test])[:, 1]))
    final = _scorecard(spec).fit(x, y)
    bins, iv = _bins_of(final, spec)
    cv_auc = float(np.mean(fold_auc))
    report: dict[str, Any] = {
        "rows": len(y),
        "bads": int(y.sum()),
        "bad_rate": round(float(y.mean()), 4),
        "folds": folds,
        "seed": seed,
        "cv_auc": round(cv_auc, 4),
        "cv_auc_by_fold": [round(float(a), 4) for a in fold_auc],
        "gini": round(2 * cv_auc - 1, 4),
        "ks": round(ks_statistic(y, -oof_score), 4),
        "brier": round(float(brier_score_loss(y, oof_pd)), 4),
        "baseline_cv_auc": round(float(np.mean(fold_baseline)), 4),
        "baseline_cv_auc_by_fold": [round(float(a), 4) for a in fold_baseline],
        "baseline": "logistic regression on standardised numeric columns (median-imputed, with missing "
        "indicators) and one-hot categorical columns, fitted on the same folds",
        "calibration": calibration_table(y, oof_pd, oof_score),
        "iv": iv,
        "method": "optbinning BinningProcess (monotonic trend per numeric column) and Scorecard (logistic "
        f"regression on WoE, PDO scaling: {spec.pdo:g} points double the odds, {spec.base_odds:g}:1 at "
        f"{spec.base_score:g}); scikit-learn StratifiedKFold({folds}, shuffle, seed {seed})",
    }
    report["calibration_falls_monotonically"] = falls_monotonically(report["calibration"])
    return Fit(card=final, bins=bins, iv=iv, report=report)


def integer_bins(bins: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Bins of an integer-valued feature as the production SQL applies them, [lower, upper) with integer
    edges: an integer v is below a split s exactly when it is below ceil(s). Bins left holding no integer are
    dropped; the special bin goes (portal features have no special values)."""
    present: list[dict[str, Any]] = []
    for b in bins:
        if b["missing"] or b["special"]:
            continue
        lower = None if b["lower"] is None else math.ceil(b["lower"])
        upper = None if b["upper"] is None else math.ceil(b["upper"])
        if lower is not None and upper is not None and upper <= lower:
            continue
        present.append({**{k: v for k, v in b.items() if k != "special"}, "lower": lower, "upper": upper})
    missing = next(b for b in bins if b["missing"])
    return [*present, {**{k: v for k, v in missing.items() if k != "special"}, "lower": None, "upper": None}]


def points_of(bins: Sequence[Mapping[str, Any]], value: Any, *, special_codes: Sequence[float] = ()) -> int:
    """The points one value earns in one column's bins (numeric or categorical). A value outside every
    category seen in fitting scores as missing."""
    missing = next(b for b in bins if b["missing"])
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return int(missing["points"])
    special = next((b for b in bins if b.get("special")), None)
    try:
        number: float | None = float(value)
    except (TypeError, ValueError):
        number = None
    if special is not None and number is not None and number in special_codes:
        return int(special["points"])
    for b in bins:
        if b["missing"] or b.get("special"):
            continue
        if "categories" in b:
            if str(value) in b["categories"]:
                return int(b["points"])
            continue
        if number is None:
            continue
        if (b["lower"] is None or number >= b["lower"]) and (b["upper"] is None or number < b["upper"]):
            return int(b["points"])
    return int(missing["points"])
