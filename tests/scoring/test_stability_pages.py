"""Population stability on the score-run page and the model card: each run's total PSI and level, per
characteristic on demand, and a drifted run's alert on the audit trail."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from audit.models import AuditEvent
from scoring import monitoring, services
from scoring.models import CreditScore, ScoreRun

pytestmark = pytest.mark.usefixtures("eager")


def _run(django_capture_on_commit_callbacks, requested_by) -> ScoreRun:
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_run_start(kind="full", requested_by=requested_by)
    run.refresh_from_db()
    return run


@pytest.fixture
def back_to_english():
    """A Chinese page leaves Chinese active in this thread (LocaleMiddleware activates, nothing deactivates):
    put the default back so later tests render in English."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def test_a_drifted_run_shows_its_alert_and_writes_it_to_the_trail(
    world, scorecard, compliance, django_capture_on_commit_callbacks
):
    # The development sample had every score below 301; the world's consumers score above it.
    scorecard.development = {"score_edges": [301], "score_counts": [1000, 0]}
    scorecard.save(update_fields=["development"])
    run = _run(django_capture_on_commit_callbacks, compliance)
    assert run.monitoring["level"] == "alert" and run.monitoring["psi"] >= 0.25
    alert = AuditEvent.objects.get(action="scoring.run.psi_alert", requested_id=str(run.pk))
    assert alert.actor_id == compliance.pk and str(run.monitoring["psi"]) in alert.purpose

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(compliance)
    html = client.get("/scoring/runs/").content.decode()
    row = html[html.index(f'data-run-id="{run.pk}"') :]
    row = row[: row.index("</tr>\n      \n") if "</tr>\n      \n" in row else len(row)]
    assert f"PSI {run.monitoring['psi']}" in row and 'data-level="alert"' in row
    assert "<details><summary>Per characteristic</summary>" in row
    for code, figures in run.monitoring["features"].items():
        assert re.search(
            rf'data-characteristic="{code}"><th scope="row">[^<]+</th><td class="num">{figures["psi"]}<', row
        )
    card = client.get(f"/scoring/models/{scorecard.version}/").content.decode()
    assert f"#{run.pk}" in card and 'data-level="alert"' in card


def test_a_stable_run_writes_no_drift_event_and_shows_its_level(
    world, scorecard, compliance, django_capture_on_commit_callbacks, back_to_english
):
    first = _run(django_capture_on_commit_callbacks, compliance)
    # Take the first run's scores as the development sample: the same population's total PSI is 0.
    scores = list(CreditScore.objects.filter(run=first).values_list("value", flat=True))
    edges = monitoring.score_edges(scores)
    scorecard.development = {"score_edges": edges, "score_counts": monitoring.band_counts(scores, edges)}
    scorecard.save(update_fields=["development"])
    second = _run(django_capture_on_commit_callbacks, compliance)
    assert second.monitoring["psi"] == 0
    # The level is the worst of the total and the characteristics; an event exactly when it is not stable.
    level = second.monitoring["level"]
    assert level == monitoring.level(max(f["psi"] for f in second.monitoring["features"].values()))
    drift = AuditEvent.objects.filter(requested_id=str(second.pk), action__startswith="scoring.run.psi_")
    expected = [] if level == "stable" else [f"scoring.run.psi_{level}"]
    assert list(drift.values_list("action", flat=True)) == expected
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(compliance)
    html = client.get("/scoring/runs/").content.decode()
    assert f'data-level="{level}"' in html and "各特征" in html
