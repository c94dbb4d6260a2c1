"""Charts as server-rendered SVG: no JavaScript, no chart library, nothing from a CDN.

The markup is built here from numbers and escaped labels only, and styled by the console's
stylesheet (classes, no inline style), so the pages' CSP needs no 'unsafe-inline'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 10, 30


def _trusted(svg: str) -> Markup:
    """Markup built in this module: every value in it is a number or went through
    `html.escape`."""
    return Markup(svg)  # noqa: S704


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    *,
    unit: str = "bytes",
    height: int = HEIGHT,
) -> Markup:
    """One polyline per series over time, with the value axis' range and the time span
    labelled; each point also a `<circle>` with a `<title>` (hover shows its value)."""
    points = [point for values in series.values() for point in values]
    label = escape(title)
    if not points:
        return _trusted(
            f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 40" aria-label="{label}">'
            f'<text x="10" y="25" class="empty">{label}: no samples yet</text></svg>'
        )
    times = [moment.timestamp() for moment, _ in points]
    values = [value for _, value in points]
    t0, t1 = min(times), max(times)
    low, high = min(0.0, min(values)), max(values)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM

    def xy(moment: datetime, value: float) -> tuple[float, float]:
        x = LEFT + (moment.timestamp() - t0) / span_t * plot_w
        y = TOP + plot_h - (value - low) / span_v * plot_h
        return round(x, 1), round(y, 1)

    show = human_bytes if unit == "bytes" else (lambda v: f"{v:g}")
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
        f"{escape(show(high))}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">'
        f"{escape(show(low))}</text>",
        f'<text class="tick" x="{LEFT}" y="{height - 8}">'
        f"{escape(datetime.fromtimestamp(t0).strftime('%Y-%m-%d %H:%M'))}</text>",
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{height - 8}" text-anchor="end">'
        f"{escape(datetime.fromtimestamp(t1).strftime('%Y-%m-%d %H:%M'))}</text>",
    ]
    for number, (name, values_of) in enumerate(series.items()):
        coordinates = [xy(moment, value) for moment, value in values_of]
        css = f"series series-{number % 6}"
        path = " ".join(f"{x},{y}" for x, y in coordinates)
        parts.append(f'<polyline class="{css}" points="{path}" data-series="{escape(name)}"/>')
        for (x, y), (moment, value) in zip(coordinates, values_of, strict=True):
            parts.append(
                f'<circle class="point {css}" cx="{x}" cy="{y}" r="3"><title>'
                f"{escape(name)} {escape(moment.strftime('%Y-%m-%d %H:%M'))}: "
                f"{escape(show(value))}</title></circle>"
            )
    legend_y = TOP + 14
    for number, name in enumerate(series):
        parts.append(
            f'<text class="legend series-{number % 6}" x="{LEFT + 8}" '
            f'y="{legend_y + 14 * number}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return _trusted("".join(parts))


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, unit: str = "requests") -> Markup:
    """Vertical bars, one per (label, value), each a `<rect class="bar">` with a
    `<title>`; the value axis starts at 0 and its top is labelled."""
    label = escape(title)
    high = max((value for _, value in bars), default=0.0)
    if not high:
        return _trusted(
            f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 40" aria-label="{label}">'
            f'<text x="10" y="25" class="empty">{label}: nothing recorded yet</text></svg>'
        )
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(bars)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
        f"{escape(f'{high:g}')}</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for number, (name, value) in enumerate(bars):
        tall = round(value / high * plot_h, 1)
        x = round(LEFT + number * step + step * 0.1, 1)
        parts.append(
            f'<rect class="bar series-0" x="{x}" y="{round(TOP + plot_h - tall, 1)}" '
            f'width="{round(step * 0.8, 1)}" height="{tall}"><title>{escape(name)}: '
            f"{escape(f'{value:g}')} {escape(unit)}</title></rect>"
            f'<text class="tick" x="{round(x + step * 0.4, 1)}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return _trusted("".join(parts))


def bar(fraction: float | None) -> Markup:
    """A small horizontal gauge for a fraction in [0, 1]."""
    if fraction is None:
        return _trusted("")
    width = round(max(0.0, min(1.0, fraction)) * 100, 1)
    level = "bad" if fraction > 0.9 else "warn" if fraction > 0.5 else "good"
    return _trusted(
        f'<svg class="gauge" viewBox="0 0 100 8" role="img" aria-label="{width}%">'
        f'<rect class="track" width="100" height="8"/>'
        f'<rect class="fill {level}" width="{width}" height="8"/></svg>'
    )
