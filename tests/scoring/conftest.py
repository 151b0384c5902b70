"""Fixtures of the scoring tests: the shipped scorecard, a small world, eager Celery, a compliance officer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from portal.celery import app
from portal.records import loader
from scoring import services
from scoring.models import Scorecard

END = date(2026, 11, 1)
SHIPPED = Path(services.__file__).resolve().parent / "data" / "scorecard-2026.1.json"


def shipped_active() -> Scorecard:
    """The shipped scorecard, taken through its lifecycle by two compliance officers (validated by one,
    approved and activated by the other). The data migration installs it as a draft, but a transactional
    test elsewhere may have flushed it since: it is imported again in that case (idempotent)."""
    from tests.factories import OrganisationFactory, UserFactory

    card = services.scorecard_import(definition=json.loads(SHIPPED.read_text(encoding="utf-8")))
    if card.is_active:
        return card
    operator = OrganisationFactory.create(kind="operator", short_name="shipped-op")
    validator, approver = (
        UserFactory.create(username=name, role="compliance", organisation=operator)
        for name in ("shipped-validator", "shipped-approver")
    )
    card = services.model_validate(scorecard=card, actor=validator)
    card = services.model_approve(scorecard=card, actor=approver)
    return services.model_activate(scorecard=card, actor=approver)


@pytest.fixture
def scorecard(db) -> Scorecard:
    """The shipped scorecard, active through the real lifecycle."""
    return shipped_active()


@pytest.fixture
def eager() -> Iterator[None]:
    """Run tasks in this process even when REDIS_URL is set, so chunk tasks run when their run commits."""
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def world(db) -> loader.LoadResult:
    """A small world: 60 consumers of seed 11 with two years of transactions."""
    return loader.load(seed=11, consumers=60, end=END)


@pytest.fixture
def compliance(organisations):
    from tests.factories import UserFactory

    return UserFactory.create(
        username="compliance-officer", role="compliance", organisation=organisations["operator"]
    )
