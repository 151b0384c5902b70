"""manage.py calibrate_scorecard: fit a scorecard on one generated world, measure it on another, and write it.

    manage.py calibrate_scorecard --scorecard-version 2026.1 --output scoring/data/scorecard-2026.1.json
    manage.py calibrate_scorecard --scorecard-version 2026.2 --install

--install stores a draft: it goes live only through validation, approval by a second person and activation
(manage.py scorecard_lifecycle). For a draft with a fitter and a k-fold validation report, use fit_scorecard.

The worlds are loaded into the current database and rolled back afterwards (unless --keep-worlds); the load
locks the records tables while it lasts, so in production point DATABASE_URL at a scratch database.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import services

DEFAULT_END = date(2026, 11, 1)  # fixed, so the shipped scorecard can be reproduced bit for bit


class Command(BaseCommand):
    help = "Calibrate a scorecard on one synthetic seed, validate it on another, and write or install it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scorecard-version", dest="scorecard_version", required=True, help="e.g. 2026.1"
        )
        parser.add_argument("--name", default="Transaction-history scorecard")
        parser.add_argument("--seed", type=int, default=101, help="generator seed of the calibration world")
        parser.add_argument(
            "--validation-seed", type=int, default=203, help="a different seed, to measure on"
        )
        parser.add_argument("--consumers", type=int, default=30_000)
        parser.add_argument("--validation-consumers", type=int, default=30_000)
        parser.add_argument(
            "--end", type=date.fromisoformat, default=DEFAULT_END, help="last day of the worlds' data"
        )
        parser.add_argument("--pdo", type=float, default=40.0, help="points to double the good:bad odds")
        parser.add_argument("--base-score", type=float, default=660.0)
        parser.add_argument("--base-odds", type=float, default=32.0, help="good:bad odds at the base score")
        parser.add_argument("--output", type=Path, help="write the scorecard as JSON to this file")
        parser.add_argument("--install", action="store_true", help="store the scorecard in the database")
        parser.add_argument(
            "--keep-worlds", action="store_true", help="keep the loaded worlds in the database"
        )

    def handle(self, *args, **options) -> None:
        if not (options["output"] or options["install"]):
            raise CommandError("say what to do with the scorecard: --output FILE and/or --install")
        if options["seed"] == options["validation_seed"]:
            raise CommandError(
                "--seed and --validation-seed must differ: measuring on the training world leaks"
            )
        self.stdout.write(
            f"Calibrating on seed {options['seed']} ({options['consumers']:,} consumers), validating on seed "
            f"{options['validation_seed']} ({options['validation_consumers']:,}) …"
        )
        try:
            definition = services.scorecard_calibrate(
                version=options["scorecard_version"],
                name=options["name"],
                calibration_seed=options["seed"],
                validation_seed=options["validation_seed"],
                consumers=options["consumers"],
                validation_consumers=options["validation_consumers"],
                end=options["end"],
                pdo=options["pdo"],
                base_score=options["base_score"],
                base_odds=options["base_odds"],
                keep_worlds=options["keep_worlds"],
            )
        except services.ScoringError as exc:
            raise CommandError(str(exc)) from exc
        metrics = definition["metrics"]
        rates = ", ".join(f"{d['default_rate']:.2%}" for d in metrics["deciles"])
        self.stdout.write(
            f"Validation AUC {metrics['auc']:.3f} (calibration {metrics['calibration']['auc']:.3f}); "
            f"default rate by score decile, lowest first: {rates}; "
            f"falls monotonically: {metrics['deciles_fall_monotonically']}"
        )
        if metrics["dropped"]:
            self.stdout.write(f"Dropped: {', '.join(f'{k} ({v})' for k, v in metrics['dropped'].items())}")
        if options["output"]:
            options["output"].write_text(
                json.dumps(definition, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
            self.stdout.write(f"Wrote {options['output']}")
        if options["install"]:
            scorecard = services.scorecard_import(definition=definition)
            self.stdout.write(f"Installed scorecard {scorecard.version} as a {scorecard.status}")
