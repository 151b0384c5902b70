"""What a person sees, measured in Chromium: bars drawn on the axis they label, a header that fits, no serious
accessibility violation (axe-core) on any page, and a screenshot of every page in both languages at 1440 and
390 px under $PORTAL_VAR_DIR/screenshots/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.chain import events_seal
from audit.checkpoints import checkpoint_publish
from audit.models import AuditEvent
from portal.access.models import AccessGrant
from portal.records.models import Consumer, Segment
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WIDTHS = {"desktop": 1440, "mobile": 390}
CCF = "chengdu-chongqing-consumer-finance"
DELTA = "yangtze-river-delta"

# Every bar's top, its value on the axis and its bottom, in CSS pixels of the page.
BARS_ON_AXIS = """svg => {
  const box = e => e.getBoundingClientRect();
  const grid = [...svg.querySelectorAll('line.grid')].map(l => [Number(l.dataset.value), box(l).top]);
  grid.sort((a, b) => a[0] - b[0]);
  const [zeroValue, zeroY] = grid[0], [topValue, topY] = grid[grid.length - 1];
  return {zeroValue, bars: [...svg.querySelectorAll('rect.bar')].map(bar => ({
    value: Number(bar.dataset.value), top: box(bar).top, bottom: box(bar).bottom,
    expected: zeroY - (zeroY - topY) * Number(bar.dataset.value) / topValue, zero: zeroY,
  }))};
}"""


def resize(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


def test_bars_start_on_the_zero_line_and_reach_their_value(sign_in, demo_world):
    page = sign_in("shareholder")
    delta = Segment.objects.get(slug=DELTA)
    page.goto(f"{demo_world}/segments/{delta.pk}/")
    charts = page.locator("svg.chart-grouped, svg.chart-bars")
    assert charts.count() >= 2
    measured = 0
    for index in range(charts.count()):
        found = charts.nth(index).evaluate(BARS_ON_AXIS)
        assert found["zeroValue"] == 0
        for bar in found["bars"]:
            assert abs(bar["bottom"] - bar["zero"]) <= 1, bar
            assert abs(bar["top"] - bar["expected"]) <= 1, bar
            measured += 1
    assert measured > 10
    # The legend is inside the picture, above the plot.
    legend = page.locator("svg.chart-grouped g.legend-item").last.bounding_box()
    chart = page.locator("svg.chart-grouped").bounding_box()
    assert legend is not None and chart is not None
    assert chart["y"] <= legend["y"] and legend["y"] + legend["height"] <= chart["y"] + chart["height"]
    assert legend["x"] + legend["width"] <= chart["x"] + chart["width"]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_header_is_one_row_wide_and_a_menu_narrow(sign_in, demo_world, language):
    for username in ("regulator", "auditor", "compliance", "shareholder"):
        page = sign_in(username, language=language)
        resize(page, 1440)
        page.goto(f"{demo_world}/grants/")
        header = page.locator("header.topbar").bounding_box()
        assert header is not None and header["height"] <= 60, (username, header)
        active = page.locator("nav.nav a.active")
        assert active.count() == 1 and active.get_attribute("aria-current") == "page"
        assert active.get_attribute("href") == "/grants/"
        resize(page, 390)
        header = page.locator("header.topbar").bounding_box()
        assert header is not None and header["height"] <= 60, (username, header)
        assert not page.locator("nav.nav").is_visible()
        page.locator("label.nav-toggle-label").click()
        assert page.locator("nav.nav").is_visible()
        assert page.locator("nav.nav a.active").is_visible()
        # The page itself is not wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The skip link comes first and leads to the content.
    page.goto(f"{demo_world}/grants/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


# Every shown chart's rendered width, and the rendered size of its smallest tick label, in CSS pixels.
CHART_SIZES = """() => [...document.querySelectorAll('svg.chart')]
  .filter(svg => svg.getBoundingClientRect().width > 0)
  .map(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const sizes = [...svg.querySelectorAll('text.tick, text.x-label')]
      .map(t => parseFloat(getComputedStyle(t).fontSize) * scale);
    return {narrow: svg.classList.contains('chart-narrow'), width: svg.getBoundingClientRect().width,
            right: svg.getBoundingClientRect().right, smallest: Math.min(...sizes)};
  })"""


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_charts_are_redrawn_for_a_phone(sign_in, demo_world, language):
    delta = Segment.objects.get(slug=DELTA)
    consumer = Consumer.objects.filter(memberships__segment__slug=CCF).order_by("public_id").first()
    assert consumer is not None
    pages = [("shareholder", f"/segments/{delta.pk}/"), ("shareholder", "/overview/")]
    pages.append(("regulator", f"/consumers/{consumer.public_id}/"))
    for username, path in pages:
        page = sign_in(username, language=language)
        for width, narrow in ((390, True), (1440, False)):
            resize(page, width)
            page.goto(demo_world + path)
            charts = page.evaluate(CHART_SIZES)
            assert charts, (username, path)
            for chart in charts:
                assert chart["narrow"] is narrow, (path, width, chart)
                assert chart["right"] <= width and chart["width"] <= width, (path, width, chart)
                if narrow:
                    assert chart["smallest"] >= 11, (path, chart)  # text stays readable on the phone
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, width)


def walks() -> dict[str, list[str]]:
    ccf, delta = Segment.objects.get(slug=CCF), Segment.objects.get(slug=DELTA)
    consumer = Consumer.objects.filter(memberships__segment__slug=CCF).order_by("public_id").first()
    assert consumer is not None
    grant = AccessGrant.objects.order_by("pk").first()
    # A sealed event under a signed checkpoint, so that its page shows the inclusion proof; and one that is
    # still pending.
    events_seal()
    checkpoint_publish()
    event = AuditEvent.objects.filter(chain_position__isnull=False).order_by("-pk").first()
    pending = AuditEvent.objects.order_by("-pk").first()
    assert grant is not None and event is not None and pending is not None
    return {
        "regulator": [
            "/dashboard/",
            "/consumers/",
            f"/consumers/{consumer.public_id}/",
            "/segments/",
            f"/segments/{ccf.pk}/",
            "/grants/",
            f"/grants/{grant.pk}/",
            "/grants/request/",
            "/exports/",
            "/accounts/mfa/",
        ],
        "shareholder": ["/overview/", "/segments/", f"/segments/{delta.pk}/", "/grants/"],
        "compliance": ["/grants/", f"/grants/{grant.pk}/", "/grants/request/", "/scoring/runs/"],
        "auditor": [
            "/audit/events/",
            f"/audit/events/{event.pk}/",
            f"/audit/events/{pending.pk}/",
            f"/audit/access-log/?consumer={consumer.public_id}",
            "/audit/chain/",
            "/grants/",
            "/scoring/runs/",
        ],
    }


def axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact,
                        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return result


def test_every_page_passes_axe_and_is_photographed(sign_in, demo_world, browser):
    login = browser.new_page()
    for language in ("en", "zh-hans"):
        login.goto(f"{demo_world}/accounts/login/")
        if language != "en":
            login.get_by_role("button", name="简体中文").click()
            login.wait_for_load_state()
        for kind, width in WIDTHS.items():
            resize(login, width)
            screenshot(login, language, f"login-{kind}")
    login.close()
    problems: dict[str, list[dict]] = {}
    for language in ("en", "zh-hans"):
        for username, paths in walks().items():
            page = sign_in(username, language=language)
            for path in paths:
                name = f"{username}-{path.strip('/').replace('/', '-').split('?')[0] or 'home'}"
                for kind, width in WIDTHS.items():
                    resize(page, width)
                    response = page.goto(demo_world + path)
                    assert response is not None and response.status == 200, (username, path)
                    screenshot(page, language, f"{name}-{kind}")
                    found = axe_violations(page)
                    if found:
                        problems[f"{language} {kind} {username} {path}"] = found
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


def test_the_consumer_list_sorts_by_a_column(sign_in, demo_world):
    page = sign_in("regulator")
    page.goto(f"{demo_world}/consumers/")
    header = page.locator("th.sortable", has_text="Public id")
    assert header.get_attribute("aria-sort") == "descending"  # the default order
    before = page.locator("table.consumers tbody td:first-child code").all_inner_texts()
    assert before == sorted(before, reverse=True)
    header.locator("a").click()
    page.wait_for_url(lambda url: "sort=public_id" in url)
    after = page.locator("table.consumers tbody td:first-child code").all_inner_texts()
    assert after == sorted(after) and after != before
    assert page.locator("th.sortable", has_text="Public id").get_attribute("aria-sort") == "ascending"
    page.locator("th.sortable", has_text="Province").locator("a").click()
    page.wait_for_url(lambda url: "sort=province" in url)
    assert page.locator("th.sortable", has_text="Province").get_attribute("aria-sort") == "ascending"
    total = page.locator("[data-total]").get_attribute("data-total")
    assert total is not None and int(total) == Consumer.objects.filter(memberships__segment__slug=CCF).count()


def test_a_csv_download_is_recorded_with_its_hash(sign_in, demo_world):
    import hashlib

    from portal.access.models import Export
    from portal.celery import app

    page = sign_in("regulator")
    page.goto(f"{demo_world}/segments/{Segment.objects.get(slug=CCF).pk}/")
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the live server runs in this process: the build runs in it
    try:
        page.get_by_role("button", name="Transactions (CSV)").click()
        page.wait_for_url(lambda url: url.endswith("/exports/"))
    finally:
        app.conf.task_always_eager = saved
    page.reload()
    screenshot(page, "en", "regulator-exports")
    export = Export.objects.get(requested_by__username="regulator")
    assert export.status == Export.Status.READY
    with page.expect_download() as info:
        page.locator(f"tr[data-export='{export.public_id}'] a.download").click()
    body = Path(info.value.path()).read_bytes()
    assert hashlib.sha256(body).hexdigest() == export.sha256
    event = AuditEvent.objects.filter(action="export.download").latest("id")
    assert (event.outcome, event.export_sha256, event.actor_username) == (
        "allowed",
        export.sha256,
        "regulator",
    )
    # Without export_records there is no button.
    shareholder = sign_in("shareholder")
    shareholder.goto(f"{demo_world}/segments/{Segment.objects.get(slug=DELTA).pk}/")
    assert shareholder.get_by_role("button", name="Transactions (CSV)").count() == 0
