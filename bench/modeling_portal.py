"""The portal's own outcomes (SPEC §5): fit on one generator seed with the optbinning fitter, measure AUC and
decile default rates on another, over several seed pairs. Worlds are loaded into DATABASE_URL's database and
rolled back (point it at a scratch database).

    python bench/modeling_portal.py [--pairs 5] [--consumers 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--consumers", type=int, default=5_000)
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
            validation_consumers=options.consumers,
            end=date(2026, 11, 1),
        )
        metrics = definition["metrics"]
        rates = [d["default_rate"] for d in metrics["deciles"]]
        row = {
            "fit_seed": train,
            "measure_seed": test,
            "auc": metrics["auc"],
            "dev_cv_auc": metrics["development"]["cv_auc"],
            "dev_baseline_cv_auc": metrics["development"]["baseline_cv_auc"],
            "monotone": metrics["deciles_fall_monotonically"],
        }
        results.append(row)
        print(f"seed {train} -> {test}: AUC {row['auc']:.4f} (dev CV {row['dev_cv_auc']:.4f}, baseline "
              f"{row['dev_baseline_cv_auc']:.4f}); decile default rates {rates}; monotone {row['monotone']}",
              flush=True)  # fmt: skip
    passing = sum(1 for r in results if r["auc"] >= 0.75)
    monotone = sum(1 for r in results if r["monotone"])
    print(
        f"AUC >= 0.75 on {passing} of {len(results)} pairs; monotone deciles on {monotone} of {len(results)}"
    )
    print(json.dumps({"pairs": len(results), "auc_at_least_075": passing, "monotone": monotone}))


if __name__ == "__main__":
    main()
