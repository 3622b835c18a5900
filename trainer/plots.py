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
NOT_PLOTTED = {"step", "stopped", "elapsed_s", "samples"}
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


def line_chart(series: Series, *, limit: int = MAX_POINTS, smoothing: float = 0.0) -> str:
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
    # Smoothed: the raw values stay as a faint line under the average, as in TensorBoard.
    raw_style = 'stroke-opacity=".3" ' if smoothing > 0 else ""
    parts.append(
        f'<polyline class="series" fill="none" stroke="#2457c5" stroke-width="1.75" {raw_style}'
        f'stroke-linejoin="round" stroke-linecap="round" points="{coords}"/>'
    )
    if smoothing > 0:
        averaged = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in smooth(points, smoothing))
        parts.append(
            f'<polyline class="smoothed" fill="none" stroke="#2457c5" stroke-width="2" '
            f'stroke-linejoin="round" points="{averaged}"/>'
        )
    last_x, last_y = points[-1]
    parts.append(
        f'<circle class="last" cx="{sx(last_x):.1f}" cy="{sy(last_y):.1f}" r="3" fill="#2457c5"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def is_constant(series: Series) -> bool:
    """Two or more points, all with the same value: a line says nothing a number does not."""
    return len(series.points) > 1 and len({y for _, y in series.points}) == 1


def smooth(points: list[tuple[float, float]], weight: float) -> list[tuple[float, float]]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start so the
    first points are not pulled towards zero. weight 0 leaves the points as they are."""
    if weight <= 0:
        return list(points)
    out, average = [], 0.0
    for i, (x, y) in enumerate(points, start=1):
        average = average * weight + (1 - weight) * y
        out.append((x, average / (1 - weight**i)))
    return out


def charts(metrics: list[dict], *, smoothing: float = 0.0) -> list[dict]:
    """Every varying metric's chart: [{"name", "last" (formatted), "points" (count), "svg"}].
    Constant metrics are left out (see `constants`)."""
    return [
        {
            "name": s.name,
            "last": fmt(s.last),
            "points": len(s.points),
            "svg": line_chart(s, smoothing=smoothing),
        }
        for s in metric_series(metrics)
        if not is_constant(s)
    ]


def constants(metrics: list[dict]) -> list[tuple[str, str]]:
    """(name, value) of the metrics that never changed: shown as text, not plotted."""
    return [(s.name, fmt(s.last)) for s in metric_series(metrics) if is_constant(s)]


# Distinct colours for overlaid runs (Okabe-Ito, readable by colour-blind people).
RUN_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def overlay_chart(name: str, runs: list[tuple[str, Series]], *, smoothing: float = 0.0) -> str:
    """One metric of several runs on shared axes, a colour and a legend entry per run."""
    drawn = [(label, s, smooth(thin(s.points), smoothing)) for label, s in runs if s.points]
    xs = [x for _, _, pts in drawn for x, _ in pts] or [0.0]
    ys = [y for _, _, pts in drawn for _, y in pts] or [0.0]
    x0, x1 = _span(min(xs), max(xs))
    y0, y1 = _span(min(ys), max(ys))
    top = TOP + 14 * ((len(drawn) + 2) // 3)  # legend rows, three runs a row
    height = HEIGHT + top - TOP
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - top - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * plot_h

    label = escape(f"{name}: " + "; ".join(f"{run} last {fmt(s.last)}" for run, s, _ in drawn))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart overlay-chart" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{label}" '
        f'data-metric="{escape(name)}">',
        f"<title>{label}</title>",
        '<g class="grid" stroke="#e3e7ec" stroke-width="1">',
    ]
    ticks = [y1, (y0 + y1) / 2, y0]
    for y in ticks:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
    parts.append('</g><g class="labels" fill="#5d6773" font-size="10" font-family="sans-serif">')
    for y in ticks:
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(y) + 3:.1f}" text-anchor="end">{escape(fmt(y))}</text>'
        )
    bottom = height - 6
    parts.append(
        f'<text x="{LEFT}" y="{bottom}">{escape(fmt(x0 if len(xs) > 1 else xs[0]))}</text>'
    )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{bottom}" text-anchor="end">{escape(fmt(max(xs)))}</text>'
    )
    for i, (run, _, _) in enumerate(drawn):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        lx, ly = LEFT + (i % 3) * 100, TOP + 14 * (i // 3)
        parts.append(
            f'<rect x="{lx}" y="{ly - 6}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(run[:16])}</text>'
        )
    parts.append("</g>")
    for i, (run, _, points) in enumerate(drawn):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" data-run="{escape(run)}" fill="none" stroke="{colour}" '
            f'stroke-width="1.75" stroke-linejoin="round" points="{coords}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def compare(runs: list[tuple[str, list[dict]]], *, smoothing: float = 0.0) -> list[dict]:
    """Overlay charts of the metrics the runs report, one chart per metric name, in the usual
    order; a metric constant in every run is left out."""
    by_name: dict[str, list[tuple[str, Series]]] = {}
    for label, metrics in runs:
        for series in metric_series(metrics):
            by_name.setdefault(series.name, []).append((label, series))
    names = sorted(by_name, key=_rank)
    return [
        {
            "name": name,
            "runs": len(by_name[name]),
            "svg": overlay_chart(name, by_name[name], smoothing=smoothing),
        }
        for name in names
        if not all(is_constant(s) for _, s in by_name[name])
    ]


# --- Values with intervals, per round (the loop page) ---------------------------------------


@dataclass(frozen=True)
class IntervalSeries:
    """Points (x, y, low, high); low and high may be None for a point without an interval."""

    name: str
    points: list[tuple[float, float, float | None, float | None]]
    colour: str = "#2457c5"


def interval_chart(
    series: list[IntervalSeries],
    *,
    title: str,
    y_range: tuple[float, float] = (0.0, 1.0),
    reference: float | None = 0.5,
    x_label: str = "round",
) -> str:
    """An SVG chart of a few series over integer x (rounds): each point with its interval as a
    vertical bar, a dashed reference line (0.5: a coin flip), a legend. Text is escaped."""
    drawn = [s for s in series if s.points]
    xs = sorted({p[0] for s in drawn for p in s.points}) or [1]
    x0, x1 = _span(min(xs) - 0.5, max(xs) + 0.5)
    y0, y1 = y_range
    top = TOP + 14  # room for the legend
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - top - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        y = min(max(y, y0), y1)
        return top + (y1 - y) / (y1 - y0) * plot_h

    label = escape(
        f"{title}: "
        + "; ".join(
            f"{s.name} " + ", ".join(f"{x:g}: {fmt(y)}" for x, y, _, _ in s.points) for s in drawn
        )
        if drawn
        else f"{title}: no data yet"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart interval-chart" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">',
        f"<title>{label}</title>",
        '<g class="grid" stroke="#e3e7ec" stroke-width="1">',
    ]
    ticks = [y1, (y0 + y1) / 2, y0]
    for y in ticks:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>')
    parts.append("</g>")
    if reference is not None:
        parts.append(
            f'<line class="reference" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(reference):.1f}" '
            f'y2="{sy(reference):.1f}" stroke="#9aa4b0" stroke-dasharray="4 3"/>'
        )
    parts.append('<g class="labels" fill="#5d6773" font-size="10" font-family="sans-serif">')
    for y in ticks:
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(y) + 3:.1f}" text-anchor="end">{escape(fmt(y))}</text>'
        )
    bottom = HEIGHT - 6
    shown = xs if len(xs) <= 12 else [xs[0], xs[-1]]
    for x in shown:
        parts.append(
            f'<text x="{sx(x):.1f}" y="{bottom}" text-anchor="middle">{escape(f"{x:g}")}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{bottom}" text-anchor="end">{escape(x_label)}</text>'
    )
    legend_x = LEFT
    for s in drawn:
        colour = escape(s.colour)
        parts.append(
            f'<rect x="{legend_x}" y="{TOP - 6}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{TOP}">{escape(s.name)}</text>'
        )
        legend_x += 24 + 6 * len(s.name)
    parts.append("</g>")
    for i, s in enumerate(drawn):
        colour = escape(s.colour)
        # Side by side when several series share a round, so their bars do not overlap.
        shift = (i - (len(drawn) - 1) / 2) * 6
        parts.append(f'<g class="series" data-series="{escape(s.name)}" stroke="{colour}">')
        if len(s.points) > 1:
            coords = " ".join(f"{sx(x) + shift:.1f},{sy(y):.1f}" for x, y, _, _ in s.points)
            parts.append(
                f'<polyline fill="none" stroke-width="1.5" stroke-opacity=".6" points="{coords}"/>'
            )
        for x, y, low, high in s.points:
            cx = sx(x) + shift
            if low is not None and high is not None:
                parts.append(
                    f'<line class="interval" x1="{cx:.1f}" x2="{cx:.1f}" y1="{sy(low):.1f}" '
                    f'y2="{sy(high):.1f}" stroke-width="1.5"/>'
                )
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(f'{x:g}: {fmt(y)}')}"
                + (escape(f" ({fmt(low)}–{fmt(high)})") if low is not None else "")
                + "</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
