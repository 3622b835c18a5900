"""Server-rendered SVG line charts of a job's metric time series (no JavaScript library).

`metric_series` turns the job's metrics (one dict a step: `{"step": n, "train_loss": ...}`)
into one series per metric name; `line_chart` draws one series as a small, self-contained SVG.
Every piece of text that goes into the markup is escaped here, so the result can be inserted
into a page as it is. Plain Python: no Django import.
"""

import math
from dataclasses import dataclass
from html import escape

# Names that are not curves: the x axis itself, and the stop flag the PPO loop reports.
NOT_PLOTTED = {"step", "stopped"}
# Charts of these come first, in this order; the rest follow by name.
FIRST = ("loss", "reward", "kl", "accuracy")
# A chart never draws more points than this; longer series are thinned evenly.
MAX_POINTS = 500

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 10, 22


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]

    @property
    def last(self) -> float:
        return self.points[-1][1]


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _rank(name: str) -> tuple[int, str]:
    lowered = name.lower()
    for i, word in enumerate(FIRST):
        if word in lowered:
            return i, name
    return len(FIRST), name


def metric_series(metrics: list[dict]) -> list[Series]:
    """One series per numeric metric, x = the row's step (its position when it has none).

    Missing, non-numeric and non-finite values are left out of their series only.
    """
    by_name: dict[str, list[tuple[float, float]]] = {}
    for position, row in enumerate(metrics or [], start=1):
        if not isinstance(row, dict):
            continue
        x = _number(row.get("step"))
        x = position if x is None else x
        for name, value in row.items():
            y = _number(value)
            if name not in NOT_PLOTTED and y is not None:
                by_name.setdefault(str(name), []).append((x, y))
    return [Series(name, by_name[name]) for name in sorted(by_name, key=_rank)]


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """At most `limit` points, evenly spaced, keeping the first and the last."""
    if len(points) <= limit:
        return list(points)
    if limit < 2:
        return points[-1:]
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def fmt(value: float) -> str:
    """A short, readable number: 0.693, 1.2e-05, 1500."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}".replace("e-0", "e-").replace("e+0", "e+")
    return f"{value:.4g}"


def _span(low: float, high: float) -> tuple[float, float]:
    if high > low:
        return low, high
    pad = abs(low) * 0.1 or 1.0
    return low - pad, high + pad


def line_chart(series: Series, *, limit: int = MAX_POINTS) -> str:
    """An SVG line chart of one series: y labels at min / middle / max, x labels at the
    first and last step, the last point marked."""
    points = thin(series.points, limit)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = _span(min(xs), max(xs))
    y0, y1 = _span(min(ys), max(ys))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return TOP + (y1 - y) / (y1 - y0) * plot_h

    name = escape(series.name)
    label = escape(f"{series.name}: {len(series.points)} points, last {fmt(series.last)}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{label}" data-metric="{name}">',
        f"<title>{label}</title>",
        '<g class="grid" stroke="#e3e7ec" stroke-width="1">',
    ]
    ticks = [y1, (y0 + y1) / 2, y0]
    for y in ticks:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
    parts.append("</g>")
    parts.append('<g class="labels" fill="#5d6773" font-size="10" font-family="sans-serif">')
    for y in ticks:
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(y) + 3:.1f}" text-anchor="end">{escape(fmt(y))}</text>'
        )
    bottom = HEIGHT - 6
    parts.append(f'<text x="{LEFT}" y="{bottom}" text-anchor="start">{escape(fmt(xs[0]))}</text>')
    if xs[-1] != xs[0]:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{bottom}" text-anchor="end">{escape(fmt(xs[-1]))}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{bottom}" text-anchor="middle">step</text></g>'
    )
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(
        f'<polyline class="series" fill="none" stroke="#2457c5" stroke-width="1.75" '
        f'stroke-linejoin="round" stroke-linecap="round" points="{coords}"/>'
    )
    last_x, last_y = points[-1]
    parts.append(
        f'<circle class="last" cx="{sx(last_x):.1f}" cy="{sy(last_y):.1f}" r="3" fill="#2457c5"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def charts(metrics: list[dict]) -> list[dict]:
    """Every metric's chart: [{"name", "last" (formatted), "points" (count), "svg"}]."""
    return [
        {"name": s.name, "last": fmt(s.last), "points": len(s.points), "svg": line_chart(s)}
        for s in metric_series(metrics)
    ]
