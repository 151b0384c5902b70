"""Applying a scorecard: points, clipping, reason codes and the snapshot hash, as SQL appended to the feature
query (what production runs) and as plain Python (the reference the tests hold the SQL to).

A reason code is a feature that cost points relative to its best bin, largest loss first, at most four. A
missing value costs points once per missing group ("no repayment history yet"), carried by the group's
owner, not once per feature that the missing history leaves empty.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db.backends.base.base import BaseDatabaseWrapper

from scoring.features import feature_ctes, snapshot_hash
from scoring.models import MAX_SCORE, MIN_SCORE, REASON_SLOTS


class Card(Protocol):
    """What applying a scorecard reads: a Scorecard row, or the same fields from its JSON file."""

    base_points: int
    features: list[dict[str, Any]]
    missing_groups: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Reason:
    code: str
    text_en: str
    text_zh: str
    points_lost: int


@dataclass(frozen=True)
class Scored:
    value: int
    features_hash: str
    reasons: tuple[Reason, ...]
    unclipped: int = 0
    # Points lost per characteristic against its best bin: they add up to max_points(card) - unclipped.
    points_lost: dict[str, int] | None = None


def max_points(card: Card) -> int:
    """The scorecard's maximum: base points plus every feature's best bin (before clipping)."""
    return card.base_points + sum(best_points(f) for f in card.features)


def codes(card: Card) -> list[str]:
    return [f["code"] for f in card.features]


def best_points(feature: Mapping[str, Any]) -> int:
    return max(b["points"] for b in feature["bins"])


def missing_losses(card: Card) -> dict[str, int]:
    """Points a missing value costs, per feature: the group's whole loss on its owner, none on the others."""
    losses = {f["code"]: 0 for f in card.features}
    for group, spec in card.missing_groups.items():
        owner = spec["owner"]
        if owner in losses:
            losses[owner] = sum(
                best_points(f) - _missing_bin(f)["points"]
                for f in card.features
                if f.get("missing_group") == group
            )
    return losses


def _missing_bin(feature: Mapping[str, Any]) -> dict[str, Any]:
    return next(b for b in feature["bins"] if b["missing"])


def points_of(feature: Mapping[str, Any], value: int | None) -> int:
    for b in feature["bins"]:
        if b["missing"]:
            if value is None:
                return b["points"]
        elif (
            value is not None
            and (b["lower"] is None or value >= b["lower"])
            and (b["upper"] is None or value < b["upper"])
        ):
            return b["points"]
    raise ValueError(f"{feature['code']}={value!r} falls in no bin")


def clip(total: int) -> int:
    return max(MIN_SCORE, min(MAX_SCORE, total))


def score_features(card: Card, features: Mapping[str, int | None]) -> Scored:
    """The reference implementation: what the SQL below computes, for one consumer."""
    total = card.base_points
    losses = missing_losses(card)
    candidates: list[tuple[int, int, Reason]] = []
    points_lost: dict[str, int] = {}
    for order, feature in enumerate(card.features):
        value = features[feature["code"]]
        total += points_of(feature, value)
        points_lost[feature["code"]] = best_points(feature) - points_of(feature, value)
        if value is None:
            group = card.missing_groups.get(feature.get("missing_group") or "")
            lost = losses[feature["code"]]
            if group and lost > 0:
                reason = Reason(feature["missing_group"], group["reason_en"], group["reason_zh"], lost)
                candidates.append((-lost, order, reason))
        else:
            lost = best_points(feature) - points_of(feature, value)
            if lost > 0:
                candidates.append(
                    (-lost, order, Reason(feature["code"], feature["reason_en"], feature["reason_zh"], lost))
                )
    candidates.sort(key=lambda c: (c[0], c[1]))
    return Scored(
        clip(total),
        snapshot_hash(features, codes(card)),
        tuple(reason for _lost, _order, reason in candidates[:REASON_SLOTS]),
        unclipped=total,
        points_lost=points_lost,
    )


def _int(value: Any) -> str:
    """An integer literal for the SQL: bins and points come from the scorecard; int() admits nothing else."""
    return str(int(value))


def _points_case(
    column: str,
    feature: Mapping[str, Any],
    transform: Callable[[int, bool], int] = lambda points, _missing: points,
) -> str:
    parts = [f"CASE WHEN {column} IS NULL THEN {_int(transform(_missing_bin(feature)['points'], True))}"]
    present = [b for b in feature["bins"] if not b["missing"]]
    for b in present[:-1]:
        parts.append(f"WHEN {column} < {_int(b['upper'])} THEN {_int(transform(b['points'], False))}")
    parts.append(f"ELSE {_int(transform(present[-1]['points'], False))} END")
    return " ".join(parts)


def _lost(best: int, if_missing: int, points: int, missing: bool) -> int:
    """Points a bin costs against the feature's best bin; a missing value costs its group's loss."""
    return if_missing if missing else best - points


def _hash_sql(connection: BaseDatabaseWrapper, card: Card, alias: str) -> str:
    text = " || ".join(
        f"'{code}=' || COALESCE(CAST({alias}.{code} AS TEXT), '') || ';'" for code in codes(card)
    )
    if connection.vendor == "postgresql":
        return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"
    return f"SHA256({text})"  # registered on every SQLite connection by Django's backend


