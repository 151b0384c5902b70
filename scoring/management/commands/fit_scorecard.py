"""manage.py fit_scorecard: fit a draft model version with optbinning and scikit-learn, with its validation
report (k-fold CV AUC, Gini, KS, Brier, calibration by decile, IV, and a one-hot baseline on the same folds).

    manage.py fit_scorecard --scorecard-version 2027.1 --as-of 2025-11-01 --fitted-by alice
    manage.py fit_scorecard --scorecard-version ext.1 --csv german.csv --target class --bad 2 \
        --fitted-by alice

The last line of output is one JSON object. The draft then needs validating, approving by a second person
and activating (manage.py scorecard_lifecycle); a model fitted on a CSV extract is never activated.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import services


class Command(BaseCommand):
    help = "Fit a draft scorecard on the portal's outcomes as of a date, or on an external CSV extract."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scorecard-version", dest="model_version", required=True, help="e.g. 2027.1")
        parser.add_argument("--name", default="Transaction-history scorecard")
        parser.add_argument("--fitted-by", required=True, help="username of the person fitting it")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--as-of", type=date.fromisoformat, help="fit on the portal's outcomes then")
        source.add_argument("--csv", type=Path, help="fit on an external extract (never activated)")
        parser.add_argument("--target", help="the CSV's outcome column")
        parser.add_argument("--bad", help="the target's value meaning a bad outcome")
        parser.add_argument(
            "--special", type=float, action="append", default=[], help="a special numeric code (repeatable)"
        )
        parser.add_argument("--folds", type=int, default=5, help="stratified k-fold, fixed seed (default 5)")
        parser.add_argument("--pdo", type=float, default=40.0, help="points to double the good:bad odds")
        parser.add_argument("--base-score", type=float, default=660.0)
        parser.add_argument("--base-odds", type=float, default=32.0, help="good:bad odds at the base score")

    def handle(self, *args, **options) -> None:
        try:
            from scoring import fitters  # the modeling extra
        except ImportError as exc:
            raise CommandError(
                f"fitting needs the modeling extra (pip install -e .[modeling]): {exc}"
            ) from exc
        user = get_user_model().objects.filter(username=options["fitted_by"]).first()
        if user is None:
            raise CommandError(f"--fitted-by: no user {options['fitted_by']!r}")
        if options["folds"] < 2:
            raise CommandError("--folds: at least 2")
        common = {
            "version": options["model_version"],
            "name": options["name"],
            "fitted_by": user,
            "folds": options["folds"],
            "pdo": options["pdo"],
            "base_score": options["base_score"],
            "base_odds": options["base_odds"],
        }
        try:
            if options["csv"]:
                if not options["target"] or options["bad"] is None:
                    raise CommandError("--csv needs --target COLUMN and --bad VALUE")
                card = fitters.fit_csv(
                    path=options["csv"],
                    target=options["target"],
                    bad=options["bad"],
                    special_codes=options["special"],
                    **common,
                )
            else:
                card = fitters.fit_portal(as_of=options["as_of"], **common)
        except services.ScoringError as exc:
            raise CommandError(str(exc)) from exc
        report = card.report
        self.stdout.write(
            f"Draft {card.version} ({card.get_source_display()}): {report['rows']:,} rows, "
            f"{report['bads']:,} bad; IV: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(report["iv"].items(), key=lambda kv: -kv[1]))
        )
        self.stdout.write(
            json.dumps(
                {
                    "version": card.version,
                    "status": card.status,
                    "source": card.source,
                    "rows": report["rows"],
                    "folds": report["folds"],
                    "cv_auc": report["cv_auc"],
                    "baseline_cv_auc": report["baseline_cv_auc"],
                    "gini": report["gini"],
                    "ks": report["ks"],
                    "brier": report["brier"],
                }
            )
        )
