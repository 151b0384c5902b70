"""Model cards on the web: every version listed for every role, a card with its source, report, bins and
lifecycle, and the lifecycle steps for compliance officers with confirmation and the four-eyes refusal."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from audit.models import AuditEvent
from scoring import services
from scoring.models import Scorecard
from tests.factories import UserFactory
from tests.scoring.conftest import SHIPPED
from tests.scoring.test_governance import _fit_csv, people  # noqa: F401  (a fixture)

ROLES = ("regulator", "shareholder", "compliance", "auditor", "admin")


def _browser(user, language: str = "en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client


@pytest.fixture
def back_to_english():
    """A Chinese page leaves Chinese active in this thread (LocaleMiddleware activates, nothing deactivates):
    put the default back so later tests render in English."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def portal_draft(people, scorecard) -> Scorecard:  # noqa: F811
    """A portal draft fitted by `fitter`, with a validation report (the shipped scorecard's features)."""
    definition = json.loads(SHIPPED.read_text(encoding="utf-8"))
    fields = {name: definition[name] for name in services.SCORECARD_FIELDS}
    report = {
        "cv_auc": 0.8123,
        "baseline_cv_auc": 0.8011,
        "gini": 0.6246,
        "ks": 0.4821,
        "brier": 0.0712,
        "folds": 5,
        "rows": 4000,
        "bads": 400,
        "baseline": "one-hot logistic regression on the same folds",
        "calibration": [
            {
                "decile": d,
                "min_score": 300 + 50 * d,
                "max_score": 340 + 50 * d,
                "consumers": 400,
                "defaults": 40,
                "default_rate": 0.1,
                "predicted_default_rate": 0.11,
            }
            for d in range(1, 11)
        ],
        "iv": {},
    }
    return services.model_store_draft(
        fitted_by=people["fitter"],
        version="p.web.1",
        source=Scorecard.Source.PORTAL,
        source_detail={"as_of": "2026-06-01"},
        report=report,
        **fields,
    )


@pytest.mark.django_db
def test_every_role_lists_every_version(organisations, portal_draft, scorecard):
    for role in ROLES:
        kind = {"regulator": "regulator", "shareholder": "shareholder"}.get(role, "operator")
        user = UserFactory.create(username=f"u-{role}", role=role, organisation=organisations[kind])
        page = _browser(user).get("/scoring/models/")
        assert page.status_code == 200, role
        html = page.content.decode()
        assert f'data-model="{portal_draft.version}"' in html and f'data-model="{scorecard.version}"' in html
        assert "0.8123" in html and 'href="/scoring/models/"' in html  # the AUC, and the menu entry


@pytest.mark.django_db
def test_a_model_card_shows_source_report_bins_and_lifecycle(people, portal_draft):  # noqa: F811
    html = _browser(people["validator"]).get(f"/scoring/models/{portal_draft.version}/").content.decode()
    assert "Portal outcomes" in html and "as_of: 2026-06-01" in html
    assert 'data-field="cv-auc">0.8123<' in html and 'data-field="baseline-auc">0.8011<' in html
    assert html.count('<tr><th scope="row">') >= 10  # calibration deciles and bins
    first = portal_draft.features[0]
    assert f'data-feature="{first["code"]}"' in html
    assert "<code>fitter</code>" in html and 'data-field="review-due">–<' in html
    assert 'action="/scoring/models/p.web.1/validate/"' in html  # the next step, for a second person
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.requested_id) == ("scoring.model.read", "p.web.1")


@pytest.mark.django_db
def test_the_fitter_sees_the_four_eyes_refusal_and_cannot_step(people, portal_draft):  # noqa: F811
    fitter = _browser(people["fitter"])
    html = fitter.get(f"/scoring/models/{portal_draft.version}/").content.decode()
    assert 'data-field="refusal"' in html and "Four eyes" in html
    assert 'action="/scoring/models/p.web.1/validate/"' not in html
    for confirm in ("", "yes"):
        refused = fitter.post(f"/scoring/models/{portal_draft.version}/validate/", {"confirm": confirm})
        assert refused.status_code == 403 and "Four eyes" in refused.content.decode()
    portal_draft.refresh_from_db()
    assert portal_draft.status == "draft" and portal_draft.validated_by is None


