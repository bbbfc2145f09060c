"""Charts drawn on the server as inline SVG: no script, no chart library, readable without styles.

Each chart is a bar per value with its label and value in the bar's ``<title>`` (a tooltip, and text for
screen readers); the figure's summary goes in the SVG's own ``<title>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    peak: int
    first_label: str
    last_label: str
    total: int


def bar_chart(title: str, values: Sequence[int], labels: Sequence[str], *, width: int = 480,
              height: int = 120) -> BarChart:
    """Bars of ``values`` (one per label), scaled to the largest; the plot leaves room for the axis labels."""
    top, bottom, left = 8, 18, 36
    plot_height = height - top - bottom
    peak = max(values, default=0)
    step = (width - left) / max(len(values), 1)
    bars = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        bar_height = plot_height * value / peak if peak else 0.0
        bars.append(Bar(x=round(left + index * step + step * 0.1, 1), y=round(top + plot_height - bar_height, 1),
                        width=round(max(step * 0.8, 1.0), 1), height=round(bar_height, 1), label=label, value=value))
    return BarChart(title=title, width=width, height=height, bars=bars, peak=peak,
                    first_label=labels[0] if labels else "", last_label=labels[-1] if labels else "",
                    total=sum(values))
