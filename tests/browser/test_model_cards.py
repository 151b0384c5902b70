"""Model cards and stability in Chromium: the models list leads to the active model's card, and a run's
per-characteristic PSI opens on demand."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from scoring.models import Scorecard
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_compliance_reads_the_model_card_and_opens_a_runs_stability(sign_in, demo_world):
    active = Scorecard.objects.get(is_active=True)
    page = sign_in("compliance")
    page.get_by_role("link", name="Score models").click()
    expect(page.locator(f'tr[data-model="{active.version}"]')).to_contain_text("Active")
    page.locator(f'tr[data-model="{active.version}"] a').click()
    expect(page.locator('[data-field="approved"]')).to_contain_text("compliance2")
    expect(page.locator('[data-field="holdout-auc"]')).to_contain_text(str(active.report["holdout_auc"]))
    screenshot(page, "en", "compliance-model-card")
    page.goto(f"{demo_world}/scoring/runs/")
    details = page.locator('td[data-field="stability"] details').first
    expect(details.locator("table")).to_be_hidden()
    details.locator("summary").click()
    expect(details.locator("tbody tr").first).to_be_visible()
    screenshot(page, "en", "compliance-score-runs-stability")
