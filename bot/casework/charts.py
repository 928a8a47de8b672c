"""Tiny server-rendered bar charts: accessible inline SVG, no scripts, no external assets."""

from __future__ import annotations

from collections.abc import Sequence
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
