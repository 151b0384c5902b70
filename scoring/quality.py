"""Measuring a scorecard on a generated world without leakage (SPEC §5).

The outcome is "a repayment due in the 12 months after the as-of date was paid 90+ days late", read from the
generator; features see only transactions before the as-of date and come from the production SQL. The
population is every consumer who had joined before the as-of date: someone who did not exist yet cannot be
scored then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import connection
from django.db.models import Max, Min

from portal.records import loader, synthetic
from portal.records.models import Consumer, Transaction
from scoring import calibration
from scoring.features import Window, cutoff_of, features_sql
from scoring.scorecards import Card, scored_sql

OUTCOME_MONTHS = 12


def as_of_for(end: date) -> date:
    """The as-of date of a world ending at `end`: a full outcome window (12 months) must follow it."""
    return date(end.year - OUTCOME_MONTHS // 12, end.month, min(end.day, 28))


@dataclass
class World:
    """A generated world loaded into the database: its consumer id range and, per consumer id in the
    population, whether they defaulted within the outcome window."""

    seed: int
    consumers: int
    end: date
    as_of: date
    lo: int
    hi: int
    bads: dict[int, bool] = field(default_factory=dict)

    @property
    def window(self) -> Window:
        return Window(cutoff=cutoff_of(self.as_of))

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "consumers_generated": self.consumers,
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "population": len(self.bads),
            "defaults": sum(self.bads.values()),
            "default_rate": round(sum(self.bads.values()) / max(len(self.bads), 1), 4),
        }


def load_world(*, seed: int, consumers: int, end: date) -> World:
    """Load consumers 0..consumers-1 of world `seed` (portal.records.loader) and read their outcomes from the
    generator. The ids are the range the load added, so the world must not be in the database already."""
    before = Consumer.objects.aggregate(top=Max("id"))["top"] or 0
    result = loader.load(seed=seed, consumers=consumers, end=end)
    if result.skipped_chunks:
        raise loader.LoadError(f"world {seed} is partly in the database already: measure it on a fresh one")
    ids = dict(Consumer.objects.filter(id__gt=before).values_list("public_id", "id"))
    as_of = as_of_for(end)
    world = World(seed, consumers, end, as_of, lo=min(ids.values()), hi=max(ids.values()))
    for row in synthetic.generate(seed, 0, consumers, end):
        if row.joined_on < as_of:
            world.bads[ids[row.public_id]] = synthetic.defaulted_within(row, as_of, OUTCOME_MONTHS)
    return world


def world_features(world: World) -> dict[int, dict[str, int | None]]:
    """Features of the world's population as of its as-of date, by the production SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            features_sql(connection), {"lo": world.lo, "hi": world.hi, **world.window.params(connection)}
        )
        columns = [d[0] for d in cursor.description][1:]
        return {
            row[0]: dict(zip(columns, row[1:], strict=True))
            for row in cursor.fetchall()
            if row[0] in world.bads
        }


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def portal_sample(as_of: date) -> tuple[dict[int, dict[str, int | None]], dict[int, bool]]:
    """The portal's own development sample as of a date: features of every consumer who had joined before
    it, from transactions before it (production SQL), and the outcome in the 12 months after it: a repayment
    due in (as_of, as_of + 12 months] paid 90 or more days late. Nothing after as_of reaches a feature."""
    horizon = add_months(as_of, OUTCOME_MONTHS)
    population = Consumer.objects.filter(joined_on__lt=as_of)
    bounds = population.aggregate(lo=Min("id"), hi=Max("id"))
    if bounds["lo"] is None:
        return {}, {}
    members = set(population.values_list("id", flat=True))
    bad_ids = set(
        Transaction.objects.filter(
            consumer_id__in=members,
            kind=Transaction.Kind.REPAYMENT,
            due_date__gt=as_of,
            due_date__lte=horizon,
            days_late__gte=90,
        ).values_list("consumer_id", flat=True)
    )
    window = Window(cutoff=cutoff_of(as_of))
    features: dict[int, dict[str, int | None]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            features_sql(connection), {"lo": bounds["lo"], "hi": bounds["hi"], **window.params(connection)}
        )
        columns = [d[0] for d in cursor.description][1:]
        for row in cursor.fetchall():
            if row[0] in members:
                features[row[0]] = dict(zip(columns, row[1:], strict=True))
    return features, {i: i in bad_ids for i in features}


def world_scores(card: Card, world: World) -> dict[int, int]:
    """Scores of the world's population as of its as-of date, by the production scoring SQL."""
    ctes, select, params = scored_sql(connection, card)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH {ctes} {select}",
            {**params, **world.window.params(connection), "lo": world.lo, "hi": world.hi},
        )
        return {row[0]: row[1] for row in cursor.fetchall() if row[0] in world.bads}


def measure(scores: dict[int, int], bads: dict[int, bool]) -> dict[str, Any]:
    """AUC (probability that a non-defaulter outscores a defaulter) and default rates by score decile."""
    ids: Sequence[int] = sorted(bads)
    values = [scores[i] for i in ids]
    outcomes = [bads[i] for i in ids]
    deciles = calibration.decile_default_rates(values, outcomes, ids)
    return {
        "auc": round(calibration.auc(values, outcomes), 4),
        "deciles": deciles,
        "deciles_fall_monotonically": calibration.falls_monotonically(deciles),
    }
