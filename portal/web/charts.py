"""Charts as server-rendered SVG: bars, grouped monthly bars and a line, drawn with presentation attributes
only (no style attributes, no script), so the Content-Security-Policy needs no 'unsafe-inline' and nothing is
fetched at run time.

Every chart is laid out once (`_Plot`): the grid, the axis and the marks all read the same plot rectangle and
the same value-to-pixel mapping, so a bar's top is its value on the axis. Ticks are nice numbers (1, 2, 2.5 or
5 times a power of ten), written in the page's language (万/亿 in Chinese, k/M in English) with one number of
decimals per axis. Each mark carries its value (`data-value`, and a `<title>` read as a tooltip), each chart
has axis titles, and the figures follow as a table for screen readers and for copying. A withheld
(suppressed) value is drawn as a hatched band over the whole height of its slot: it is not a small value."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 76, 16, 14, 50
# The narrow variant, shown instead at phone widths (portal.css): drawn for about its own width, so that its
# 12-unit text stays near 12 px on a 390 px screen instead of shrinking with a 960-unit picture.
NARROW_WIDTH, NARROW_LEFT, NARROW_RIGHT = 340, 62, 8
PLOT_HEIGHT = 200
FONT = 12
PALETTE = ("#1f5fa8", "#c8601c", "#2e8b57", "#7d4fb8", "#b83a52", "#4f6275")
INK, MUTED, GRID = "#1d2733", "#4d5866", "#e1e6ed"

Number = float | Decimal | int


@dataclass(frozen=True)
class Bar:
    label: str
    value: Number | None  # None: withheld
    title: str = ""


@dataclass(frozen=True)
class Reference:
    """A horizontal reference line, e.g. the rate over the whole window."""

    value: float
    label: str


def chinese() -> bool:
    return (get_language() or "").startswith("zh")


def text_width(text: str, size: int = FONT) -> float:
    """An estimate of the rendered width: CJK characters are square, Latin ones a little over half."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.6 for ch in text)


