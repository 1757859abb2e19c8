"""Small bar charts as inline SVG, drawn on the server: no script, no style attribute (the
console's CSP allows neither), colours by class from syncd.css. Pure: values in, markup out.

A chart is stacked bars over labelled slots (hours, runs), an optional limit line, a legend, and
a <title>/<desc> pair so a screen reader gets the totals; every bar has a tooltip <title>.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360
PLOT_HEIGHT = 110
LEFT = 34  # room for the y-axis labels
TOP = 8
BOTTOM = 18  # room for the x-axis labels
LEGEND_ROW = 16
SERIES_CLASSES = 8  # .s0 … .s7 in syncd.css


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    name: str
    values: Sequence[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """Value → pixels on the y axis: 0 at the bottom, `top` (a round number) at the top."""

    top: int
    height: float

    def pixels(self, value: float) -> float:
        return value * self.height / self.top


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    raise AssertionError("unreachable: ten times the magnitude exceeds value")


def scale(totals: Sequence[float], *, limit: float | None = None) -> Scale:
    """A y scale that fits the tallest stack and the limit line."""
    highest = max([*totals, limit or 0, 0])
    return Scale(top=nice_ceiling(highest), height=PLOT_HEIGHT)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _legend(keys: Sequence[tuple[str, str]]) -> list[tuple[str, str, float, int]]:
    """Legend keys placed left to right, wrapping to a new row at the chart's width:
    (class, text, x, row). Text width is estimated (about 5.5 px a character at 9 px)."""
    placed = []
    x, row = float(LEFT), 0
    for css, text in keys:
        width = 12 + 5.5 * len(text) + 10
        if x > LEFT and x + width > WIDTH:
            x, row = float(LEFT), row + 1
        placed.append((css, text, x, row))
        x += width
    return placed


def bar_chart(
    *,
    key: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    limit: float | None = None,
    limit_name: str = "",
    label_every: int = 1,
    empty: str = "nothing yet",
) -> Markup:
    """Stacked bars, one per label; `limit` draws a dashed line (e.g. a budget) across.
    `key` makes the element ids unique on the page; `label_every` thins the x labels."""
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value per label")
    ident = _slug(key)
    slots = len(labels)
    totals = [sum(s.values[n] for s in series) for n in range(slots)]
    y = scale(totals, limit=limit)
    legend = [(f"s{n % SERIES_CLASSES}", s.name, sum(s.values)) for n, s in enumerate(series)]
    keys = [(css, f"{name} ({_number(total)})") for css, name, total in legend]
    if limit is not None:
        keys.append(("limit", limit_name))
    placed = _legend(keys)
    rows = 1 + max((row for _, _, _, row in placed), default=-1)
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_ROW * rows
    base = TOP + PLOT_HEIGHT
    plot_width = WIDTH - LEFT - 4
    summary = "; ".join(f"{name}: {_number(total)}" for _, name, total in legend)
    if limit is not None:
        summary += f"; {limit_name}: {_number(limit)}"
    parts = [
        f'<svg class="chart" id="{ident}" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'aria-labelledby="{ident}-t" aria-describedby="{ident}-d" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(summary)}</desc>',
    ]
    # Counts: no half ticks on a scale of 1.
    for value in (y.top, y.top // 2) if y.top > 1 else (y.top,):
        line_y = base - y.pixels(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - 4}" y1="{line_y:.1f}" y2="{line_y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 4}" y="{line_y + 3:.1f}" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    parts.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - 4}" y1="{base}" y2="{base}"/>')
    if slots and any(totals):
        slot = plot_width / slots
        bar = max(slot * 0.72, 1.0)
        for n, label in enumerate(labels):
            x = LEFT + n * slot + (slot - bar) / 2
            stacked = 0.0
            for index, item in enumerate(series):
                value = item.values[n]
                if value <= 0:
                    continue
                top = base - y.pixels(stacked + value)
                parts.append(
                    f'<rect class="s{index % SERIES_CLASSES}" x="{x:.1f}" y="{top:.1f}" '
                    f'width="{bar:.1f}" height="{y.pixels(value):.1f}">'
                    f"<title>{escape(label)} · {escape(item.name)}: {_number(value)}</title></rect>"
                )
                stacked += value
    else:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_width / 2:.1f}" y="{base - PLOT_HEIGHT / 2:.1f}" '
            f'text-anchor="middle">{escape(empty)}</text>'
        )
    if slots:
        slot = plot_width / slots
        for n, label in enumerate(labels):
            if n % max(label_every, 1) == 0:
                parts.append(
                    f'<text class="axis" x="{LEFT + n * slot + slot / 2:.1f}" y="{base + 13}" '
                    f'text-anchor="middle">{escape(label)}</text>'
                )
    if limit is not None:
        limit_y = base - y.pixels(limit)
        parts.append(
            f'<line class="limit" x1="{LEFT}" x2="{WIDTH - 4}" '
            f'y1="{limit_y:.1f}" y2="{limit_y:.1f}"><title>{escape(limit_name)}: '
            f"{_number(limit)}</title></line>"
        )
    for css, text, x, row in placed:
        legend_y = base + BOTTOM + 10 + LEGEND_ROW * row
        if css == "limit":
            parts.append(
                f'<line class="limit" x1="{x:.1f}" x2="{x + 9:.1f}" y1="{legend_y - 4}" '
                f'y2="{legend_y - 4}"/>'
            )
        else:
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{legend_y - 8}" width="9" height="9"/>'
            )
        parts.append(f'<text class="legend" x="{x + 12:.1f}" y="{legend_y}">{escape(text)}</text>')
    parts.append("</svg>")
    # Safe: every text above went through escape(); the rest is numbers and fixed names.
    return Markup("".join(parts))  # noqa: S704
