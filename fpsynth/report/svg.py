"""Small static plots as inline SVG text: histograms, line charts, grouped bars.

No plotting library and no script: each function returns an ``<svg>`` element with axes, tick
labels, axis titles and a legend, sized in CSS pixels, readable when the page is printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

PALETTE = ("#1f77b4", "#d95f02", "#2ca02c", "#7570b3", "#e7298a", "#8c564b", "#66a61e", "#666666")
_MARGIN = {"left": 72, "right": 16, "top": 40, "bottom": 46}


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [round(math.floor(lo / step) * step, 12)]  # first tick at or below lo, last at or above hi
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


class _Frame:
    """Axes of one plot: data ranges mapped to the drawing area."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float]) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = _MARGIN["left"], width - _MARGIN["right"]
        self.y0, self.y1 = height - _MARGIN["bottom"], _MARGIN["top"]
        self.xticks, self.yticks = nice_ticks(*x), nice_ticks(*y)
        self.xlo, self.xhi = min(x[0], self.xticks[0]), max(x[1], self.xticks[-1])
        self.ylo, self.yhi = min(y[0], self.yticks[0]), max(y[1], self.yticks[-1])

    def px(self, x: float) -> float:
        return self.x0 + (x - self.xlo) / ((self.xhi - self.xlo) or 1.0) * (self.x1 - self.x0)

    def py(self, y: float) -> float:
        return self.y0 - (y - self.ylo) / ((self.yhi - self.ylo) or 1.0) * (self.y0 - self.y1)

    def axes(self, xlabel: str, ylabel: str, xticks: bool = True) -> list[str]:
        parts = [
            f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" class="axis"/>',
            f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x0}" y2="{self.y1}" class="axis"/>',
        ]
        for t in self.yticks:
            y = self.py(t)
            parts.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" class="grid"/>')
            parts.append(f'<text x="{self.x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        if xticks:
            for t in self.xticks:
                x = self.px(t)
                parts.append(f'<line x1="{x:.1f}" y1="{self.y0}" x2="{x:.1f}" y2="{self.y0 + 4}" class="axis"/>')
                parts.append(f'<text x="{x:.1f}" y="{self.y0 + 16}" text-anchor="middle">{_fmt(t)}</text>')
        parts.append(
            f'<text x="{(self.x0 + self.x1) / 2:.1f}" y="{self.height - 8}" text-anchor="middle" '
            f'class="label">{escape(xlabel)}</text>'
        )
        parts.append(
            f'<text transform="translate(14 {(self.y0 + self.y1) / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle" class="label">{escape(ylabel)}</text>'
        )
        return parts


def _svg(width: int, height: int, title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>\n{body}\n</svg>"
    )


def _legend(labels: Sequence[str], left: float) -> list[str]:
    """A one-line legend under the title, in the top margin, from x = ``left``."""
    parts, x = [], left
    for i, label in enumerate(labels):
        parts.append(f'<rect x="{x:.1f}" y="20" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="29">{escape(label)}</text>')
        x += 26 + 6.2 * len(label)
    return parts


def histogram(
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    title: str,
    bins: int = 30,
    marker: tuple[float, str] | None = None,
    width: int = 440,
    height: int = 250,
) -> str:
    """Overlaid histograms of each series (finite values) on shared bins; ``marker`` = (x, label)
    draws a vertical line, e.g. a verification threshold."""
    data = {k: np.asarray(v, np.float64) for k, v in series.items()}
    data = {k: v[np.isfinite(v)] for k, v in data.items()}
    values = np.concatenate([v for v in data.values()] + [np.zeros(0)])
    if marker is not None:
        values = np.append(values, marker[0])
    if not len(values):
        return _svg(width, 60, title, [f'<text x="10" y="30">{escape(title)}: no finite values</text>'])
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = {k: np.histogram(v, edges)[0] for k, v in data.items()}
    top = max([int(c.max()) for c in counts.values()] + [1])
    f = _Frame(width, height, (lo, hi), (0, top))
    parts = f.axes(xlabel, "images")
    for i, c in enumerate(counts.values()):
        color = PALETTE[i % len(PALETTE)]
        for j, count in enumerate(c):
            if count:
                x, w = f.px(edges[j]), f.px(edges[j + 1]) - f.px(edges[j])
                parts.append(
                    f'<rect x="{x:.1f}" y="{f.py(count):.1f}" width="{max(w - 0.5, 0.5):.1f}" '
                    f'height="{f.py(0) - f.py(count):.1f}" fill="{color}" fill-opacity="0.55"/>'
                )
    if marker is not None:
        x = f.px(marker[0])
        parts.append(f'<line x1="{x:.1f}" y1="{f.y0}" x2="{x:.1f}" y2="{f.y1}" class="marker"/>')
        left = x > (f.x0 + f.x1) / 2  # label on the side with room
        parts.append(
            f'<text x="{x - 3 if left else x + 3:.1f}" y="{f.y1 + 10}" text-anchor="{"end" if left else "start"}" '
            f'class="marker-label">{escape(marker[1])}</text>'
        )
    parts += _legend([f"{k} (n={len(v)})" for k, v in data.items()], f.x0)
    parts.append(f'<text x="{f.x0}" y="14" class="title">{escape(title)}</text>')
    return _svg(width, height, title, parts)


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    log_y: bool = False,
    width: int = 640,
    height: int = 280,
) -> str:
    """Lines of ``series`` over shared ``x`` (NaNs break a line); ``log_y`` plots log10 of positive values."""
    xs = np.asarray(x, np.float64)
    ys = {k: np.asarray(v, np.float64) for k, v in series.items()}
    if log_y:
        ys = {k: np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan) for k, v in ys.items()}
        ylabel = f"log10 {ylabel}"
    finite = np.concatenate([v[np.isfinite(v)] for v in ys.values()] + [np.zeros(0)])
    if not len(xs) or not len(finite):
        return _svg(width, 60, title, [f'<text x="10" y="30">{escape(title)}: no values</text>'])
    f = _Frame(width, height, (float(xs.min()), float(xs.max())), (float(finite.min()), float(finite.max())))
    parts = f.axes(xlabel, ylabel)
    for i, y in enumerate(ys.values()):
        segments, current = [], []
        for xv, yv in zip(xs, y):
            if np.isfinite(yv):
                current.append(f"{f.px(xv):.1f},{f.py(yv):.1f}")
            elif current:
                segments.append(current)
                current = []
        segments.append(current)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{PALETTE[i % len(PALETTE)]}"/>')
            elif seg:
                parts.append(
                    f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="1.5" '
                    f'points="{" ".join(seg)}"/>'
                )
    parts += _legend(list(ys), f.x0)
    parts.append(f'<text x="{f.x0}" y="14" class="title">{escape(title)}</text>')
    return _svg(width, height, title, parts)


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    title: str,
    width: int = 640,
    height: int = 290,
) -> str:
    """Grouped bars: one group per entry of ``groups``, one bar per series (None: no bar)."""
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not groups or not values:
        return _svg(width, 60, title, [f'<text x="10" y="30">{escape(title)}: no values</text>'])
    f = _Frame(width, height, (0, len(groups)), (min(0.0, min(values)), max(0.0, max(values))))
    parts = f.axes("", ylabel, xticks=False)
    slot = (f.x1 - f.x0) / len(groups)
    bar = slot * 0.8 / max(len(series), 1)
    for g, name in enumerate(groups):
        parts.append(
            f'<text transform="translate({f.x0 + slot * (g + 0.5):.1f} {f.y0 + 12}) rotate(-30)" '
            f'text-anchor="end">{escape(name)}</text>'
        )
        for i, s in enumerate(series.values()):
            v = s[g]
            if v is None or not math.isfinite(v):
                continue
            x = f.x0 + slot * g + slot * 0.1 + bar * i
            top, base = f.py(max(v, 0.0)), f.py(min(v, 0.0))
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar * 0.92:.1f}" height="{max(base - top, 0.5):.1f}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(name)}: {_fmt(v)}</title></rect>'
            )
    parts += _legend(list(series), f.x0)
    parts.append(f'<text x="{f.x0}" y="14" class="title">{escape(title)}</text>')
    return _svg(width, height, title, parts)