def nice_step(span: float, target: int = 5) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten that cuts `span` into about `target` parts."""
    if span <= 0:
        return 1.0
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * magnitude >= raw * 0.999:
            return multiple * magnitude
    return 10 * magnitude  # pragma: no cover - the loop ends at 10


def nice_ticks(low: float, high: float, target: int = 5, *, cover: bool = True) -> list[float]:
    """Ticks from `low` at a nice step; with `cover`, the last one is at or above `high` (the axis maximum);
    without it, every tick lies within [low, high] (a fixed range such as scores 300-850)."""
    step = nice_step(high - low, target)
    first = math.ceil(round(low / step, 9)) * step
    ticks: list[float] = []
    index = 0
    while True:
        value = round(first + index * step, 9)
        if value > high + 1e-9 and (not cover or (ticks and ticks[-1] >= high - 1e-9)):
            break
        ticks.append(value)
        index += 1
        if index > 50:  # pragma: no cover - a step is at least a fiftieth of the span
            break
    if cover and ticks and ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 9))
    return ticks


def _decimals(step: float) -> int:
    for digits in range(0, 6):
        if abs(round(step, digits) - step) < 1e-9:
            return digits
    return 6


def format_number(
    value: float, *, kind: str = "count", step: float | None = None, top: float | None = None
) -> str:
    """A tick or a value: counts and amounts compact (万/亿 in Chinese, k/M in English, the unit chosen by
    the axis's top so that one axis has one unit) with the axis's decimals, percentages (given in percent)
    with one number of decimals per axis, scores as integers."""
    step = step if step is not None else (abs(value) or 1)
    if kind == "percent":
        return f"{value:.{min(_decimals(step), 2)}f}%"
    if kind == "score":
        return f"{value:.0f}"
    if value == 0:
        return "0"
    reference = top if top is not None else max(abs(value), step)
    units = ((100_000_000, "亿"), (10_000, "万")) if chinese() else ((1_000_000, "M"), (10_000, "k"))
    for threshold, suffix in units:
        if reference >= threshold:
            divisor = 1_000 if suffix == "k" else threshold
            return f"{value / divisor:,.{min(_decimals(step / divisor), 2)}f}{suffix}"
    return f"{value:,.{min(_decimals(step), 2)}f}"


def format_month(month: str) -> str:
    """'2025-11' in English, '2025年11月' in Chinese."""
    if chinese() and len(month) == 7 and month[4] == "-":
        return f"{month[:4]}年{int(month[5:])}月"
    return month


@dataclass(frozen=True)
class _Layout:
    """The picture's width and its left and right margins: the wide variant or the narrow one."""

    width: int
    left: int
    right: int
    variant: str  # "wide" or "narrow"

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right


WIDE = _Layout(WIDTH, LEFT, RIGHT, "wide")
NARROW = _Layout(NARROW_WIDTH, NARROW_LEFT, NARROW_RIGHT, "narrow")


@dataclass
class _Plot:
    """The plot rectangle and its value range; everything drawn maps values through `y`."""

    left: float
    top: float
    width: float
    height: float
    low: float
    high: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def y(self, value: float) -> float:
        clamped = min(max(value, self.low), self.high)
        return self.bottom - self.height * (clamped - self.low) / (self.high - self.low)


def _chart_id(kind: str, label: str, data: object) -> str:
    return f"{kind}-" + hashlib.sha256(f"{label}|{data!r}".encode()).hexdigest()[:10]


def _open(chart_id: str, label: str, kind: str, height: float, layout: _Layout) -> list[str]:
    # The wide picture keeps the class the page and its tests know (chart-bars …); the narrow one is its
    # sibling (chart-bars-narrow), and CSS shows exactly one of them.
    css = f"chart chart-{kind}" if layout is WIDE else f"chart chart-narrow chart-{kind}-narrow"
    return [
        f'<svg class="{css}" id="{chart_id}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {layout.width} {height:.0f}" role="img" '
        f'aria-labelledby="{chart_id}-title" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'font-size="{FONT}">',
        f'<title id="{chart_id}-title">{escape(label)}</title>',
        f'<defs><pattern id="{chart_id}-withheld" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f3f5f8"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#b5bdc8" stroke-width="2"/></pattern></defs>',
    ]


def _close(parts: list[str]) -> str:
    parts.append("</svg>")
    return "".join(parts)


def _axes(parts: list[str], plot: _Plot, ticks: list[float], kind: str, y_title: str, x_title: str) -> None:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        y = plot.y(tick)
        css = "grid baseline" if tick == plot.low else "grid"
        colour = "#9aa5b3" if tick == plot.low else GRID
        parts.append(
            f'<line class="{css}" data-value="{tick:g}" x1="{plot.left}" y1="{y:.2f}" '
            f'x2="{plot.left + plot.width}" y2="{y:.2f}" stroke="{colour}" stroke-width="1"/>'
            f'<text class="tick" x="{plot.left - 6}" y="{y + 4:.2f}" text-anchor="end" fill="{MUTED}">'
            f"{escape(format_number(tick, kind=kind, step=step, top=ticks[-1]))}</text>"
        )
    middle = plot.top + plot.height / 2
    parts.append(
        f'<text class="axis-title" x="14" y="{middle:.1f}" text-anchor="middle" fill="{INK}" '
        f'transform="rotate(-90 14 {middle:.1f})">{escape(y_title)}</text>'
        f'<text class="axis-title" x="{plot.left + plot.width / 2:.1f}" y="{plot.bottom + 40:.1f}" '
        f'text-anchor="middle" fill="{INK}">{escape(x_title)}</text>'
    )


def _x_labels(parts: list[str], plot: _Plot, labels: Sequence[str], slot: float) -> None:
    widest = max((text_width(label) for label in labels), default=0)
    every = max(1, math.ceil((widest + 8) / slot)) if slot else 1
    shown = [i for i in range(len(labels)) if i % every == 0]
    if shown and shown[-1] != len(labels) - 1 and len(labels) - 1 - shown[-1] >= every:
        shown.append(len(labels) - 1)
    for index in shown:
        x = plot.left + slot * index + slot / 2
        parts.append(
            f'<text class="x-label" x="{x:.1f}" y="{plot.bottom + 18:.1f}" text-anchor="middle" '
            f'fill="{MUTED}">{escape(labels[index])}</text>'
        )


def _withheld(parts: list[str], chart_id: str, plot: _Plot, x: float, width: float, tip: str) -> None:
    parts.append(
        f'<rect class="withheld" x="{x:.2f}" y="{plot.top:.2f}" width="{width:.2f}" '
        f'height="{plot.height:.2f}" fill="url(#{chart_id}-withheld)" opacity="0.8">'
        f"<title>{escape(tip)}</title></rect>"
    )


def _reference(parts: list[str], plot: _Plot, reference: Reference, kind: str) -> None:
    y = plot.y(reference.value)
    text = f"{reference.label} {format_number(reference.value, kind=kind, step=0.1)}"
    parts.append(
        f'<line class="reference" data-value="{reference.value:g}" x1="{plot.left}" y1="{y:.2f}" '
        f'x2="{plot.left + plot.width}" y2="{y:.2f}" stroke="{PALETTE[1]}" stroke-width="1.5" '
        'stroke-dasharray="6 4"/>'
        f'<text class="reference-label" x="{plot.left + plot.width - 4}" y="{y - 5:.2f}" text-anchor="end" '
        f'fill="#8a3f0f">{escape(text)}</text>'
    )


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(
        f'<th scope="col"{" class=num" if i else ""}>{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<th scope="row">{escape(cell)}</th>' if i == 0 else f'<td class="num">{escape(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    summary = _("Figures as a table")
    return (
        f'<details class="chart-data"><summary>{escape(summary)}</summary>'
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></details>"
    )


def bar_chart(
    bars: Sequence[Bar],
    *,
    label: str,
    withheld_label: str,
    y_title: str,
    x_title: str,
    kind: str = "count",
    reference: Reference | None = None,
) -> SafeString:
    """Vertical bars, one per item, from zero; withheld values are hatched bands carrying `withheld_label`."""
    rows: list[tuple[str, str]] = []

    def draw(layout: _Layout) -> str:
        rows.clear()
        return _bars_svg(bars, layout, rows, label, withheld_label, y_title, x_title, kind, reference)

    svg_parts = draw(WIDE), draw(NARROW)
    return mark_safe(  # noqa: S308 - every text in it is escaped where it is added
        f'<div class="chart-box" tabindex="0">{"".join(svg_parts)}'
        f"{_table(label, (x_title, y_title), rows)}</div>"
    )


def _bars_svg(
    bars: Sequence[Bar],
    layout: _Layout,
    rows: list[tuple[str, str]],
    label: str,
    withheld_label: str,
    y_title: str,
    x_title: str,
    kind: str,
    reference: Reference | None,
) -> str:
    chart_id = _chart_id("bars", label, bars) + ("" if layout is WIDE else "-narrow")
    values = [float(b.value) for b in bars if b.value is not None]
    if reference is not None:
        values.append(reference.value)
    ticks = nice_ticks(0.0, max(values, default=0.0) or (1.0 if kind == "percent" else 10.0))
    plot = _Plot(layout.left, TOP, layout.plot_width, PLOT_HEIGHT, 0.0, ticks[-1])
    height = plot.bottom + BOTTOM
    parts = _open(chart_id, label, "bars", height, layout)
    _axes(parts, plot, ticks, kind, y_title, x_title)
    slot = plot.width / max(1, len(bars))
    bar_w = max(2.0, slot * 0.7)
    for index, bar in enumerate(bars):
        x = plot.left + slot * index + (slot - bar_w) / 2
        if bar.value is None:
            _withheld(parts, chart_id, plot, x, bar_w, f"{bar.label}: {withheld_label}")
            rows.append((bar.label, withheld_label))
            continue
        value = float(bar.value)
        shown = bar.title or format_number(value, kind=kind, step=0.1 if kind == "percent" else 1)
        y = plot.y(value)
        parts.append(
            f'<rect class="bar" data-value="{value:g}" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" '
            f'height="{plot.bottom - y:.2f}" fill="{PALETTE[0]}"><title>{escape(bar.label)}: '
            f"{escape(shown)}</title></rect>"
        )
        rows.append((bar.label, shown))
    if reference is not None:
        _reference(parts, plot, reference, kind)
    _x_labels(parts, plot, [b.label for b in bars], slot)
    return _close(parts)


def grouped_bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number | None]]],
    *,
    label: str,
    withheld_label: str,
    y_title: str,
    x_title: str,
    kind: str = "count",
) -> SafeString:
    """Bars per group (e.g. month), one colour per series (e.g. product), with a legend above the plot that
    wraps onto as many rows as it needs."""
    rows = [
        [group]
        + [
            withheld_label if vals[g] is None else format_number(float(vals[g]), kind=kind, step=0.01)  # type: ignore[arg-type]
            for _name, vals in series
        ]
        for g, group in enumerate(groups)
    ]
    pictures = "".join(
        _grouped_svg(groups, series, layout, label, withheld_label, y_title, x_title, kind)
        for layout in (WIDE, NARROW)
    )
    table = _table(label, [x_title] + [name for name, _v in series], rows)
    return mark_safe(f'<div class="chart-box" tabindex="0">{pictures}{table}</div>')  # noqa: S308


