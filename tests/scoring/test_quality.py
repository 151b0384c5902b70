"""The shipped scorecard's quality on a world it was not calibrated on (SPEC §5): AUC >= 0.75 against the
12-month 90+ DPD outcome, and a default rate that falls monotonically across score deciles.

This is the model card's validation measurement, re-done here from scratch through the loader and the
production SQL: seed 203, 30,000 consumers (about 22,000 of whom had joined by the as-of date, 1,000 of them
defaulting). The middle deciles are thin files whose default rates differ by a few tenths of a percentage
point, so a much smaller world would measure sampling noise rather than the scorecard.
"""

import itertools

import pytest

from scoring import quality
from tests.scoring.conftest import END

VALIDATION_SEED = 203
CONSUMERS = 30_000


@pytest.mark.django_db
def test_shipped_scorecard_separates_defaulters_on_another_seed(scorecard):
    calibration_seed = scorecard.metrics["calibration"]["seed"]
    assert calibration_seed != VALIDATION_SEED
    world = quality.load_world(seed=VALIDATION_SEED, consumers=CONSUMERS, end=END)
    assert world.as_of.isoformat() == "2025-11-01"  # a year before the data ends: the outcome window follows
    assert len(world.bads) > 20_000 and sum(world.bads.values()) > 800

    measured = quality.measure(quality.world_scores(scorecard, world), world.bads)

    rates = [d["default_rate"] for d in measured["deciles"]]
    assert measured["auc"] >= 0.75, measured["auc"]
    assert all(a >= b for a, b in itertools.pairwise(rates)), rates
    assert rates[0] > 10 * rates[-1]
    # The model card reports exactly this measurement.
    assert measured["auc"] == scorecard.metrics["auc"]
    assert measured["deciles"] == scorecard.metrics["deciles"]
