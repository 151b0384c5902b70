"""The statistics of calibration, in pure Python: monotone binning, weight of evidence, logistic regression,
conversion to points, AUC and decile default rates.

Free of Django so it can be reasoned about (and tested) as plain maths; scoring.services feeds it the
features that the production SQL computed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A bin holding under this share of the non-missing population is merged into its neighbour: points learnt
# from a handful of consumers would be noise.
MIN_BIN_SHARE = 0.025
# Quantile cut points tried before merging; monotone merging usually leaves three to six bins.
INITIAL_BINS = 20
# Laplace smoothing of the good and bad counts in WoE, so an all-good bin gets a large, finite weight.
WOE_SMOOTHING = 0.5
# A little ridge keeps Newton's method stable when two features are nearly collinear.
RIDGE = 1e-3

Value = int | None


@dataclass
class BinStats:
    """A half-open interval [lower, upper) of a feature (None: unbounded), or the missing bin."""

    lower: int | None
    upper: int | None
    missing: bool = False
    goods: int = 0
    bads: int = 0
    woe: float = 0.0

    @property
    def count(self) -> int:
        return self.goods + self.bads

    @property
    def bad_rate(self) -> float:
        return self.bads / self.count if self.count else 0.0

    def holds(self, value: Value) -> bool:
        if value is None:
            return self.missing
        if self.missing:
            return False
        return (self.lower is None or value >= self.lower) and (self.upper is None or value < self.upper)


def _quantile_edges(values: Sequence[int], bins: int) -> list[int]:
    """Distinct cut points at the quantiles, each the first value of its upper bin."""
    ordered = sorted(values)
    edges: list[int] = []
    for k in range(1, bins):
        edge = ordered[min(len(ordered) - 1, k * len(ordered) // bins)]
        if edge > ordered[0] and (not edges or edge > edges[-1]):
            edges.append(edge)
    return edges


def _count(bins: list[BinStats], values: Sequence[Value], bads: Sequence[bool]) -> None:
    for b in bins:
        b.goods = b.bads = 0
    for value, bad in zip(values, bads, strict=True):
        for b in bins:
            if b.holds(value):
                if bad:
                    b.bads += 1
                else:
                    b.goods += 1
                break


def _merge(bins: list[BinStats], i: int) -> None:
    """Merge bin i+1 into bin i."""
    right = bins.pop(i + 1)
    bins[i].upper = right.upper
    bins[i].goods += right.goods
    bins[i].bads += right.bads


def bin_feature(values: Sequence[Value], bads: Sequence[bool], *, risk_rises: bool) -> list[BinStats]:
    """Monotone bins of one feature, in the declared direction, and the missing bin (always present).

    The direction is domain knowledge declared with the feature, not learnt: a reviewer must be able to say
    "more late payments never raise a score". Where the data disagrees, bins are pooled until they comply
    (pool-adjacent-violators), at worst into one bin, so the feature then only tells missing from present.
    Monotone bins also keep reason codes meaningful and resist overfitting the calibration sample.
    """
    present = [v for v in values if v is not None]
    edges = _quantile_edges(present, INITIAL_BINS) if present else []
    bounds = [None, *edges, None]
    bins = [BinStats(lower, upper) for lower, upper in itertools.pairwise(bounds)]
    _count(
        bins,
        [v for v in values if v is not None],
        [b for v, b in zip(values, bads, strict=True) if v is not None],
    )

    minimum = MIN_BIN_SHARE * len(present)
    while len(bins) > 1:
        small = min(range(len(bins)), key=lambda k: bins[k].count)
        if bins[small].count >= minimum:
            break
        if small == 0:
            _merge(bins, 0)
        elif small == len(bins) - 1:
            _merge(bins, small - 1)
        else:  # into the neighbour with the closer bad rate
            left = abs(bins[small - 1].bad_rate - bins[small].bad_rate)
            right = abs(bins[small + 1].bad_rate - bins[small].bad_rate)
            _merge(bins, small - 1 if left <= right else small)

    if len(bins) > 1:
        rising = risk_rises
        merged = True
        while merged and len(bins) > 1:
            merged = False
            for k in range(len(bins) - 1):
                left, right = bins[k].bad_rate, bins[k + 1].bad_rate
                if (rising and right < left) or (not rising and right > left):
                    _merge(bins, k)
                    merged = True
                    break

    missing = BinStats(None, None, missing=True)
    missing.bads = sum(1 for v, b in zip(values, bads, strict=True) if v is None and b)
    missing.goods = sum(1 for v, b in zip(values, bads, strict=True) if v is None and not b)
    bins.append(missing)

    total_goods = sum(b.goods for b in bins)
    total_bads = sum(b.bads for b in bins)
    k = len(bins)
    for stats in bins:
        if stats.count == 0:
            stats.woe = 0.0  # no evidence either way: the bin scores as the average consumer
            continue
        good_share = (stats.goods + WOE_SMOOTHING) / (total_goods + WOE_SMOOTHING * k)
        bad_share = (stats.bads + WOE_SMOOTHING) / (total_bads + WOE_SMOOTHING * k)
        stats.woe = math.log(good_share / bad_share)
    return bins


def woe_of(bins: Sequence[BinStats], value: Value) -> float:
    for b in bins:
        if b.holds(value):
            return b.woe
    raise ValueError(f"value {value!r} falls in no bin")


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems here are a dozen unknowns)."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise ArithmeticError("singular system: a feature is constant or duplicated")
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            if factor:
                for c in range(col, n + 1):
                    a[r][c] -= factor * a[col][c]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        solution[r] = (a[r][n] - sum(a[r][c] * solution[c] for c in range(r + 1, n))) / a[r][r]
    return solution


def fit_logistic(rows: Sequence[Sequence[float]], bads: Sequence[bool], iterations: int = 50) -> list[float]:
    """Coefficients [intercept, b1, ...] of P(bad) = 1 / (1 + exp(-(b0 + sum bi xi))), by Newton's method."""
    p = len(rows[0]) + 1
    beta = [0.0] * p
    design = [[1.0, *row] for row in rows]
    ys = [1.0 if bad else 0.0 for bad in bads]
    for _ in range(iterations):
        gradient = [0.0] * p
        hessian = [[0.0] * p for _ in range(p)]
        for x, y in zip(design, ys, strict=True):
            eta = sum(b * v for b, v in zip(beta, x, strict=True))
            mu = 1.0 / (1.0 + math.exp(-eta)) if eta > -30 else 0.0
            weight = mu * (1.0 - mu)
            residual = y - mu
            for i in range(p):
                gradient[i] += residual * x[i]
                wi = weight * x[i]
                row = hessian[i]
                for j in range(i, p):
                    row[j] += wi * x[j]
        for i in range(p):
            for j in range(i):
                hessian[i][j] = hessian[j][i]
            if i:  # the intercept is not shrunk
                hessian[i][i] += RIDGE * len(rows)
                gradient[i] -= RIDGE * len(rows) * beta[i]
        step = _solve(hessian, gradient)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    return beta


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
    """Probability that a random good outscores a random bad (ties count half): Mann-Whitney U / (n1 n0)."""
    order = sorted(range(len(scores)), key=lambda k: scores[k])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    n_good = sum(1 for b in bads if not b)
    n_bad = len(bads) - n_good
    if not n_good or not n_bad:
        raise ValueError("AUC needs both goods and bads")
    rank_sum_good = sum(r for r, b in zip(ranks, bads, strict=True) if not b)
    return (rank_sum_good - n_good * (n_good + 1) / 2) / (n_good * n_bad)


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
    """What calibration needs to know of a feature: its code, its declared direction, and the structural
    reason its value can be missing (features missing for the same reason share one indicator), if any."""

    code: str
    risk_rises: bool
    missing_group: str | None