def scored_sql(
    connection: BaseDatabaseWrapper, card: Card, *, incremental: bool = False, by_ids: bool = False
) -> tuple[str, str, dict]:
    """(ctes, select, params): `WITH <ctes> <select>` returns, for consumers lo..hi (with `by_ids`, those of
    them listed in the `ids` parameter: scoring.features.in_chunk), consumer_id, value,
    features_hash and reason_{1..4}_{code,en,zh,points} columns. Feature codes are identifiers from
    scoring.features and numbers pass through int(); texts travel as parameters."""
    for code in codes(card):
        if not code.replace("_", "").isalnum():
            raise ValueError(f"feature code {code!r} is not an identifier")
    params: dict[str, Any] = {}
    losses = missing_losses(card)
    total = " + ".join(
        [_int(card.base_points), *("(" + _points_case("f." + f["code"], f) + ")" for f in card.features)]
    )
    branches = []
    for feature in card.features:
        code = feature["code"]
        best = best_points(feature)
        params[f"{code}_en"] = feature["reason_en"]
        params[f"{code}_zh"] = feature["reason_zh"]
        group = feature.get("missing_group") or ""
        if group in card.missing_groups:
            params[f"{group}_missing_en"] = card.missing_groups[group]["reason_en"]
            params[f"{group}_missing_zh"] = card.missing_groups[group]["reason_zh"]
            missing_code, missing_en, missing_zh = (
                f"'{group}'",
                f"%({group}_missing_en)s",
                f"%({group}_missing_zh)s",
            )
        else:
            missing_code, missing_en, missing_zh = "''", "''", "''"
        lost = _points_case(f"f.{code}", feature, functools.partial(_lost, best, losses[code]))
        branches.append(
            (
                f"CASE WHEN f.{code} IS NULL THEN {missing_code} ELSE '{code}' END",
                f"CASE WHEN f.{code} IS NULL THEN {missing_en} ELSE %({code}_en)s END",
                f"CASE WHEN f.{code} IS NULL THEN {missing_zh} ELSE %({code}_zh)s END",
                lost,
            )
        )
    # One row per consumer and feature (a cross join with the feature numbers, not a UNION ALL of one
    # SELECT per feature): every CTE is then referenced once, which Citus inlines and pushes down to the
    # shards whole (deploy/SCALING.md §3.4); the reasons are ranked per consumer and folded back into one row.
    ords = " UNION ALL ".join(f"SELECT {order} AS ord" for order in range(max(1, len(branches))))

    def by_feature(index: int) -> str:
        whens = " ".join(f"WHEN {order} THEN {parts[index]}" for order, parts in enumerate(branches))
        return f"CASE f.ord {whens} END" if whens else "NULL"

    pivot = ",\n    ".join(
        f"MAX(CASE WHEN rn = {slot} AND lost > 0 THEN {column} END) AS reason_{slot}_{name}"
        for slot in range(1, REASON_SLOTS + 1)
        for column, name in (("code", "code"), ("text_en", "en"), ("text_zh", "zh"), ("lost", "points"))
    )
    features = ", ".join(f"MAX({code}) AS {code}" for code in codes(card))
    ctes = f"""{feature_ctes(connection, incremental=incremental, by_ids=by_ids)},
fx AS (SELECT f.*, {total} AS total, o.ord FROM f CROSS JOIN ({ords}) o),
lost AS (
  SELECT f.consumer_id, f.ord, f.total, {", ".join(f"f.{code}" for code in codes(card))},
    {by_feature(0)} AS code, {by_feature(1)} AS text_en, {by_feature(2)} AS text_zh, {by_feature(3)} AS lost
  FROM fx f
),
ranked AS (
  SELECT lost.*,
    ROW_NUMBER() OVER (PARTITION BY consumer_id ORDER BY CASE WHEN lost > 0 THEN 0 ELSE 1 END, lost DESC, ord)
      AS rn
  FROM lost
),
p AS (
  SELECT consumer_id, MAX(total) AS total, {features},
    {pivot}
  FROM ranked GROUP BY consumer_id
)"""  # noqa: S608
    reason_columns = ", ".join(
        f"COALESCE(p.reason_{slot}_{name}, '')" if name != "points" else f"p.reason_{slot}_points"
        for slot in range(1, REASON_SLOTS + 1)
        for name in ("code", "en", "zh", "points")
    )
    build = "jsonb_build_object" if connection.vendor == "postgresql" else "json_object"
    losses_json = (
        f"{build}("
        + ", ".join(
            f"'{f['code']}', "
            + _points_case(
                "p." + f["code"], f, functools.partial(lambda best, points, _m: best - points, best_points(f))
            )
            for f in card.features
        )
        + ")"
    )
    select = f"""SELECT p.consumer_id,
  CASE WHEN p.total < {MIN_SCORE} THEN {MIN_SCORE} WHEN p.total > {MAX_SCORE} THEN {MAX_SCORE}
    ELSE p.total END,
  {_hash_sql(connection, card, "p")},
  {reason_columns},
  p.total,
  {losses_json}
FROM p"""  # noqa: S608
    return ctes, select, params


SCORED_COLUMNS: Sequence[str] = (
    "consumer_id",
    "value",
    "features_hash",
    *(
        f"reason_{slot}_{name}"
        for slot in range(1, REASON_SLOTS + 1)
        for name in ("code", "en", "zh", "points")
    ),
    "unclipped",
    "points_lost",
)
