"""trainer/loop/evaluation.py: Wilson intervals, win rates, Bradley-Terry and its bootstrap.

Plain Python: no database, and the module must not import Django.
"""

import math
import subprocess
import sys

import numpy as np
import pytest

from trainer.loop.evaluation import (
    ELO_BASE,
    bootstrap_intervals,
    bradley_terry,
    leaderboard,
    wilson_interval,
    win_rate,
)


def elo_win_probability(r_a: float, r_b: float) -> float:
    return 1 / (1 + 10 ** ((r_b - r_a) / 400))


def simulate_games(strengths: dict[str, float], games: int, seed: int) -> list[tuple[str, str]]:
    """Random pairs of models; the winner drawn from the Elo/Bradley-Terry probability."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    comparisons = []
    for _ in range(games):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        a_wins = rng.random() < elo_win_probability(strengths[a], strengths[b])
        comparisons.append((a, b) if a_wins else (b, a))
    return comparisons


# --- Wilson and win rates -------------------------------------------------------------------


def test_it_computes_the_wilson_interval_for_8_of_10():
    # By hand: p = 0.8, n = 10, z^2 = 3.8416.
    #   centre = (0.8 + 3.8416 / 20) / (1 + 3.8416 / 10) = 0.99208 / 1.38416 = 0.716738
    #   half   = 1.96 * sqrt(0.8 * 0.2 / 10 + 3.8416 / 400) / 1.38416
    #          = 1.96 * sqrt(0.016 + 0.009604) / 1.38416 = 1.96 * 0.160012 / 1.38416 = 0.226580
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.716738 - 0.226580, abs=1e-5)  # 0.490158
    assert high == pytest.approx(0.716738 + 0.226580, abs=1e-5)  # 0.943318


def test_it_keeps_the_wilson_interval_inside_0_and_1_at_the_extremes():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0 < high < 0.35
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.65 < low < 1
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_it_narrows_the_wilson_interval_with_more_trials():
    small = wilson_interval(8, 10)
    large = wilson_interval(800, 1000)
    assert large[1] - large[0] < (small[1] - small[0]) / 5
    assert large[0] < 0.8 < large[1]


def test_it_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)


def test_it_counts_a_tie_as_half_a_win():
    result = win_rate(["win"] * 6 + ["tie"] * 2 + ["loss"] * 2)
    assert (result.wins, result.ties, result.losses, result.n) == (6, 2, 2, 10)
    assert result.rate == pytest.approx(0.7)
    assert (result.low, result.high) == pytest.approx(wilson_interval(7, 10))


def test_it_accepts_numeric_outcomes_and_rejects_unknown_ones():
    assert win_rate([1, 1, 0.5, 0]).rate == pytest.approx(0.625)
    assert win_rate([]).n == 0 and win_rate([]).rate == 0.5
    with pytest.raises(ValueError, match="both_bad"):
        win_rate(["win", "both_bad"])


# --- Bradley-Terry --------------------------------------------------------------------------


def test_it_gives_the_log_odds_for_two_models():
    # 3 wins to 1: p_a / p_b = 3, so the gap is 400 * log10(3) = 190.85 points (prior ~ 0).
    ratings = bradley_terry([("a", "b")] * 3 + [("b", "a")], prior=1e-6)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(3), abs=0.01)
    assert (ratings["a"] + ratings["b"]) / 2 == pytest.approx(ELO_BASE)
    assert list(ratings) == ["a", "b"]  # best first


def test_it_treats_ties_as_half_a_win():
    only_ties = bradley_terry([("a", "b", 0.5)] * 5)
    assert only_ties["a"] == pytest.approx(only_ties["b"])
    # 2 wins and 2 ties for a = 3 points to 1, the same as 3 wins to 1.
    with_ties = bradley_terry([("a", "b")] * 2 + [("a", "b", 0.5)] * 2, prior=1e-6)
    assert with_ties["a"] - with_ties["b"] == pytest.approx(400 * math.log10(3), abs=0.01)


def test_it_keeps_an_unbeaten_model_finite():
    ratings = bradley_terry([("a", "b")] * 20)
    assert all(math.isfinite(r) for r in ratings.values())
    assert ratings["a"] > ratings["b"]
    # More wins, more confidence: the gap grows with the evidence.
    assert bradley_terry([("a", "b")] * 200)["a"] > ratings["a"]


def test_it_satisfies_the_likelihood_equations():
    # At the maximum (prior ~ 0), each model's expected points equal its actual points:
    # sum_j n_ij * p_i / (p_i + p_j) = points_i, whatever the common scale of the p's.
    comparisons = [("a", "b")] * 7 + [("b", "a")] * 3 + [("b", "c")] * 5 + [("c", "b")] * 1
    comparisons += [("c", "a", 0.5)] * 4 + [("a", "c")]
    ratings = bradley_terry(comparisons, prior=1e-6)
    strength = {m: 10 ** ((r - ELO_BASE) / 400) for m, r in ratings.items()}
    games = {("a", "b"): 10, ("b", "c"): 6, ("a", "c"): 5}
    points = {"a": 7 + 2 + 1, "b": 3 + 5, "c": 1 + 2}
    for model in strength:
        expected = 0.0
        for (x, y), n in games.items():
            if model in (x, y):
                other = y if model == x else x
                expected += n * strength[model] / (strength[model] + strength[other])
        assert expected == pytest.approx(points[model], abs=1e-3), model
    assert sum(ratings.values()) / 3 == pytest.approx(ELO_BASE)


def test_it_ranks_a_clearly_dominant_model_first():
    comparisons = [("champ", other) for other in ("x", "y", "z") for _ in range(8)]
    comparisons += [("x", "y"), ("y", "z"), ("z", "x"), ("y", "x")] * 3
    comparisons += [("x", "champ")]
    ratings = bradley_terry(comparisons)
    assert next(iter(ratings)) == "champ"
    assert ratings["champ"] - max(ratings["x"], ratings["y"], ratings["z"]) > 200


def test_it_recovers_known_strengths_from_simulated_games():
    truth = {"base": 1000.0, "round1": 1100.0, "round2": 1250.0, "bad": 800.0}
    comparisons = simulate_games(truth, games=6000, seed=7)
    ratings = bradley_terry(comparisons, anchor="base")
    assert ratings["base"] == pytest.approx(1000.0)
    for model, rating in truth.items():
        assert ratings[model] == pytest.approx(rating, abs=25), model
    assert list(ratings) == ["round2", "round1", "base", "bad"]


def test_it_rates_listed_models_without_games_at_the_prior():
    ratings = bradley_terry([("a", "b")], models=["a", "b", "new"])
    assert set(ratings) == {"a", "b", "new"}
    assert ratings["b"] < ratings["new"] < ratings["a"]


def test_it_refuses_bad_comparisons():
    with pytest.raises(ValueError):
        bradley_terry([("a", "a")])
    with pytest.raises(ValueError):
        bradley_terry([("a", "b", 1.5)])
    with pytest.raises(ValueError):
        bradley_terry([("a",)])
    with pytest.raises(ValueError):
        bradley_terry([("a", "b")], prior=0)
    with pytest.raises(ValueError):
        bradley_terry([("a", "b")], anchor="c")


# --- Bootstrap ------------------------------------------------------------------------------


def test_its_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_data():
    truth = {"base": 1000.0, "round1": 1120.0, "round2": 1240.0}
    few = simulate_games(truth, games=150, seed=1)
    many = simulate_games(truth, games=2400, seed=2)
    widths = []
    for comparisons in (few, many):
        ratings = bradley_terry(comparisons)
        intervals = bootstrap_intervals(comparisons, n_boot=300, seed=3)
        for model, (low, high) in intervals.items():
            assert low < ratings[model] < high, model
        widths.append(np.mean([high - low for low, high in intervals.values()]))
    # Sixteen times the data: about a quarter of the width (1 / sqrt(16)).
    assert widths[1] < widths[0] / 2.5


def test_its_bootstrap_is_repeatable_with_a_seed():
    comparisons = simulate_games({"a": 1000.0, "b": 1100.0}, games=60, seed=4)
    first = bootstrap_intervals(comparisons, n_boot=50, seed=11)
    assert bootstrap_intervals(comparisons, n_boot=50, seed=11) == first


def test_its_anchored_bootstrap_measures_against_the_anchor():
    comparisons = simulate_games({"base": 1000.0, "new": 1150.0}, games=400, seed=5)
    intervals = bootstrap_intervals(comparisons, n_boot=200, seed=6, anchor="base")
    assert intervals["base"] == pytest.approx((1000.0, 1000.0))
    assert 1000.0 < intervals["new"][0] < 1150.0 < intervals["new"][1]


def test_its_leaderboard_lists_records_best_first():
    comparisons = [("a", "b")] * 6 + [("b", "a")] * 2 + [("a", "c", 0.5)] * 2
    board = leaderboard(comparisons, n_boot=100, seed=0)
    assert [row.model for row in board] == ["a", "c", "b"]
    top = board[0]
    assert (top.games, top.points) == (10.0, 7.0)
    assert top.low <= top.rating <= top.high


def test_it_does_not_import_django():
    code = "import sys, trainer.loop.evaluation; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