def _grouped_svg(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number | None]]],
    layout: _Layout,
    label: str,
    withheld_label: str,
    y_title: str,
    x_title: str,
    kind: str,
) -> str:
    chart_id = _chart_id("grouped", label, (groups, series)) + ("" if layout is WIDE else "-narrow")
    legend: list[tuple[float, int, str, str]] = []  # x, row, colour, name
    x, row = float(layout.left), 0
    for s_index, (name, _values) in enumerate(series):
        item = 14 + 6 + text_width(name) + 18
        if x + item > layout.width - layout.right and x > layout.left:
            x, row = float(layout.left), row + 1
        legend.append((x, row, PALETTE[s_index % len(PALETTE)], name))
        x += item
    legend_h = (row + 1) * 20 + 6 if series else 0
    values = [float(v) for _name, vals in series for v in vals if v is not None]
    ticks = nice_ticks(0.0, max(values, default=0.0) or 10.0)
    plot = _Plot(layout.left, TOP + legend_h, layout.plot_width, PLOT_HEIGHT, 0.0, ticks[-1])
    height = plot.bottom + BOTTOM
    parts = _open(chart_id, label, "grouped", height, layout)
    for lx, lrow, colour, name in legend:
        ly = TOP + lrow * 20
        parts.append(
            f'<g class="legend-item"><rect x="{lx:.1f}" y="{ly:.1f}" width="14" height="14" rx="2" '
            f'fill="{colour}"/><text x="{lx + 20:.1f}" y="{ly + 11.5:.1f}" fill="{INK}">'
            f"{escape(name)}</text></g>"
        )
    _axes(parts, plot, ticks, kind, y_title, x_title)
    slot = plot.width / max(1, len(groups))
    bar_w = max(1.5, slot * 0.8 / max(1, len(series)))
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for g_index, group in enumerate(groups):
        x0 = plot.left + slot * g_index + slot * 0.1
        for s_index, (name, vals) in enumerate(series):
            value = vals[g_index]
            bx = x0 + bar_w * s_index
            if value is None:
                # A short hatched marker on the baseline: in a month of several products, full-height bands
                # would hide the bars that are shown.
                parts.append(
                    f'<rect class="withheld" x="{bx:.2f}" y="{plot.bottom - 10:.2f}" width="{bar_w:.2f}" '
                    f'height="10" fill="url(#{chart_id}-withheld)" stroke="#8c96a3" stroke-width="0.5">'
                    f"<title>{escape(group)} · {escape(name)}: {escape(withheld_label)}</title></rect>"
                )
                continue
            number = float(value)
            y = plot.y(number)
            shown = format_number(number, kind=kind, step=min(step, 100.0))
            parts.append(
                f'<rect class="bar" data-value="{number:g}" x="{bx:.2f}" y="{y:.2f}" width="{bar_w:.2f}" '
                f'height="{plot.bottom - y:.2f}" fill="{PALETTE[s_index % len(PALETTE)]}">'
                f"<title>{escape(group)} · {escape(name)}: {escape(shown)}</title></rect>"
            )
    _x_labels(parts, plot, groups, slot)
    return _close(parts)


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    label: str,
    low: float,
    high: float,
    y_title: str,
    x_title: str,
) -> SafeString:
    """A line over labelled points (oldest first) on a fixed value range, e.g. scores 300-850."""
    pictures = "".join(
        _line_svg(points, layout, label, low, high, y_title, x_title) for layout in (WIDE, NARROW)
    )
    rows = [(text, f"{value:.0f}") for text, value in points]
    table = _table(label, (x_title, y_title), rows)
    return mark_safe(f'<div class="chart-box" tabindex="0">{pictures}{table}</div>')  # noqa: S308