@pytest.mark.django_db
def test_lifecycle_through_the_pages_with_confirmation(people, portal_draft, scorecard):  # noqa: F811
    validator, approver = _browser(people["validator"]), _browser(people["approver"])
    url = f"/scoring/models/{portal_draft.version}"
    asked = validator.post(f"{url}/validate/")
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.content.decode()
    portal_draft.refresh_from_db()
    assert portal_draft.status == "draft"  # nothing happens before the confirmation
    assert validator.post(f"{url}/validate/", {"confirm": "yes"}).status_code == 302
    own = validator.post(f"{url}/approve/", {"confirm": "yes"})  # the validator is not a second person
    assert own.status_code == 403 and "validated a model may not approve" in own.content.decode()
    assert approver.post(f"{url}/approve/", {"confirm": "yes"}).status_code == 302
    # Out of order: approving an approved model is refused, named on the page.
    again = approver.post(f"{url}/approve/", {"confirm": "yes"})
    assert again.status_code == 409 and "not in the state" in again.content.decode()
    assert approver.post(f"{url}/activate/", {"confirm": "yes"}).status_code == 302
    portal_draft.refresh_from_db()
    scorecard.refresh_from_db()
    assert portal_draft.is_active and scorecard.status == "retired"
    assert (portal_draft.validated_by, portal_draft.approved_by) == (people["validator"], people["approver"])
    html = approver.get(f"{url}/").content.decode()
    assert "<code>approver</code>" in html and 'data-field="review-due">–<' not in html
    steps = set(
        AuditEvent.objects.filter(resource_kind="scorecard", outcome="allowed").values_list(
            "action", flat=True
        )
    )
    assert {"scoring.model.validated", "scoring.model.approved", "scoring.model.activated"} <= steps


@pytest.mark.django_db
def test_misuse_of_the_lifecycle_pages(organisations, tmp_path, people):  # noqa: F811
    external, _summary = _fit_csv(tmp_path, people)
    validator = _browser(people["validator"])
    url = f"/scoring/models/{external.version}"
    assert validator.post(f"{url}/validate/", {"confirm": "yes"}).status_code == 302
    assert _browser(people["approver"]).post(f"{url}/approve/", {"confirm": "yes"}).status_code == 302
    refused = validator.post(f"{url}/activate/", {"confirm": "yes"})
    assert refused.status_code == 409 and "never activated" in refused.content.decode()
    external.refresh_from_db()
    assert external.status == "approved" and not external.is_active
    assert validator.post(f"{url}/nonsense/").status_code == 404
    assert validator.post("/scoring/models/no-such-version/validate/").status_code == 404
    assert validator.get(f"{url}/validate/").status_code == 405
    assert validator.get("/scoring/models/no-such-version/").status_code == 404
    regulator = UserFactory.create(username="r", role="regulator", organisation=organisations["regulator"])
    assert _browser(regulator).post(f"{url}/validate/", {"confirm": "yes"}).status_code == 403
    assert Client().get(f"{url}/").status_code == 302  # to the sign-in page


@pytest.mark.django_db
def test_the_model_card_is_translated(people, portal_draft, back_to_english):  # noqa: F811
    html = _browser(people["validator"], "zh-hans").get(f"/scoring/models/{portal_draft.version}/").content
    text = html.decode()
    assert "模型卡" in text and "验证报告" in text and "Validation report" not in text


@pytest.mark.django_db
def test_model_card_query_count(people, portal_draft, django_assert_num_queries):  # noqa: F811
    client = _browser(people["validator"])
    url = f"/scoring/models/{portal_draft.version}/"
    client.get(url)
    # 1 session, 2 user with their organisation (menu), 3 the card with its people (one join), 4 its latest
    # finished run, 5-7 the audit event (SAVEPOINT, INSERT, RELEASE).
    with django_assert_num_queries(7):
        assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_the_shipped_card_shows_its_held_out_validation(people, scorecard):  # noqa: F811
    html = _browser(people["validator"]).get(f"/scoring/models/{scorecard.version}/").content.decode()
    assert f'data-field="holdout-auc">{scorecard.report["holdout_auc"]} ' in html
    assert 'data-field="cv-auc"' not in html and "<code>shipped-approver</code>" in html
    assert html.count('<tr><th scope="row">') >= len(scorecard.report["deciles"])
