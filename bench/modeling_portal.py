"""The portal's own outcomes (SPEC §5): fit on one generator seed with the optbinning fitter, measure AUC and
decile default rates on another, over several seed pairs. Worlds are loaded into DATABASE_URL's database and
rolled back (point it at a scratch database).

    python bench/modeling_portal.py [--pairs 5] [--consumers 10000] [--measure-consumers 30000]

Monotone deciles are read as they come: no sorting, no merging. With a default rate of about 4% a decile of
the upper half holds a handful of defaulters, so besides the verdict each pair prints how many adjacent
decile pairs rise, and the largest rise in binomial standard errors (|z| under 2 is what sampling noise alone
gives), so that a non-monotone pair can be told from a scorecard that misorders risk.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rises(deciles: list[dict]) -> dict:
    """Adjacent deciles whose default rate rises with the score, and the largest rise in standard errors of
    the difference of two binomial proportions."""
    count, largest = 0, 0.0
    for low, high in itertools.pairwise(deciles):
        a, b = low["default_rate"], high["default_rate"]
        if b > a:
            count += 1
            pooled = (low["defaults"] + high["defaults"]) / (low["consumers"] + high["consumers"])
            se = (pooled * (1 - pooled) * (1 / low["consumers"] + 1 / high["consumers"])) ** 0.5
            largest = max(largest, (b - a) / se if se else float("inf"))
    return {"rises": count, "largest_rise_z": round(largest, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--consumers", type=int, default=10_000, help="consumers of the fitting world")
    parser.add_argument(
        "--measure-consumers", type=int, default=30_000, help="consumers of the measuring world"
    )
    parser.add_argument("--folds", type=int, default=5)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from scoring import services

    results = []
    for k in range(options.pairs):
        train, test = 101 + 2 * k, 202 + 2 * k
        definition = services.scorecard_calibrate(
            version=f"bench.{k}",
            name="bench",
            calibration_seed=train,
            validation_seed=test,
            consumers=options.consumers,
            validation_consumers=options.measure_consumers,
            end=date(2026, 11, 1),
        )
        metrics = definition["metrics"]
        validation = metrics["validation"]
        rates = [d["default_rate"] for d in metrics["deciles"]]
        row = {
            "fit_seed": train,
            "measure_seed": test,
            "auc": metrics["auc"],
            "dev_cv_auc": metrics["development"]["cv_auc"],
            "dev_baseline_cv_auc": metrics["development"]["baseline_cv_auc"],
            "monotone": metrics["deciles_fall_monotonically"],
            **rises(metrics["deciles"]),
        }
        results.append(row)
        print(f"seed {train} -> {test}: AUC {row['auc']:.4f} (dev CV {row['dev_cv_auc']:.4f}, baseline "
              f"{row['dev_baseline_cv_auc']:.4f}); decile default rates {rates}; monotone {row['monotone']} "
              f"(rises {row['rises']}, largest z {row['largest_rise_z']:.2f}); measured on "
              f"{validation['population']:,} consumers, {validation['defaults']:,} defaults",
              flush=True)  # fmt: skip
    passing = sum(1 for r in results if r["auc"] >= 0.75)
    monotone = sum(1 for r in results if r["monotone"])
    noise = sum(1 for r in results if not r["monotone"] and r["largest_rise_z"] < 2)
    print(
        f"AUC >= 0.75 on {passing} of {len(results)} pairs; monotone deciles on {monotone} of "
        f"{len(results)}; of the others, {noise} rise by less than two standard errors only"
    )
    print(
        json.dumps(
            {
                "pairs": len(results),
                "fit_consumers": options.consumers,
                "measure_consumers": options.measure_consumers,
                "auc_at_least_075": passing,
                "monotone": monotone,
                "not_monotone_within_noise": noise,
            }
        )
    )


if __name__ == "__main__":
    main()
