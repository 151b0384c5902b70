"""manage.py calibrate_scorecard: fit on one seed, measure on another, write JSON, install; nothing leaks."""

import json

import pytest
from django.core.management import CommandError, call_command

from portal.records.models import Consumer
from scoring.models import Scorecard


@pytest.mark.django_db
def test_calibrate_writes_and_installs_a_scorecard_and_leaves_no_world_behind(tmp_path, scorecard):
    output = tmp_path / "card.json"
    call_command(
        "calibrate_scorecard",
        "--scorecard-version=test.1",
        "--seed=31",
        "--validation-seed=32",
        "--consumers=1500",
        "--validation-consumers=1500",
        f"--output={output}",
        "--install",
        verbosity=0,
    )
    definition = json.loads(output.read_text(encoding="utf-8"))
    assert definition["version"] == "test.1"
    assert (
        definition["metrics"]["calibration"]["seed"] == 31
        and definition["metrics"]["validation"]["seed"] == 32
    )
    assert 0.5 < definition["metrics"]["auc"] <= 1
    assert {f["group"] for f in definition["features"]} >= {"payment_history", "amounts_owed"}
    installed = Scorecard.objects.get(version="test.1")
    assert not installed.is_active and installed.base_points == definition["base_points"]
    assert Scorecard.objects.get(is_active=True) == scorecard
    assert not Consumer.objects.exists()  # both worlds were rolled back


@pytest.mark.django_db
def test_calibrate_refuses_to_validate_on_its_own_seed():
    with pytest.raises(CommandError, match="must differ"):
        call_command(
            "calibrate_scorecard", "--scorecard-version=x", "--seed=5", "--validation-seed=5", "--install"
        )
    with pytest.raises(CommandError, match="--output"):
        call_command("calibrate_scorecard", "--scorecard-version=x")