def _line_svg(
    points: Sequence[tuple[str, float]],
    layout: _Layout,
    label: str,
    low: float,
    high: float,
    y_title: str,
    x_title: str,
) -> str:
    chart_id = _chart_id("line", label, points) + ("" if layout is WIDE else "-narrow")
    plot = _Plot(layout.left, TOP, layout.plot_width, PLOT_HEIGHT, low, high)
    parts = _open(chart_id, label, "line", plot.bottom + BOTTOM, layout)
    ticks = nice_ticks(low, high, 6, cover=False)
    _axes(parts, plot, ticks, "score", y_title, x_title)
    count = len(points)
    slot = plot.width / max(1, count)
    coords = [(plot.left + slot * i + slot / 2, plot.y(value)) for i, (_t, value) in enumerate(points)]
    if len(coords) > 1:
        path = " ".join(f"{x:.2f},{y:.2f}" for x, y in coords)
        parts.append(
            f'<polyline class="line" points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
        )
    for (x, y), (text, value) in zip(coords, points, strict=True):
        parts.append(
            f'<circle class="point" data-value="{value:g}" cx="{x:.2f}" cy="{y:.2f}" r="4" '
            f'fill="{PALETTE[0]}">'
            f"<title>{escape(text)}: {value:.0f}</title></circle>"
        )
    _x_labels(parts, plot, [text for text, _v in points], slot)
    return _close(parts)
