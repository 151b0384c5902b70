"""Fitting a draft model version (manage.py fit_scorecard) on the portal's own outcomes or on an external CSV
extract. Needs the `modeling` extra; only the command and the benchmark import this module.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from scoring import calibration, fitting, monitoring, quality, services
from scoring.features import FEATURES
from scoring.models import Scorecard
from scoring.scorecards import score_features

MIN_ROWS = 50


class FitError(services.ScoringError):
    """Data that cannot be fitted; the message names the option or column at fault."""


def _common(version: str, name: str, pdo: float, base_score: float, base_odds: float) -> dict[str, Any]:
    return {"version": version, "name": name, "pdo": pdo, "base_score": base_score, "base_odds": base_odds}


def fit_portal(
    *,
    as_of: date,
    version: str,
    name: str,
    fitted_by: Any,
    folds: int = 5,
    pdo: float = 40.0,
    base_score: float = 660.0,
    base_odds: float = 32.0,
) -> Scorecard:
    """Fit on the portal's consumers as of `as_of` (features before it, outcome in the 12 months after)."""
    rows, bads = quality.portal_sample(as_of)
    if len(rows) < MIN_ROWS:
        raise FitError(f"as_of: only {len(rows)} consumers had joined before {as_of}; {MIN_ROWS} are needed")
    ids = sorted(rows)
    try:
        model = calibration.fit_scorecard(
            [calibration.Candidate(f.code, f.risk_rises, f.missing_group) for f in FEATURES],
            [rows[i] for i in ids],
            [bads[i] for i in ids],
            pdo=pdo,
            base_score=base_score,
            base_odds=base_odds,
            folds=folds,
        )
    except ValueError as exc:
        raise FitError(f"as_of: {exc}") from exc
    fields = services.portal_card(model)
    card = Scorecard(**_common(version, name, pdo, base_score, base_odds), **fields)
    scores = [score_features(card, rows[i]).value for i in ids]
    edges = monitoring.score_edges(scores)
    return services.model_store_draft(
        fitted_by=fitted_by,
        source=Scorecard.Source.PORTAL,
        source_detail={
            "as_of": as_of.isoformat(),
            "outcome": "a repayment due in the 12 months after the as-of date paid 90 or more days late",
            "population": "consumers who had joined before the as-of date",
            "features": "the portal's transaction features, from transactions before the as-of date",
        },
        report={**model.report, "dropped": model.dropped},
        development={"score_edges": edges, "score_counts": monitoring.band_counts(scores, edges)},
        metrics={"auc": model.report["cv_auc"], "dropped": model.dropped},
        **_common(version, name, pdo, base_score, base_odds),
        **fields,
    )


def read_csv(path: Path, target: str, bad: str) -> tuple[pd.DataFrame, list[int]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FitError(f"--csv: cannot read {path}: {exc}") from exc
    if target not in frame.columns:
        raise FitError(f"--target: no column {target!r} in {path.name} (columns: {', '.join(frame.columns)})")
    outcome = frame.pop(target).str.strip()
    if not (outcome == bad).any():
        raise FitError(f"--bad: no row of {path.name} has {target} = {bad!r}")
    return frame, [1 if v == bad else 0 for v in outcome]


def detect(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Numeric columns (every non-empty value parses as a number) become floats, the rest stay text;
    empty strings are missing either way. Columns with one value only carry nothing and are left out."""
    numeric, categorical, columns = [], [], {}
    for column in frame.columns:
        text = frame[column].str.strip()
        present = text[text != ""]
        if present.nunique() < 2:
            continue
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.notna().all():
            columns[column] = pd.to_numeric(text.replace("", None), errors="coerce").astype(float)
            numeric.append(column)
        else:
            columns[column] = text.replace("", None)
            categorical.append(column)
    return pd.DataFrame(columns), numeric, categorical


def fit_csv(
    *,
    path: Path,
    target: str,
    bad: str,
    version: str,
    name: str,
    fitted_by: Any,
    folds: int = 5,
    special_codes: list[float] | None = None,
    pdo: float = 40.0,
    base_score: float = 660.0,
    base_odds: float = 32.0,
) -> Scorecard:
    """Fit on an external extract: a validation artefact, never activated (its features are not the
    portal's)."""
    raw, bads = read_csv(path, target, bad)
    if len(bads) < MIN_ROWS:
        raise FitError(f"--csv: {len(bads)} rows; at least {MIN_ROWS} are needed")
    frame, numeric, categorical = detect(raw)
    if not numeric and not categorical:
        raise FitError(f"--csv: no column of {path.name} besides {target} varies")
    spec = fitting.Spec(
        numeric=numeric,
        categorical=categorical,
        special_codes=special_codes or [],
        pdo=pdo,
        base_score=base_score,
        base_odds=base_odds,
    )
    try:
        fit = fitting.fit(frame, bads, spec, folds=folds)
    except ValueError as exc:
        raise FitError(f"--folds: {exc}") from exc
    features = [
        {
            "code": column,
            "kind": "categorical" if column in categorical else "numeric",
            "label_en": column,
            "label_zh": column,
            "iv": fit.iv[column],
            "bins": fit.bins[column],
        }
        for column in spec.columns
    ]
    scores = [int(s) for s in fit.card.score(frame[spec.columns])]
    edges = monitoring.score_edges(scores)
    return services.model_store_draft(
        fitted_by=fitted_by,
        source=Scorecard.Source.EXTERNAL,
        source_detail={
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "target": target,
            "bad": bad,
            "rows": len(bads),
            "numeric": numeric,
            "categorical": categorical,
            "special_codes": special_codes or [],
        },
        report=fit.report,
        development={"score_edges": edges, "score_counts": monitoring.band_counts(scores, edges)},
        metrics={"auc": fit.report["cv_auc"]},
        base_points=0,
        features=features,
        missing_groups={},
        **_common(version, name, pdo, base_score, base_odds),
    )


def score_record(scorecard: Scorecard, record: dict[str, Any]) -> int:
    """Score one record of an externally fitted model (the sum of its columns' points, unclipped)."""
    special = scorecard.source_detail.get("special_codes", [])
    return scorecard.base_points + sum(
        fitting.points_of(f["bins"], record.get(f["code"]), special_codes=special) for f in scorecard.features
    )
