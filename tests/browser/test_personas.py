"""Each demo persona signs in through the login page, walks their pages and sees what they should; four eyes
through the screens; and the Chinese pages carry no English outside a short reviewed allow-list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from audit.chain import events_seal
from audit.checkpoints import checkpoint_publish
from portal.access import masking
from portal.access.models import AccessGrant
from portal.records.models import Consumer, Segment
from scoring.models import ScoreRun
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CCF = "chengdu-chongqing-consumer-finance"
DELTA = "yangtze-river-delta"
REVOLVING = "revolving-credit"


def in_segment(slug: str, *, not_in: str | None = None) -> Consumer:
    consumers = Consumer.objects.filter(memberships__segment__slug=slug)
    if not_in:
        consumers = consumers.exclude(memberships__segment__slug=not_in)
    return consumers.order_by("public_id").first()  # type: ignore[return-value]


def visit(page, base: str, path: str, language: str, name: str, status: int = 200):
    response = page.goto(base + path)
    assert response is not None and response.status == status, (path, response and response.status)
    screenshot(page, language, name)
    return response


def rows(page, selector: str = "main table tbody tr") -> int:
    return page.locator(selector).count()


def test_regulator_walks_dashboard_consumer_and_grant_pages(sign_in, demo_world):
    base, inside, outside = demo_world, in_segment(CCF), in_segment(DELTA, not_in=CCF)
    page = sign_in("regulator")
    assert page.url.endswith("/dashboard/")
    screenshot(page, "en", "regulator-dashboard")
    assert page.get_by_role("heading", name="Grants and requests").is_visible()
    # The organisation's grant is live, with its days left; a grant's case reference is not shown here.
    live = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    grants_card = page.locator("main .card:has(h2:text('Grants and requests'))")
    live_row = grants_card.locator("tbody tr", has_text=f"#{live.pk}")
    expect(live_row.locator("[data-state=active]")).to_have_text("In force")
    assert live_row.locator("td.num").inner_text().split()[0].isdigit()
    assert live.case_reference not in grants_card.inner_text()
    assert rows(page, "main .card:has(h2:text('Segments in scope')) tbody tr") == 1

    page.fill("#id_q", inside.resident_id)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/consumers/\?q="))
    screenshot(page, "en", "regulator-search")
    assert page.locator(f"a[href='/consumers/{inside.public_id}/']").count() == 1

    visit(page, base, "/consumers/", "en", "regulator-consumers")
    assert rows(page) > 10
    visit(page, base, f"/consumers/{inside.public_id}/", "en", "regulator-consumer")
    assert page.locator("[data-field=resident_id]").inner_text() == inside.resident_id
    assert page.locator("[data-field=phone]").inner_text() == inside.phone
    assert page.locator("svg.chart-line circle.point").count() >= 1  # the score history chart
    assert page.locator("[data-field=score]").inner_text().isdigit()
    assert rows(page, "table.transactions tbody tr") > 0
    assert page.get_by_role("heading", name="Access log").is_visible()

    page.select_option("#id_kind", "repayment")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"kind=repayment"))
    kinds = set(page.locator("table.transactions tbody tr td:nth-child(2)").all_inner_texts())
    assert kinds <= {"Repayment"}
    screenshot(page, "en", "regulator-consumer-repayments")

    visit(page, base, f"/consumers/{outside.public_id}/", "en", "regulator-out-of-scope-404", status=404)
    visit(page, base, f"/segments/{Segment.objects.get(slug=CCF).pk}/", "en", "regulator-segment")
    assert page.locator("svg.chart rect.bar").count() > 5
    visit(page, base, "/grants/", "en", "regulator-grants")
    assert rows(page, "#active tbody tr") == 1

    visit(page, base, "/grants/request/", "en", "regulator-grant-request")
    page.check("input[name=target_kind][value=segment]")
    page.select_option("#id_segment", str(Segment.objects.get(slug=DELTA).pk))
    page.check("input[name=permissions][value=view_masked_records]")
    page.fill("#id_legal_basis", "Credit Investigation Regulations, art. 38")
    page.fill("#id_case_reference", "PBC-CRC-2026-0999")
    page.fill("#id_valid_until", "2020-01-01")
    page.get_by_role("button", name="Send request").click()
    page.wait_for_load_state()
    screenshot(page, "en", "regulator-grant-request-errors")
    assert "This field is required." in page.locator(".field.has-error:has(#id_purpose)").inner_text()
    assert "cannot be in the past" in page.locator(".field.has-error:has(#id_valid_until)").inner_text()
    visit(page, base, "/audit/events/", "en", "regulator-audit-403", status=403)


def test_regulator2_without_a_grant_sees_nobody(sign_in, demo_world):
    page = sign_in("regulator2")
    screenshot(page, "en", "regulator2-dashboard")
    assert page.locator("main").get_by_text("Requested", exact=True).count() >= 1
    visit(page, demo_world, "/consumers/", "en", "regulator2-consumers")
    assert rows(page) == 0
    visit(page, demo_world, f"/consumers/{in_segment(DELTA).public_id}/", "en", "regulator2-404", status=404)


def test_shareholder_reviews_segments_without_personal_data(sign_in, demo_world):
    page = sign_in("shareholder")
    assert page.url.endswith("/overview/")
    screenshot(page, "en", "shareholder-overview")
    page.goto(f"{demo_world}/segments/")
    screenshot(page, "en", "shareholder-segments")
    assert rows(page) == 2
    for slug in (DELTA, REVOLVING):
        segment = Segment.objects.get(slug=slug)
        visit(page, demo_world, f"/segments/{segment.pk}/", "en", f"shareholder-segment-{slug}")
        # Three charts, each drawn wide and narrow; the narrow pictures are hidden at this width.
        assert page.locator("svg.chart:not(.chart-narrow)").count() == 3
        # Every score band is drawn: a bar, or a hatched band where it is withheld.
        assert page.locator("svg.chart-bars rect.bar, svg.chart-bars rect.withheld").count() > 5
        text = page.locator("body").inner_text()
        assert not re.search(r"\b\d{17}[\dX]\b", text)  # no resident ID
        assert not re.search(r"\b1\d{10}\b", text)  # no mobile number
        assert not re.search(r"\bC[0-9A-Z]{16}\b", text)  # no public id
    visit(
        page,
        demo_world,
        f"/segments/{Segment.objects.get(slug=CCF).pk}/",
        "en",
        "shareholder-404",
        status=404,
    )
    visit(
        page, demo_world, f"/consumers/{in_segment(DELTA).public_id}/", "en", "shareholder-consumer-404", 404
    )
    visit(page, demo_world, "/dashboard/", "en", "shareholder-dashboard-403", status=403)


def test_auditor_searches_events_and_downloads_a_checkpoint(sign_in, demo_world):
    consumer = in_segment(CCF)
    regulator = sign_in("regulator")
    visit(regulator, demo_world, f"/consumers/{consumer.public_id}/", "en", "regulator-consumer-for-audit")
    events_seal()
    checkpoint = checkpoint_publish()
    assert checkpoint is not None

    page = sign_in("auditor")
    assert page.url.endswith("/audit/events/")
    screenshot(page, "en", "auditor-events")
    assert rows(page) > 5
    page.fill("#id_actor", "regulator")
    page.fill("#id_consumer", consumer.public_id)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"actor=regulator"))
    screenshot(page, "en", "auditor-events-filtered")
    assert rows(page) >= 1
    assert set(page.locator("table.events tbody td:nth-child(3)").all_inner_texts()) == {"regulator"}

    page.fill("#id_consumer", "not an id")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert "Not a consumer public id." in page.locator(".field.has-error").inner_text()

    visit(page, demo_world, f"/audit/access-log/?consumer={consumer.public_id}", "en", "auditor-access-log")
    assert "consumer.read" in page.locator("table.events").inner_text()
    visit(page, demo_world, "/audit/chain/", "en", "auditor-chain")
    assert page.locator("[data-figure=checkpoint]").inner_text() == f"#{checkpoint.chain_position}"
    with page.expect_download() as download:
        page.locator(f"a[href='/audit/checkpoints/{checkpoint.chain_position}/download/']").click()
    assert download.value.suggested_filename == f"audit-checkpoint-{checkpoint.chain_position}.json"
    visit(page, demo_world, "/scoring/runs/", "en", "auditor-score-runs")
    assert page.locator("button", has_text="Start").count() == 0


def test_four_eyes_through_the_screens(sign_in, demo_world):
    pending = AccessGrant.objects.get(requested_by__username="regulator2", status="requested")
    compliance = sign_in("compliance")
    assert compliance.url.endswith("/grants/")
    screenshot(compliance, "en", "compliance-grants")

    # compliance asks on behalf of a state shareholder…
    visit(compliance, demo_world, "/grants/request/", "en", "compliance-grant-request")
    compliance.select_option("#id_grantee_organisation", label="Provincial State Assets Operation Co.")
    compliance.check("input[name=target_kind][value=segment]")
    compliance.select_option("#id_segment", str(Segment.objects.get(slug="cash-loans").pk))
    compliance.check("input[name=permissions][value=view_aggregates]")
    compliance.fill("#id_purpose", "Shareholder portfolio review of cash loans.")
    compliance.fill("#id_legal_basis", "Joint-venture shareholder agreement, cl. 9.2")
    compliance.fill("#id_case_reference", "SH-B-2026-CASH")
    compliance.fill("#id_valid_until", "2027-06-30")
    compliance.get_by_role("button", name="Send request").click()
    compliance.wait_for_url(re.compile(r"/grants/$"))
    own = AccessGrant.objects.get(case_reference="SH-B-2026-CASH")
    own_row = compliance.locator(f"tr[data-grant-id='{own.pk}']")
    assert own_row.locator("[data-own-request=true]").is_visible()
    assert own_row.locator("button[name=approve]").count() == 0  # …and cannot approve it

    # …but approves regulator2's request.
    row = compliance.locator(f"tr[data-grant-id='{pending.pk}']")
    row.locator("button[name=approve]").click()
    # A confirmation step, with the grant's terms and the note.
    compliance.wait_for_url(re.compile(rf"/grants/{pending.pk}/approve/$"))
    screenshot(compliance, "en", "compliance-confirm-approval")
    compliance.fill("#id_note", "Scope and purpose are proportionate.")
    compliance.get_by_role("button", name="Confirm approval").click()
    compliance.wait_for_url(re.compile(r"/grants/$"))
    screenshot(compliance, "en", "compliance-approved")
    assert compliance.locator(f"#active tr[data-grant-id='{pending.pk}']").count() == 1

    checker = sign_in("compliance2")
    row = checker.locator(f"tr[data-grant-id='{own.pk}']")
    row.locator("button[name=approve]").click()
    checker.get_by_role("button", name="Confirm approval").click()
    checker.wait_for_url(re.compile(r"/grants/$"))
    screenshot(checker, "en", "compliance2-approved")
    own.refresh_from_db()
    assert own.status == "approved"
    assert own.decided_by is not None and own.decided_by.username == "compliance2"

    # regulator2's approved grant shows masked records only.
    consumer = in_segment(DELTA)
    regulator2 = sign_in("regulator2")
    visit(regulator2, demo_world, f"/consumers/{consumer.public_id}/", "en", "regulator2-masked-consumer")
    masked = masking.identity(consumer, masked=True)
    assert regulator2.locator("[data-masked=true]").is_visible()
    assert regulator2.locator("[data-field=resident_id]").inner_text() == masked["resident_id"]
    assert regulator2.locator("[data-field=phone]").inner_text() == masked["phone"]
    assert regulator2.locator("[data-field=name]").inner_text() == masked["name"]


def test_compliance_starts_a_score_run(sign_in, demo_world):
    page = sign_in("compliance")
    visit(page, demo_world, "/scoring/runs/", "en", "compliance-score-runs")
    assert rows(page) >= 1
    page.select_option("#id_kind", "incremental")
    page.get_by_role("button", name="Start").click()
    page.wait_for_load_state()
    assert "No transactions have arrived" in page.locator(".field.has-error").inner_text()
    page.select_option("#id_kind", "full")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/scoring/runs/$"))
    screenshot(page, "en", "compliance-score-run-started")
    assert page.locator("table[data-running=true]").count() == 1
    assert page.locator("tbody tr").first.locator("progress").count() == 1


@pytest.mark.redis
@pytest.mark.worker
def test_score_run_progress_updates_live(sign_in, demo_world, request):
    """The page polls the run's progress: a run started with no worker shows as running; once a worker
    takes its chunks the row turns finished without a reload."""
    page = sign_in("compliance")
    visit(page, demo_world, "/scoring/runs/", "en", "compliance-score-runs-before")
    page.select_option("#id_kind", "full")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/scoring/runs/$"))
    row = page.locator("tbody tr").first
    assert row.locator("[data-field=status]").inner_text() == "Running"
    page.evaluate("() => { window.unreloaded = true; }")
    request.getfixturevalue("celery_worker_process")
    expect(row.locator("[data-field=status]")).to_have_text("Finished", timeout=120_000)
    expect(page.locator("table[data-progress-url]")).to_have_attribute("data-running", "false")
    assert row.locator("progress").evaluate("bar => bar.value") == 1
    assert page.evaluate("() => window.unreloaded === true")  # updated in place, not reloaded
    screenshot(page, "en", "compliance-score-run-finished")


def test_score_run_progress_is_polled_every_five_seconds_only_while_a_run_is_running(sign_in, demo_world):
    """On the page's own clock (Playwright's fake timers), so the test waits for nothing."""
    page = sign_in("compliance")
    page.clock.install()
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "progress.json" in request.url else None)
    visit(page, demo_world, "/scoring/runs/", "en", "compliance-score-runs-idle")
    expect(page.locator("table[data-progress-url]")).to_have_attribute("data-running", "false")
    page.clock.run_for(60_000)
    page.evaluate("() => true")
    assert polls == []  # nothing running: no polling at all

    page.select_option("#id_kind", "full")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/scoring/runs/$"))
    expect(page.locator("table[data-progress-url]")).to_have_attribute("data-running", "true")
    page.clock.run_for(4_900)
    page.evaluate("() => true")
    assert polls == []  # not before five seconds
    with page.expect_response(lambda response: "progress.json" in response.url):
        page.clock.run_for(200)
    assert len(polls) == 1
    with page.expect_response(lambda response: "progress.json" in response.url):
        page.clock.run_for(5_000)
    assert len(polls) == 2

    # Once no run is running, the script stops asking.
    ScoreRun.objects.filter(status=ScoreRun.Status.RUNNING).update(status=ScoreRun.Status.FAILED)
    with page.expect_response(lambda response: "progress.json" in response.url):
        page.clock.run_for(5_000)
    expect(page.locator("table[data-progress-url]")).to_have_attribute("data-running", "false")
    page.clock.run_for(60_000)
    page.evaluate("() => true")
    assert len(polls) == 3


# Words that may appear on a Chinese page: the currency code, algorithm, file format and brand names in data.
# PSI (population stability index) and the receipt download's format name, c2sp.org/tlog-proof (.zip), are
# written as analysts and the C2SP specifications write them.
ALLOWED_ENGLISH = {
    "CNY",
    "SHA",
    "CSV",
    "KTV",
    "OPPO",
    "vivo",
    "PSI",
    "c2sp",
    "org",
    "sp",
    "tlog",
    "proof",
    "zip",
}
VISIBLE_TEXT = """() => {
  const copy = document.body.cloneNode(true);
  // Identifiers (usernames, public ids, hashes, action codes) are in <code>; recorded free text (purposes,
  // case notes, organisation names as recorded) in .content; the language button names itself in English.
  copy.querySelectorAll('code, .content, [lang="en"], script').forEach(e => e.remove());
  return copy.textContent;
}"""


def test_chinese_pages_have_no_english(sign_in, demo_world):
    consumer = in_segment(CCF)
    delta = Segment.objects.get(slug=DELTA)
    walks = {
        "regulator": [
            "/dashboard/",
            "/consumers/",
            f"/consumers/{consumer.public_id}/",
            "/grants/",
            "/grants/request/",
            f"/segments/{Segment.objects.get(slug=CCF).pk}/",
            "/accounts/mfa/",
        ],
        "shareholder": ["/overview/", "/segments/", f"/segments/{delta.pk}/", "/grants/"],
        "compliance": ["/grants/", "/grants/request/", "/scoring/runs/"],
        "auditor": ["/audit/events/", f"/audit/access-log/?consumer={consumer.public_id}", "/audit/chain/"],
    }
    found: dict[str, set[str]] = {}
    for username, paths in walks.items():
        page = sign_in(username, language="zh-hans")
        for path in paths:
            name = f"{username}-{path.strip('/').replace('/', '-').split('?')[0] or 'home'}"
            visit(page, demo_world, path, "zh-hans", name)
            assert page.locator("html").get_attribute("lang") == "zh-hans"
            words = set(re.findall(r"[A-Za-z]{2,}", page.evaluate(VISIBLE_TEXT))) - ALLOWED_ENGLISH
            if words:
                found[path] = words
    assert not found, found
