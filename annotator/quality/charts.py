"""Small server-rendered SVG bar charts for the statistics page (no JavaScript library).

The labeling app does not import the trainer's plots (design.md: annotator never imports
trainer), so it has its own, smaller one. Every piece of text is escaped here: the result
can be put into a page as it is.
"""

from html import escape

WIDTH, HEIGHT = 360, 160
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 24
MAX_BARS = 120


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def bar_chart(
    points: list[tuple[str, float | None]], *, title: str, y_max: float | None = None
) -> str:
    """One bar per (label, value); a missing value draws no bar. Labels of the first and last
    bars are written under the axis."""
    points = points[-MAX_BARS:]
    values = [v for _, v in points if v is not None]
    top_value = y_max if y_max is not None else (max(values) if values else 1.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    label = escape(
        f"{title}: "
        + (", ".join(f"{x} {_fmt(v)}" for x, v in points if v is not None) or "no data yet")
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        'stroke="#c4cad1"/>',
        '<g fill="#5d6773" font-size="10" font-family="sans-serif">',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(_fmt(top_value))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    if points:
        parts.append(
            f'<text x="{LEFT}" y="{HEIGHT - 6}" text-anchor="start">'
            f"{escape(str(points[0][0]))}</text>"
        )
        if len(points) > 1:
            parts.append(
                f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
                f"{escape(str(points[-1][0]))}</text>"
            )
    parts.append("</g>")
    if points:
        slot = plot_w / len(points)
        width = max(1.0, slot * 0.8)
        for i, (x, v) in enumerate(points):
            if v is None:
                continue
            h = max(0.0, min(1.0, v / top_value)) * plot_h
            parts.append(
                f'<rect class="bar" x="{LEFT + i * slot + (slot - width) / 2:.1f}" '
                f'y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" fill="#2457c5">'
                f"<title>{escape(str(x))}: {escape(_fmt(v))}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)