@dataclass
class FittedFeature:
    code: str
    bins: list[BinStats]
    coefficient: float  # on WoE, in P(bad): negative, since WoE is evidence of good
    points: list[int]


@dataclass
class FittedModel:
    features: list[FittedFeature]
    intercept: float
    base_points: int
    # Points of each missing group's indicator, and the feature whose missing bin carries them.
    missing_points: dict[str, int]
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
) -> FittedModel:
    """Bin every feature, fit a logistic regression on WoE, and turn the coefficients into points.

    A missing value is evidence about the file, not the feature (no repayments yet, no credit line), and is
    confounded with everything else a thin file lacks. So each missing group gets its own indicator column
    instead of a WoE on the feature's slope: its points go to the missing bin of the group's first feature,
    the other members' missing bins score 0. Features whose bins pooled into one (no evidence in the declared
    direction) or whose coefficient has the wrong sign (collinearity) are dropped and the model refitted, so
    every feature's points follow its bins' evidence.
    """
    bins = {c.code: bin_feature([r[c.code] for r in rows], bads, risk_rises=c.risk_rises) for c in candidates}
    dropped: dict[str, str] = {}
    active = []
    for c in candidates:
        if sum(1 for b in bins[c.code] if not b.missing and b.count) > 1:
            active.append(c)
        else:
            dropped[c.code] = "no evidence in the declared direction: its bins pooled into one"
    while True:
        owners: dict[str, str] = {}
        for c in active:
            if c.missing_group and c.missing_group not in owners:
                missing = sum(1 for r in rows if r[c.code] is None)
                if 0 < missing < len(rows):
                    owners[c.missing_group] = c.code
        groups = list(owners)
        by_group = {c.code: c.missing_group for c in active}
        design = [
            [0.0 if r[c.code] is None else woe_of(bins[c.code], r[c.code]) for c in active]
            + [1.0 if r[owners[g]] is None else 0.0 for g in groups]
            for r in rows
        ]
        beta = fit_logistic(design, bads)
        wrong = [c for c, b in zip(active, beta[1:], strict=False) if b >= 0]
        if not wrong:
            break
        for c in wrong:
            dropped[c.code] = "wrong sign next to the other features (collinear): refitted without it"
        active = [c for c in active if c not in wrong]

    factor = pdo_factor(pdo)
    offset = pdo_offset(pdo=pdo, base_score=base_score, base_odds=base_odds)
    # ln(good:bad odds) = -(b0 + sum bi xi): every term turns into points with its sign flipped.
    missing_points = {g: round(-factor * b) for g, b in zip(groups, beta[1 + len(active) :], strict=True)}
    fitted = []
    for c, coefficient in zip(active, beta[1:], strict=False):
        group = by_group[c.code]
        points = [
            (missing_points[group] if group in owners and owners[group] == c.code else 0)
            if b.missing
            else round(-factor * coefficient * b.woe)
            for b in bins[c.code]
        ]
        fitted.append(FittedFeature(c.code, bins[c.code], coefficient, points))
    return FittedModel(
        features=fitted,
        intercept=beta[0],
        base_points=round(offset - factor * beta[0]),
        missing_points=missing_points,
        missing_owner={g: owners[g] for g in groups},
        dropped=dropped,
    )
