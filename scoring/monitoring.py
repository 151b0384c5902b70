"""Population stability: how far a score run's population has drifted from the model's development sample.

PSI = sum over bins of (actual share - expected share) * ln(actual share / expected share), in total (score
bands cut at the development sample's deciles) and per characteristic (its bins, told apart by the points
they give). Counts are smoothed by adding SMOOTHING to every bin before shares are taken, so a bin empty on
either side gives a large but finite term. PSI >= 0.1 is a warning, >= 0.25 an alert.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

SMOOTHING = 0.5
WARNING = 0.1
ALERT = 0.25


def psi(expected: Sequence[float], actual: Sequence[float], *, smoothing: float = SMOOTHING) -> float:
    """PSI of two count vectors over the same bins."""
    if len(expected) != len(actual) or not expected:
        raise ValueError("PSI compares two distributions over the same, non-empty bins")
    e_total = sum(expected) + smoothing * len(expected)
    a_total = sum(actual) + smoothing * len(actual)
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = (e + smoothing) / e_total
        a_share = (a + smoothing) / a_total
        value += (a_share - e_share) * math.log(a_share / e_share)
    return value


def level(value: float | None) -> str:
    if value is None:
        return "none"
    if value >= ALERT:
        return "alert"
    if value >= WARNING:
        return "warning"
    return "stable"


def score_edges(scores: Sequence[int], bands: int = 10) -> list[int]:
    """Cut points at the deciles of the development sample's scores (distinct, increasing)."""
    ordered = sorted(scores)
    edges: list[int] = []
    for k in range(1, bands):
        edge = ordered[min(len(ordered) - 1, k * len(ordered) // bands)]
        if edge > ordered[0] and (not edges or edge > edges[-1]):
            edges.append(edge)
    return edges


def band_counts(scores: Sequence[int], edges: Sequence[int]) -> list[int]:
    """Scores per band: band k holds edges[k-1] <= score < edges[k]."""
    counts = [0] * (len(edges) + 1)
    for s in scores:
        counts[bisect.bisect_right(edges, s)] += 1
    return counts


def points_counts(bins: Sequence[Mapping], counts_by_points: Mapping[int, int]) -> tuple[list, list]:
    """(expected, actual) of one characteristic, its bins pooled by the points they give (what a score
    row records), from the development counts in the bins and a run's counts by points earned."""
    expected: dict[int, float] = {}
    for b in bins:
        expected[int(b["points"])] = expected.get(int(b["points"]), 0) + int(b.get("count") or 0)
    keys = sorted(expected)
    return [expected[k] for k in keys], [counts_by_points.get(k, 0) for k in keys]
