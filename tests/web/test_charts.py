"""The SVG charts: nice ticks, numbers in the page's language, and marks drawn on the axis they label."""

from __future__ import annotations

import itertools
import re

import pytest
from django.utils import translation

from portal.web import charts


def attrs(svg: str, css: str) -> list[dict[str, str]]:
    found = []
    for tag in re.findall(rf'<(?:rect|line|circle)[^>]*class="{css}"[^>]*>', svg):
        found.append(dict(re.findall(r'([a-z0-9-]+)="([^"]*)"', tag)))
    return found


def axis(svg: str) -> tuple[float, float, float, float]:
    """(value, y) of the lowest and highest gridline."""
    lines = [(float(a["data-value"]), float(a["y1"])) for a in attrs(svg, "grid(?: baseline)?")]
    low, high = min(lines), max(lines)
    return low[0], low[1], high[0], high[1]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 850, [0, 200, 400, 600, 800, 1000]),
        (0, 8.4, [0, 2, 4, 6, 8, 10]),
        (0, 237_000, [0, 50_000, 100_000, 150_000, 200_000, 250_000]),
        (0, 13, [0, 5, 10, 15]),
        (0, 11, [0, 2.5, 5, 7.5, 10, 12.5]),
    ],
)
def test_ticks_are_nice_numbers_covering_the_data(low, high, expected):
    assert charts.nice_ticks(low, high) == expected


def test_a_fixed_range_keeps_its_ticks_inside():
    assert charts.nice_ticks(300, 850, 6, cover=False) == [300, 400, 500, 600, 700, 800]


def test_numbers_follow_the_language():
    with translation.override("en"):
        assert charts.format_number(250_000, kind="cny", step=50_000) == "250k"
        assert charts.format_number(1_500_000, kind="cny", step=500_000) == "1.5M"
        # One unit per axis: 500k on an axis up to 2M is written 0.5M.
        assert charts.format_number(500_000, kind="cny", step=500_000, top=2_000_000) == "0.5M"
        assert charts.format_number(3_000_000, kind="cny", step=1_000_000) == "3M"
        assert charts.format_month("2025-11") == "2025-11"
    with translation.override("zh-hans"):
        assert charts.format_number(250_000, kind="cny", step=50_000) == "25万"
        assert charts.format_number(25_000, kind="cny", step=5_000) == "2.5万"
        assert charts.format_number(300_000_000, kind="cny", step=100_000_000) == "3亿"
        assert charts.format_number(0, kind="cny", step=50_000) == "0"
        assert charts.format_month("2025-11") == "2025年11月"
    # One number of decimals per axis: 5.0% next to 7.5%, never 5% next to 7.50%.
    ticks = charts.nice_ticks(0, 8.4, 4)
    step = ticks[1] - ticks[0]
    assert [charts.format_number(t, kind="percent", step=step) for t in ticks] == [
        "0.0%",
        "2.5%",
        "5.0%",
        "7.5%",
        "10.0%",
    ]


def pictures(html: str) -> dict[str, str]:
    """The chart box's two pictures, by variant: the wide one and the one redrawn for phones."""
    found = {}
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        found["narrow" if "chart-narrow" in svg.split(">", 1)[0] else "wide"] = svg
    assert set(found) == {"wide", "narrow"} and html.count("<svg ") == 2
    return found


def bars_on_axis(svg: str) -> list[tuple[float, float, float]]:
    """(value, bar top, where the axis puts the value) for every bar; and each bar ends on the zero line."""
    zero_value, zero_y, top_value, top_y = axis(svg)
    assert zero_value == 0
    found = []
    for bar in attrs(svg, "bar"):
        value, y, height = float(bar["data-value"]), float(bar["y"]), float(bar["height"])
        assert abs(y + height - zero_y) < 0.01, "a bar starts above or below zero"
        found.append((value, y, zero_y - (zero_y - top_y) * value / top_value))
    return found


def test_grouped_bars_start_at_zero_and_reach_their_value():
    svg = charts.grouped_bar_chart(
        ["2026-01", "2026-02"],
        [
            ("Wallet", [120_000, 95_000]),
            ("Cash loan", [None, 40_000]),
            ("A product with a long name", [0, 5]),
        ],
        label="Volume",
        withheld_label="withheld",
        y_title="Amount (CNY)",
        x_title="Month",
        kind="cny",
    )
    for variant, picture in pictures(svg).items():
        marks = bars_on_axis(picture)
        assert len(marks) == 5, variant
        for _value, top, expected in marks:
            assert abs(top - expected) < 0.01, variant
        # The legend sits above the plot, inside the picture (wrapped onto more rows when narrow).
        width, height = map(float, re.search(r'viewBox="0 0 (\d+) (\d+)"', picture).groups())  # type: ignore[union-attr]
        legend = re.findall(r'<g class="legend-item"><rect x="([^"]+)" y="([^"]+)"', picture)
        _zero, _zy, _top, top_y = axis(picture)
        assert legend and all(float(y) >= 0 and float(y) + 14 <= top_y for _x, y in legend) and top_y < height
        assert all(float(x) < width for x, _y in legend)
        assert picture.count('class="withheld"') == 1
        assert "<title>2026-01 · Cash loan: withheld</title>" in picture
    assert svg.count("<caption>Volume</caption>") == 1  # the table alternative, once


def test_bars_and_the_reference_line_share_the_axis():
    svg = charts.bar_chart(
        [charts.Bar("2026-01", None), charts.Bar("2026-02", 6.0)],
        label="Delinquency",
        withheld_label="withheld",
        y_title="Rate (%)",
        x_title="Month",
        kind="percent",
        reference=charts.Reference(8.4, "Last 12 months:"),
    )
    for picture in pictures(svg).values():
        for _value, top, expected in bars_on_axis(picture):
            assert abs(top - expected) < 0.01
        _zero, zero_y, top_value, top_y = axis(picture)
        assert top_value == 10  # the axis covers the reference, not a default 0-1%
        line = attrs(picture, "reference")[0]
        assert abs(float(line["y1"]) - (zero_y - (zero_y - top_y) * 8.4 / 10)) < 0.01
    assert "Last 12 months: 8.4%" in svg
    assert 'class="axis-title"' in svg and "Rate (%)" in svg


def test_chart_text_is_escaped():
    svg = charts.bar_chart(
        [charts.Bar("<b>", 3)], label="<script>", withheld_label="x", y_title="&", x_title='"'
    )
    assert "<script>" not in svg and "<b>" not in svg and "&amp;" in svg


def test_the_narrow_picture_is_drawn_for_a_phone_not_shrunk():
    html = charts.line_chart(
        [(f"2025-{m:02d}", 600 + m) for m in range(1, 13)],
        label="Score",
        low=300,
        high=850,
        y_title="Score",
        x_title="Month",
    )
    narrow = pictures(html)["narrow"]
    assert 'viewBox="0 0 340 ' in narrow and 'font-size="12"' in narrow
    assert 'class="chart chart-narrow chart-line-narrow"' in narrow
    # Its own ids: the two pictures never share a pattern or a title id.
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # Month labels are thinned to what fits, not drawn over each other.
    xs = [float(x) for x in re.findall(r'<text class="x-label" x="([^"]+)"', narrow)]
    assert 2 <= len(xs) < 12 and all(b - a >= charts.text_width("2025-01") for a, b in itertools.pairwise(xs))
