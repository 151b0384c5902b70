"""Charts as server-rendered SVG: bars, grouped monthly bars and a line, drawn with presentation attributes
only (no style attributes, no script), so the Content-Security-Policy needs no 'unsafe-inline' and nothing is
fetched at run time. A withheld (suppressed) value is drawn as a hatched stub and labelled as such."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 44
PALETTE = ("#1f5fa8", "#e07b39", "#2e9b6a", "#8a5cc2", "#c4455b", "#6b7a8f")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | Decimal | None  # None: withheld
    title: str = ""


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.2f}"


def _frame(parts: list[str], label: str, axis_max: float, unit: str) -> None:
    plot_h = HEIGHT - TOP - BOTTOM
    for index in range(5):
        y = TOP + plot_h - plot_h * index / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#e3e7ee" stroke-width="1"/>'
        )
        text = escape(_fmt(axis_max * index / 4) + unit)
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6675">'
            f"{text}</text>"
        )


def _open(label: str, kind: str) -> list[str]:
    return [
        f'<svg class="chart chart-{kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(label)}" width="100%" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(label)}</title>",
        '<defs><pattern id="withheld" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f1f3f6"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#aab3c0" stroke-width="2"/></pattern></defs>',
    ]


def bar_chart(
    bars: Sequence[Bar], *, label: str, withheld_label: str, unit: str = "", max_value: float | None = None
) -> SafeString:
    """Vertical bars, one per item; withheld values are hatched stubs carrying `withheld_label`."""
    parts = _open(label, "bars")
    values = [float(b.value) for b in bars if b.value is not None]
    axis_max = max_value if max_value is not None else _nice_max(max(values, default=0.0))
    _frame(parts, label, axis_max, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(bars))
    bar_w = max(2.0, slot * 0.7)
    label_every = max(1, len(bars) // 12)
    for index, bar in enumerate(bars):
        x = LEFT + slot * index + (slot - bar_w) / 2
        if bar.value is None:
            h = plot_h * 0.06
            fill, css, tip = "url(#withheld)", "bar withheld", withheld_label
        else:
            h = plot_h * min(1.0, float(bar.value) / axis_max) if axis_max else 0
            fill, css, tip = PALETTE[0], "bar", bar.title or _fmt(float(bar.value)) + unit
        y = TOP + plot_h - h
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{fill}" rx="2"><title>{escape(bar.label)}: {escape(tip)}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11" fill="#5b6675">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above


def grouped_bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | Decimal | None]]],
    *,
    label: str,
    withheld_label: str,
    unit: str = "",
) -> SafeString:
    """Bars per group (e.g. month), one colour per series (e.g. product), with a legend below."""
    parts = _open(label, "grouped")
    values = [float(v) for _name, row in series for v in row if v is not None]
    axis_max = _nice_max(max(values, default=0.0))
    _frame(parts, label, axis_max, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - 18
    slot = plot_w / max(1, len(groups))
    bar_w = max(1.5, slot * 0.8 / max(1, len(series)))
    for g_index, group in enumerate(groups):
        x0 = LEFT + slot * g_index + slot * 0.1
        for s_index, (name, row) in enumerate(series):
            value = row[g_index]
            x = x0 + bar_w * s_index
            if value is None:
                h, fill, css, tip = plot_h * 0.05, "url(#withheld)", "bar withheld", withheld_label
            else:
                h = plot_h * min(1.0, float(value) / axis_max)
                fill, css, tip = PALETTE[s_index % len(PALETTE)], "bar", _fmt(float(value)) + unit
            y = TOP + plot_h - h
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{fill}"><title>{escape(group)} · {escape(name)}: {escape(tip)}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + slot * 0.4:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11" '
            f'fill="#5b6675">{escape(group)}</text>'
        )
    legend_x = LEFT
    for s_index, (name, _row) in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" '
            f'fill="{PALETTE[s_index % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="11" fill="#33404f">{escape(name)}</text>'
        )
        legend_x += 26 + 8 * len(name) if name.isascii() else 26 + 13 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above


def line_chart(points: Sequence[tuple[str, float]], *, label: str, low: float, high: float) -> SafeString:
    """A line over labelled points (oldest first) on a fixed value range, e.g. scores 300-850."""
    parts = _open(label, "line")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for index in range(5):
        value = low + (high - low) * index / 4
        y = TOP + plot_h - plot_h * index / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#e3e7ee" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6675">'
            f"{int(value)}</text>"
        )
    count = len(points)
    coords = []
    for index, (_text, value) in enumerate(points):
        x = LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2)
        y = TOP + plot_h - plot_h * (min(max(value, low), high) - low) / (high - low)
        coords.append((x, y))
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(
            f'<polyline class="line" points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
        )
    label_every = max(1, count // 8)
    for index, ((x, y), (text, value)) in enumerate(zip(coords, points, strict=True)):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE[0]}">'
            f"<title>{escape(text)}: {int(value)}</title></circle>"
        )
        if index % label_every == 0 or index == count - 1:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                f'fill="#5b6675">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above
