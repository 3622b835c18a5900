"""Server-rendered SVG charts (trainer/plots.py): valid SVG, one point a step, escaped text."""

import xml.etree.ElementTree as ET

from trainer import plots

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    assert root.tag == f"{SVG}svg"
    return root


def polyline_points(root: ET.Element) -> list[tuple[float, float]]:
    (line,) = root.iter(f"{SVG}polyline")
    return [tuple(float(v) for v in pair.split(",")) for pair in line.get("points").split()]


def test_it_draws_one_point_per_step_for_every_metric():
    metrics = [
        {"step": s, "train_loss": 1 / s, "train_accuracy": s / 40, "reward": s * 0.1}
        for s in range(1, 41)
    ]
    charts = plots.charts(metrics)
    assert [c["name"] for c in charts] == ["train_loss", "reward", "train_accuracy"]
    for chart in charts:
        root = parse(chart["svg"])
        assert len(polyline_points(root)) == 40
        assert chart["points"] == 40
        assert root.get("data-metric") == chart["name"]


def test_it_puts_loss_reward_kl_and_accuracy_first():
    row = {"step": 1, "zeta": 1, "val_accuracy": 1, "kl": 1, "mean_reward": 1, "value_loss": 1}
    names = [s.name for s in plots.metric_series([row])]
    assert names == ["value_loss", "mean_reward", "kl", "val_accuracy", "zeta"]


def test_it_leaves_out_the_step_flags_and_values_that_are_not_finite_numbers():
    metrics = [
        {"step": 1, "loss": 0.9, "stopped": 0.0, "note": "warm-up", "flag": True},
        {"step": 2, "loss": float("nan")},
        {"step": 3, "loss": 0.7, "val_loss": 0.8},
        {"step": 4, "loss": float("inf")},
        "not a row",
    ]
    series = {s.name: s.points for s in plots.metric_series(metrics)}
    assert series == {"loss": [(1.0, 0.9), (3.0, 0.7)], "val_loss": [(3.0, 0.8)]}


def test_it_uses_the_position_when_a_row_has_no_step():
    series = plots.metric_series([{"loss": 3}, {"loss": 2}, {"loss": 1}])
    assert series[0].points == [(1, 3.0), (2, 2.0), (3, 1.0)]


def test_it_keeps_the_points_inside_the_plot_area_and_the_line_falling_when_loss_falls():
    (series,) = plots.metric_series([{"step": s, "loss": 10 - s} for s in range(10)])
    points = polyline_points(parse(plots.line_chart(series)))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs)
    assert ys == sorted(ys)  # SVG y grows downwards: a falling loss draws a falling line
    assert min(xs) >= plots.LEFT and max(xs) <= plots.WIDTH - plots.RIGHT
    assert min(ys) >= plots.TOP and max(ys) <= plots.HEIGHT - plots.BOTTOM


def test_it_draws_a_single_point_and_a_flat_series():
    for metrics in ([{"step": 5, "loss": 0.5}], [{"step": s, "loss": 2.0} for s in range(3)]):
        (series,) = plots.metric_series(metrics)
        root = parse(plots.line_chart(series))
        assert len(polyline_points(root)) == len(metrics)
        assert len(list(root.iter(f"{SVG}circle"))) == 1


def test_it_thins_a_long_series_evenly_keeping_the_ends():
    metrics = [{"step": s, "loss": s} for s in range(1, 5001)]
    (chart,) = plots.charts(metrics)
    points = polyline_points(parse(chart["svg"]))
    assert len(points) == plots.MAX_POINTS
    assert chart["points"] == 5000
    assert plots.thin(list(range(10)), 4) == [0, 3, 6, 9]
    assert plots.thin(list(range(3)), 4) == [0, 1, 2]


def test_it_escapes_metric_names():
    (chart,) = plots.charts([{"step": 1, '<script>alert(1)</script>"': 1.0}])
    assert "<script>" not in chart["svg"]
    root = parse(chart["svg"])
    assert root.get("data-metric") == '<script>alert(1)</script>"'


def test_it_formats_numbers_short():
    assert plots.fmt(0) == "0"
    assert plots.fmt(0.693147) == "0.6931"
    assert plots.fmt(1e-5) == "1.00e-5"
    assert plots.fmt(1500) == "1500"
    assert plots.fmt(2.5e6) == "2.50e+6"
