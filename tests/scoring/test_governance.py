"""Model governance (SPEC §5): fit_scorecard drafts, the lifecycle with a second person, external models never
active, every step on the trail, and PSI against a hand-computed example."""

from __future__ import annotations

import csv
import json
import math
import random
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from scoring import monitoring, services
from scoring.models import Scorecard
from tests.factories import UserFactory


def _csv(path, rows: int = 600, seed: int = 5) -> None:
    """A small extract: a numeric column with missing values and a special code (-9), a categorical one."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_card", "months_late", "housing", "outcome"])
        for k in range(rows):
            late = rng.randint(0, 24)
            housing = rng.choice(["own", "rent", "free"])
            risk = 0.05 + 0.03 * late + (0.15 if housing == "rent" else 0)
            shown = "" if k % 37 == 0 else ("-9" if k % 41 == 0 else str(late))
            writer.writerow(["X", shown, housing, "bad" if rng.random() < min(risk, 0.95) else "good"])


@pytest.fixture
def people(organisations):
    operator = organisations["operator"]
    return {
        name: UserFactory.create(username=name, role="compliance", organisation=operator)
        for name in ("fitter", "validator", "approver")
    }


def _fit_csv(tmp_path, people, version="ext.1") -> tuple[Scorecard, dict]:
    path = tmp_path / "extract.csv"
    _csv(path)
    out = StringIO()
    call_command(
        "fit_scorecard",
        f"--scorecard-version={version}",
        f"--csv={path}",
        "--target=outcome",
        "--bad=bad",
        "--special=-9",
        "--folds=3",
        "--fitted-by=fitter",
        stdout=out,
    )
    return Scorecard.objects.get(version=version), json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.django_db
def test_a_csv_extract_fits_a_draft_with_its_validation_report(tmp_path, people):
    from scoring import fitters

    card, summary = _fit_csv(tmp_path, people)
    assert {"version", "cv_auc", "baseline_cv_auc", "gini", "ks"} <= set(summary)
    assert summary["version"] == "ext.1" and card.status == "draft" and card.source == "external"
    assert card.fitted_by == people["fitter"] and not card.is_active
    report = card.report
    assert report["folds"] == 3 and len(report["cv_auc_by_fold"]) == 3
    assert 0.6 < report["cv_auc"] <= 1 and report["gini"] == pytest.approx(2 * report["cv_auc"] - 1, abs=1e-3)
    assert 0 < report["ks"] < 1 and 0 < report["brier"] < 0.25
    assert len(report["calibration"]) == 10
    assert abs(report["cv_auc"] - report["baseline_cv_auc"]) < 0.05
    # Detected: the constant column goes, one numeric and one categorical column stay.
    assert card.source_detail["numeric"] == ["months_late"]
    assert card.source_detail["categorical"] == ["housing"]
    assert report["iv"]["months_late"] > report["iv"]["housing"] > 0
    by_code = {f["code"]: f for f in card.features}
    assert any(b["special"] for b in by_code["months_late"]["bins"])
    # A single record scores, missing values, special codes and unseen categories included.
    safe = fitters.score_record(card, {"months_late": "0", "housing": "own"})
    risky = fitters.score_record(card, {"months_late": "24", "housing": "rent"})
    assert safe > risky
    assert isinstance(fitters.score_record(card, {"months_late": None, "housing": "castle"}), int)
    special = fitters.score_record(card, {"months_late": "-9", "housing": "own"})
    special_bin = next(b for b in by_code["months_late"]["bins"] if b["special"])
    own = next(b for b in by_code["housing"]["bins"] if "own" in b.get("categories", []))
    assert special == special_bin["points"] + own["points"]
    assert AuditEvent.objects.filter(action="scoring.model.fitted", requested_id="ext.1").count() == 1


@pytest.mark.django_db
def test_bad_csv_options_name_what_is_wrong(tmp_path, people):
    path = tmp_path / "extract.csv"
    _csv(path, rows=200)
    base = ["fit_scorecard", "--scorecard-version=x", f"--csv={path}", "--fitted-by=fitter", "--folds=3"]
    with pytest.raises(CommandError, match="--target"):
        call_command(*base, "--target=nope", "--bad=bad")
    with pytest.raises(CommandError, match="--bad"):
        call_command(*base, "--target=outcome", "--bad=default")
    with pytest.raises(CommandError, match="--fitted-by"):
        call_command(
            "fit_scorecard",
            "--scorecard-version=x",
            f"--csv={path}",
            "--target=outcome",
            "--bad=bad",
            "--fitted-by=ghost",
        )
    assert not Scorecard.objects.filter(version="x").exists()


@pytest.mark.django_db
def test_the_fitter_may_not_approve_and_the_trail_shows_every_step(tmp_path, people, scorecard):
    card, _ = _fit_csv(tmp_path, people, version="ext.2")
    with pytest.raises(services.GovernanceError, match="fitted"):
        services.model_validate(scorecard=card, actor=people["fitter"])
    services.model_validate(scorecard=card, actor=people["validator"])
    with pytest.raises(services.GovernanceError, match="fitted"):
        services.model_approve(scorecard=card, actor=people["fitter"])
    card.refresh_from_db()
    assert card.status == "validated" and card.approved_by is None
    services.model_approve(scorecard=card, actor=people["approver"])
    card.refresh_from_db()
    assert (card.status, card.validated_by, card.approved_by) == (
        "approved",
        people["validator"],
        people["approver"],
    )
    with pytest.raises(services.GovernanceError, match="never activated"):
        services.model_activate(scorecard=card, actor=people["approver"])
    card.refresh_from_db()
    assert card.status == "approved" and not card.is_active
    assert Scorecard.objects.get(is_active=True) == scorecard
    trail = list(
        AuditEvent.objects.filter(resource_kind="scorecard", requested_id="ext.2")
        .order_by("id")
        .values_list("action", "outcome", "actor_username")
    )
    assert trail == [
        ("scoring.model.fitted", "allowed", "fitter"),
        ("scoring.model.validated", "denied", "fitter"),
        ("scoring.model.validated", "allowed", "validator"),
        ("scoring.model.approved", "denied", "fitter"),
        ("scoring.model.approved", "allowed", "approver"),
        ("scoring.model.activated", "denied", "approver"),
    ]


@pytest.mark.django_db
def test_the_database_refuses_an_active_external_model(tmp_path, people):
    card, _ = _fit_csv(tmp_path, people, version="ext.3")
    Scorecard.objects.filter(is_active=True).update(is_active=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Scorecard.objects.filter(pk=card.pk).update(is_active=True, status="active")


def test_psi_matches_a_hand_computed_example():
    # Development 40/30/20/10 of 100, run 25/25/25/25 of 100; smoothing 0.5 per bin (totals 102 and 102).
    expected, actual = [40, 30, 20, 10], [25, 25, 25, 25]
    hand = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = (e + 0.5) / 102, (a + 0.5) / 102
        hand += (pa - pe) * math.log(pa / pe)
    # Written out: (25.5-40.5)/102*ln(25.5/40.5) + (25.5-30.5)/102*ln(25.5/30.5)
    #   + (25.5-20.5)/102*ln(25.5/20.5) + (25.5-10.5)/102*ln(25.5/10.5)
    #   = 0.0680 + 0.0088 + 0.0107 + 0.1305 = 0.2180
    assert monitoring.psi(expected, actual) == pytest.approx(hand) == pytest.approx(0.2180, abs=5e-4)
    assert monitoring.level(monitoring.psi(expected, actual)) == "warning"
    # An empty bin on either side stays finite.
    assert math.isfinite(monitoring.psi([50, 50, 0], [0, 50, 50]))
    assert monitoring.level(monitoring.psi([50, 50, 0], [0, 50, 50])) == "alert"
    assert monitoring.psi([10, 20, 30], [10, 20, 30]) == 0
    assert monitoring.level(0.05) == "stable"


@pytest.mark.django_db
def test_a_portal_model_goes_live_through_the_api_and_the_old_one_stays_readable(
    tmp_path, people, scorecard, client
):
    from portal.records import loader
    from scoring import fitters
    from scoring.quality import as_of_for
    from tests.scoring.conftest import END

    loader.load(seed=11, consumers=400, end=END)
    card = fitters.fit_portal(
        as_of=as_of_for(END), version="p.1", name="t", fitted_by=people["fitter"], folds=2
    )
    assert card.source == "portal" and card.report["rows"] > 100 and card.development["score_edges"]
    call_command("scorecard_lifecycle", "p.1", "validate", "--by=validator", stdout=StringIO())
    client.force_login(people["fitter"])
    refused = client.post("/api/v1/scoring/models/p.1/approve/")
    assert refused.status_code == 409 and "fitted" in refused.json()["detail"]
    client.force_login(people["approver"])
    assert client.post("/api/v1/scoring/models/p.1/approve/").json()["status"] == "approved"
    assert client.post("/api/v1/scoring/models/p.1/nonsense/").status_code == 404
    live = client.post("/api/v1/scoring/models/p.1/activate/").json()
    assert live["status"] == "active" and live["lifecycle"]["approved_by"] == "approver"
    assert live["lifecycle"]["review_due"]
    old = client.get(f"/api/v1/scoring/models/{scorecard.version}/").json()
    assert old["status"] == "retired" and not old["is_active"]
    assert client.get("/api/v1/scoring/models/none/").status_code == 404
    actions = list(
        AuditEvent.objects.filter(resource_kind="scorecard", outcome="allowed").values_list(
            "action", flat=True
        )
    )
    for step in ("fitted", "validated", "approved", "activated", "retired"):
        assert f"scoring.model.{step}" in actions
