"""fit_scorecard --as-of end to end on a small generated world: the last line is the JSON summary, a draft
is stored with its report and its fitting event, and nothing after the as-of date reaches a feature."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from portal.records import loader
from portal.records.models import Account, Consumer, Transaction
from scoring import quality
from scoring.features import cutoff_of
from scoring.models import Scorecard
from tests.factories import OrganisationFactory, UserFactory
from tests.scoring.conftest import END

AS_OF = quality.as_of_for(END)


@pytest.fixture
def fitter(db):
    operator = OrganisationFactory.create(kind="operator", short_name="op-fit")
    return UserFactory.create(username="fitter", role="compliance", organisation=operator)


def _fit(version: str) -> dict:
    out = StringIO()
    call_command(
        "fit_scorecard",
        f"--scorecard-version={version}",
        f"--as-of={AS_OF.isoformat()}",
        "--folds=2",
        "--fitted-by=fitter",
        stdout=out,
    )
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _late_repayment_after_the_as_of_date() -> Consumer:
    """A repayment made an hour after the cut-off, 200 days late on an instalment due long before the as-of
    date: it would raise max_days_late if it leaked into the features, and it is no outcome (due before)."""
    consumer = (
        Consumer.objects.filter(joined_on__lt=AS_OF, accounts__product=Account.Product.INSTALMENT_LOAN)
        .order_by("pk")
        .first()
    )
    assert consumer is not None
    account = consumer.accounts.filter(product=Account.Product.INSTALMENT_LOAN)[0]
    Transaction.objects.create(
        consumer=consumer,
        account=account,
        kind=Transaction.Kind.REPAYMENT,
        amount=Decimal("100.00"),
        occurred_at=cutoff_of(AS_OF) + timedelta(hours=1),
        channel=Transaction.Channel.values[0],
        due_date=AS_OF - timedelta(days=200),
        days_late=200,
    )
    return consumer


@pytest.mark.django_db
def test_fit_scorecard_as_of_stores_a_draft_and_sees_nothing_after_the_date(fitter):
    loader.load(seed=11, consumers=400, end=END)
    before = _fit("p.before")
    assert {"version", "cv_auc", "baseline_cv_auc", "gini", "ks"} <= set(before)
    assert before["version"] == "p.before" and before["status"] == "draft" and before["folds"] == 2
    assert 0.5 < before["cv_auc"] <= 1 and before["gini"] == pytest.approx(2 * before["cv_auc"] - 1, abs=1e-3)
    card = Scorecard.objects.get(version="p.before")
    assert (card.status, card.is_active, card.source, card.fitted_by) == ("draft", False, "portal", fitter)
    assert card.source_detail["as_of"] == AS_OF.isoformat()
    assert len(card.report["calibration"]) == 10 and card.report["iv"]
    assert card.report["baseline_cv_auc"] == before["baseline_cv_auc"]
    fitted = AuditEvent.objects.get(action="scoring.model.fitted", requested_id="p.before")
    assert fitted.actor_id == fitter.pk

    consumer = _late_repayment_after_the_as_of_date()
    # The transaction does change that consumer's features once the cut-off passes it...
    assert quality.portal_sample(AS_OF + timedelta(days=1))[0][consumer.pk]["max_days_late"] == 200
    features_then = quality.portal_sample(AS_OF)[0]
    assert features_then[consumer.pk]["max_days_late"] != 200
    # ... but a fit as of the date is the same fit: same report, same bins and points.
    after = _fit("p.after")
    assert {k: v for k, v in after.items() if k != "version"} == {
        k: v for k, v in before.items() if k != "version"
    }
    again = Scorecard.objects.get(version="p.after")
    assert again.report == card.report and again.features == card.features
    assert again.development == card.development


@pytest.mark.django_db
def test_fit_scorecard_refuses_a_date_with_too_few_consumers_and_an_existing_version(fitter):
    with pytest.raises(CommandError, match="as_of"):
        _fit("p.empty")
    loader.load(seed=11, consumers=400, end=END)
    _fit("p.once")
    with pytest.raises(CommandError, match="exists already"):
        _fit("p.once")
    assert Scorecard.objects.filter(version="p.once").count() == 1
