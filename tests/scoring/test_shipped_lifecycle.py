"""The shipped scorecard goes live only through its lifecycle: the data migration installs a draft,
seed_demo has it validated by one compliance officer and approved and activated by another, each step on
the trail; no other code path makes a scorecard active."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command

from audit.models import AuditEvent
from scoring import services
from scoring.models import Scorecard
from tests.factories import OrganisationFactory, UserFactory
from tests.scoring.conftest import SHIPPED

ROOT = Path(__file__).resolve().parents[2]
WRITES = {"update", "create", "get_or_create", "update_or_create", "bulk_create", "Scorecard"}


@pytest.mark.django_db
def test_the_data_migration_installs_an_inactive_draft():
    Scorecard.objects.filter(version="2026.1", runs__isnull=True).delete()
    migration = importlib.import_module("scoring.migrations.0002_default_scorecard")
    migration.install(apps, None)
    card = Scorecard.objects.get(version="2026.1")
    assert (card.is_active, card.status, card.activated_at) == (False, "draft", None)
    assert not Scorecard.objects.filter(is_active=True).exists()


@pytest.mark.django_db
def test_seed_demo_takes_the_shipped_scorecard_through_its_lifecycle_with_two_people():
    call_command("seed_demo", "--consumers", "60", verbosity=0)
    card = Scorecard.objects.select_related("validated_by", "approved_by", "activated_by").get(is_active=True)
    assert card.version == "2026.1" and card.status == "active"
    assert card.validated_by and card.approved_by and card.activated_by
    assert (card.validated_by.username, card.approved_by.username, card.activated_by.username) == (
        "compliance",
        "compliance2",
        "compliance2",
    )
    assert card.validated_at and card.approved_at and card.activated_at
    assert card.validated_at <= card.approved_at <= card.activated_at
    assert (
        card.report["holdout_auc"] == card.metrics["auc"]
        and card.report["holdout"]["seed"] != (card.metrics["calibration"]["seed"])
    )
    steps = list(
        AuditEvent.objects.filter(resource_kind="scorecard", requested_id="2026.1")
        .order_by("id")
        .values_list("action", "outcome", "actor_username")
    )
    assert steps == [
        ("scoring.model.validated", "allowed", "compliance"),
        ("scoring.model.approved", "allowed", "compliance2"),
        ("scoring.model.activated", "allowed", "compliance2"),
    ]
    call_command("seed_demo", "--consumers", "60", verbosity=0)  # again: nothing new
    assert AuditEvent.objects.filter(resource_kind="scorecard").count() == 3


@pytest.mark.django_db
def test_one_officer_alone_cannot_put_an_imported_scorecard_live():
    card = services.scorecard_import(definition=json.loads(SHIPPED.read_text(encoding="utf-8")))
    Scorecard.objects.filter(pk=card.pk).update(status="draft", is_active=False)
    card.refresh_from_db()
    operator = OrganisationFactory.create(kind="operator", short_name="op-alone")
    alone = UserFactory.create(username="alone", role="compliance", organisation=operator)
    card = services.model_validate(scorecard=card, actor=alone)
    with pytest.raises(services.GovernanceError, match="validated"):
        services.model_approve(scorecard=card, actor=alone)
    with pytest.raises(services.GovernanceError):
        services.model_activate(scorecard=card, actor=alone)  # validated, not approved
    card.refresh_from_db()
    assert card.status == "validated" and not card.is_active
    refused = AuditEvent.objects.filter(resource_kind="scorecard", outcome="denied", actor_username="alone")
    assert set(refused.values_list("action", flat=True)) == {
        "scoring.model.approved",
        "scoring.model.activated",
    }
    # Importing again never activates, and there is no switch that would.
    with pytest.raises(TypeError):
        services.scorecard_import(definition={}, activate=True)  # type: ignore[call-arg]
    assert not services.scorecard_import(definition=json.loads(SHIPPED.read_text(encoding="utf-8"))).is_active


def _writes_is_active_true(path: Path) -> list[int]:
    """Lines where a call that writes rows (create, update, a model constructor...) passes is_active=True."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in WRITES:
            continue
        for keyword in node.keywords:
            if keyword.arg == "is_active" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(node.lineno)
    return found


def test_only_the_activate_service_writes_an_active_scorecard():
    offenders = {}
    sources = [
        *(ROOT / "scoring").rglob("*.py"),
        *(ROOT / "portal").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    for path in sources:
        lines = _writes_is_active_true(path)
        if lines:
            offenders[str(path.relative_to(ROOT))] = lines
    # scoring/services.py: _scorecard_activate alone; user accounts (portal/accounts) are another model.
    assert set(offenders) <= {
        "scoring/services.py",
        *(p for p in offenders if p.startswith("portal/accounts/")),
    }
    assert len(offenders.get("scoring/services.py", [])) == 1
    assert Scorecard not in admin.site._registry  # no admin screen that could tick the box
