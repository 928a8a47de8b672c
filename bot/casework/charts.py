"""Tiny server-rendered charts (bars, and a map of circles): accessible inline SVG, no scripts, no
external assets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 480
LABEL_WIDTH = 170  # room for the longest row label ("Sent to another program") at 12px
VALUE_WIDTH = 44  # room for the number after the bar
ROW_HEIGHT = 24
BAR_HEIGHT = 16
PAD = 6
BAR_COLOR = "#1f5f8b"  # 7:1 against white, so the bars read in grey-scale print too
TEXT_COLOR = "#1a1a1a"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: the number is hidden, so no bar is drawn
    shown: str  # what the reader sees after the bar ("12", "<5", "40%")


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], description: str = "") -> Markup:
    """A horizontal bar chart; the title and every value are in the SVG text for screen readers."""
    height = PAD * 2 + ROW_HEIGHT * max(len(bars), 1)
    top = max((b.value for b in bars if b.value is not None), default=0)
    scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / top if top > 0 else 0
    summary = "; ".join(f"{b.label}: {b.shown}" for b in bars) or "no data"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(" ".join(filter(None, [description, summary])))}</desc>',
    ]
    parts += [_row(i, bar, scale) for i, bar in enumerate(bars)]
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _row(index: int, bar: Bar, scale: float) -> str:
    y = PAD + index * ROW_HEIGHT
    text_y = y + ROW_HEIGHT / 2 + 4  # baseline that centres 12px text on the row
    width = round((bar.value or 0) * scale, 1)
    bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2
    return (
        f'<g aria-hidden="true" font-family="sans-serif" font-size="12" fill="{TEXT_COLOR}">'
        f'<text x="{LABEL_WIDTH - 8}" y="{text_y}" text-anchor="end">{escape(bar.label)}</text>'
        f'<rect x="{LABEL_WIDTH}" y="{bar_y}" width="{width}" height="{BAR_HEIGHT}" fill="{BAR_COLOR}"/>'
        f'<text x="{LABEL_WIDTH + width + 6}" y="{text_y}">{escape(bar.shown)}</text></g>'
    )


# -- a map of counts by ZIP code: circles at the ZIP centroids (no ZIP shapes ship offline) -------------

MAP_WIDTH = 640
MAP_PAD = 56  # room for a label beside a circle at the edge
MAX_RADIUS = 34
MIN_RADIUS = 5
HIDDEN_RADIUS = 9  # a hidden count: one size for all, so its size tells nothing
MILES_PER_DEGREE = 69.0


@dataclass(frozen=True)
class Dot:
    """One ZIP code on the map: its centroid, and its count (None: hidden, shown as `shown`)."""

    label: str
    lat: float
    lon: float
    value: int | None
    shown: str  # what a hidden count reads as ("fewer than 5")


def zip_map(chart_id: str, title: str, dots: Sequence[Dot]) -> Markup:
    """Circles whose area is proportional to the count, each labelled; hidden counts as dashed rings
    with their words and no number. The title and every value are in the SVG text for screen readers."""
    project, height, miles = _projection(dots)
    top = max((d.value for d in dots if d.value), default=0)
    summary = "; ".join(f"{d.label}: {d.shown}" for d in dots) or "no data"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="map" role="img" viewBox="0 0 {MAP_WIDTH} {height}" '
        f'width="{MAP_WIDTH}" height="{height}" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
        f'<rect x="0.5" y="0.5" width="{MAP_WIDTH - 1}" height="{height - 1}" fill="#f7f7f5" stroke="#ccc"/>',
    ]
    biggest_first = sorted(dots, key=lambda d: -(d.value or 0))  # small circles stay on top, clickable
    parts += [_dot(d, *project(d.lat, d.lon), top) for d in biggest_first]
    parts.append(_scale(height, miles))
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _projection(dots: Sequence[Dot]) -> tuple[Callable[[float, float], tuple[float, float]], int, float]:
    """Equirectangular at the dots' mean latitude, fitted to MAP_WIDTH; returns the projection, the
    height and how many pixels a mile is."""
    lats, lons = [d.lat for d in dots] or [0.0], [d.lon for d in dots] or [0.0]
    squeeze = math.cos(math.radians(sum(lats) / len(lats)))
    span_x = max((max(lons) - min(lons)) * squeeze, 0.02)
    span_y = max(max(lats) - min(lats), 0.02)
    scale = (MAP_WIDTH - 2 * MAP_PAD) / max(span_x, span_y)
    height = round(span_y * scale + 2 * MAP_PAD)
    west, north = min(lons), max(lats)

    def project(lat: float, lon: float) -> tuple[float, float]:
        return round(MAP_PAD + (lon - west) * squeeze * scale, 1), round(MAP_PAD + (north - lat) * scale, 1)

    return project, height, scale / MILES_PER_DEGREE


def _dot(dot: Dot, x: float, y: float, top: int) -> str:
    if dot.value is None:
        circle = (
            f'<circle cx="{x}" cy="{y}" r="{HIDDEN_RADIUS}" fill="#fff" stroke="{BAR_COLOR}" '
            'stroke-width="2" stroke-dasharray="3 2"/>'
        )
        radius: float = HIDDEN_RADIUS
    else:
        radius = MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(dot.value / top) if top else MIN_RADIUS
        circle = (
            f'<circle cx="{x}" cy="{y}" r="{radius:.1f}" fill="{BAR_COLOR}" fill-opacity="0.55" stroke="{BAR_COLOR}"/>'
        )
    return (
        f'<g aria-hidden="true" font-family="sans-serif" font-size="12" fill="{TEXT_COLOR}">{circle}'
        f'<text x="{x}" y="{y + radius + 13:.1f}" text-anchor="middle">'
        f'<tspan font-weight="bold">{escape(dot.label)}</tspan> {escape(dot.shown)}</text></g>'
    )


def _scale(height: int, pixels_per_mile: float) -> str:
    miles = next((m for m in (0.5, 1, 2, 5, 10, 20, 50) if m * pixels_per_mile >= 60), 100)
    length = round(miles * pixels_per_mile, 1)
    y = height - 14
    return (
        f'<g aria-hidden="true" font-family="sans-serif" font-size="11" fill="{TEXT_COLOR}">'
        f'<line x1="12" y1="{y}" x2="{12 + length}" y2="{y}" stroke="{TEXT_COLOR}" stroke-width="2"/>'
        f'<text x="12" y="{y - 5}">{miles:g} mile{"s" if miles != 1 else ""}</text></g>'
    )
