"""Install the shipped scorecard (scoring/data/scorecard-2026.1.json, written by `manage.py calibrate_scorecard
--scorecard-version 2026.1 --output ...`), inactive: it scores nothing until compliance officers have taken it
through its lifecycle (validated, approved by a second person, activated; seed_demo does so in the demo)."""

import json
from pathlib import Path

from django.db import migrations

VERSION = "2026.1"
FILE = Path(__file__).resolve().parent.parent / "data" / f"scorecard-{VERSION}.json"
FIELDS = ("name", "pdo", "base_score", "base_odds", "base_points", "features", "missing_groups", "metrics")


def install(apps, schema_editor):
    Scorecard = apps.get_model("scoring", "Scorecard")
    definition = json.loads(FILE.read_text(encoding="utf-8"))
    assert definition["version"] == VERSION
    if Scorecard.objects.filter(version=VERSION).exists():
        return
    Scorecard.objects.create(
        version=VERSION,
        **{name: definition[name] for name in FIELDS},
    )


def uninstall(apps, schema_editor):
    apps.get_model("scoring", "Scorecard").objects.filter(version=VERSION, runs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
