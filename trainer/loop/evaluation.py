"""Statistics for judging models from human (or simulated) pairwise labels.

Plain Python and numpy, no Django: the loop's selectors turn annotations into outcomes or
comparisons, and this module turns those into numbers with intervals.

- `wilson_interval` / `win_rate`: how often a model beat another, with a 95 % Wilson score
  interval (Wilson 1927). A tie counts as half a win and as one trial, so a model that only
  ties sits at 0.5; the interval then treats the half wins as if they were whole outcomes,
  which is the usual convention and slightly conservative (ties make outcomes less variable).
- `bradley_terry`: strengths of many models from who beat whom (Bradley & Terry 1952), on an
  Elo-like scale (400 points = 10:1 odds). Fitted by a fixed-point iteration of the MM family
  with a small prior, so a model that never lost (or never won) still gets a finite rating.
- `bootstrap_intervals` / `leaderboard`: 95 % percentile intervals for those ratings from
  resampling the comparisons with replacement.
"""

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# A comparison is (winner, loser), or (a, b, score) with score a's result: 1 a won, 0.5 a tie,
# 0 b won.
Comparison = tuple[Hashable, Hashable] | tuple[Hashable, Hashable, float]

ELO_SCALE = 400.0  # rating points per factor of 10 in the odds
ELO_BASE = 1000.0  # the mean rating (or the anchor's)

_OUTCOME_SCORES = {"win": 1.0, "tie": 0.5, "loss": 0.0}


# --- One model against another --------------------------------------------------------------


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion of `wins` out of `n` trials.

    `wins` may be fractional: count each tie as half a win. z = 1.96 gives 95 %. With no trials
    nothing is known: (0.0, 1.0).
    """
    if n < 0 or wins < 0 or wins > n:
        raise ValueError(f"need 0 <= wins <= n, got wins={wins}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # Clamp rounding noise only: mathematically the interval lies inside [0, 1].
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class WinRate:
    wins: int
    ties: int
    losses: int
    n: int
    rate: float  # (wins + ties / 2) / n; 0.5 when n == 0
    low: float
    high: float


def win_rate(outcomes: Iterable[str | float], z: float = 1.96) -> WinRate:
    """Win rate with its Wilson interval from outcomes seen from one model's side.

    Each outcome is "win", "tie" or "loss", or the score 1, 0.5 or 0. Anything else (a
    "both bad" verdict, say) is the caller's to drop or map before it gets here.
    """
    counts = {1.0: 0, 0.5: 0, 0.0: 0}
    for outcome in outcomes:
        score = _OUTCOME_SCORES.get(outcome) if isinstance(outcome, str) else float(outcome)
        if score not in counts:
            raise ValueError(f"unknown outcome {outcome!r}: use win, tie, loss or 1, 0.5, 0")
        counts[score] += 1
    wins, ties, losses = counts[1.0], counts[0.5], counts[0.0]
    n = wins + ties + losses
    points = wins + ties / 2
    low, high = wilson_interval(points, n, z)
    rate = points / n if n else 0.5
    return WinRate(wins=wins, ties=ties, losses=losses, n=n, rate=rate, low=low, high=high)


# --- Many models: Bradley-Terry -------------------------------------------------------------


def _tally(
    comparisons: Sequence[Comparison], models: Sequence[Hashable] | None
) -> tuple[list[Hashable], np.ndarray, np.ndarray, np.ndarray]:
    """Model ids (first seen first) and the comparisons as arrays: a's index, b's index and
    a's score."""
    ids: dict[Hashable, int] = {}
    for model in models or ():
        ids.setdefault(model, len(ids))
    a_index, b_index, scores = [], [], []
    for comparison in comparisons:
        if len(comparison) == 2:
            a, b, score = comparison[0], comparison[1], 1.0
        elif len(comparison) == 3:
            a, b, score = comparison
            score = float(score)
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"a comparison's score must be within [0, 1]: {comparison!r}")
        else:
            raise ValueError(f"a comparison is (winner, loser) or (a, b, score): {comparison!r}")
        if a == b:
            raise ValueError(f"a model cannot be compared with itself: {comparison!r}")
        a_index.append(ids.setdefault(a, len(ids)))
        b_index.append(ids.setdefault(b, len(ids)))
        scores.append(score)
    return list(ids), np.array(a_index, int), np.array(b_index, int), np.array(scores, float)


def _points(m: int, a: np.ndarray, b: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The points matrix: w[i, j] = what i scored against j (a tie is half a point each)."""
    w = np.bincount(a * m + b, weights=score, minlength=m * m)
    w += np.bincount(b * m + a, weights=1.0 - score, minlength=m * m)
    return w.reshape(m, m)


def _fit_strengths(
    w: np.ndarray, *, prior: float, tol: float, max_iter: int, start: np.ndarray | None = None
) -> np.ndarray:
    """Bradley-Terry strengths p (P(i beats j) = p_i / (p_i + p_j)) from the points matrix.

    The prior is `prior` virtual games of every model against a fixed reference player of
    strength 1, half won and half lost: it keeps every strength finite and positive and pins
    the scale. Each sweep updates one model at a time by the fixed point of Newman (2023), a
    faster relative of Hunter's (2004) MM algorithm with the same maximum, with g = prior / 2:

        p_i <- (sum_j w_ij p_j / (p_i + p_j) + g / (p_i + 1))
               / (sum_j w_ji / (p_i + p_j) + g / (p_i + 1))

    then rescales all strengths by the common factor the prior prefers (the real games do not
    depend on it; left to the sweeps alone, a weak prior takes thousands of them to settle it).
    """
    g = prior / 2
    p = np.ones(len(w)) if start is None else start.copy()
    wt = w.T.copy()
    for _ in range(max_iter):
        before = p.copy()
        # One model at a time, each seeing the others' latest values (Gauss-Seidel): updating
        # all at once can oscillate between two points.
        for i in range(len(p)):
            inv = 1.0 / (p[i] + p)
            reference = g / (p[i] + 1.0)
            p[i] = (w[i] @ (p * inv) + reference) / (wt[i] @ inv + reference)
        p *= _prior_scale(p)
        if np.max(np.abs(np.log(p) - np.log(before))) < tol:
            break
    return p


def _prior_scale(p: np.ndarray) -> float:
    """The factor c maximising the prior's likelihood sum_i log(c p_i / (1 + c p_i)^2), the
    root of sum_i (1 - c p_i) / (1 + c p_i) = 0, by bisection on log c. The sum falls as c
    grows and changes sign between c = 1 / max(p) and c = 1 / min(p)."""
    log_p = np.log(p)
    low, high = -log_p.max(), -log_p.min()
    while high - low > 1e-12:
        mid = (low + high) / 2
        x = np.exp(mid + log_p)
        if np.sum((1 - x) / (1 + x)) > 0:
            low = mid
        else:
            high = mid
    return float(np.exp((low + high) / 2))


def _ratings(ids: list[Hashable], p: np.ndarray, anchor: Hashable | None) -> dict[Hashable, float]:
    elo = ELO_SCALE * np.log10(p)
    shift = ELO_BASE - (elo[ids.index(anchor)] if anchor is not None else elo.mean())
    return {model: float(r + shift) for model, r in zip(ids, elo, strict=True)}


def bradley_terry(
    comparisons: Sequence[Comparison],
    *,
    models: Sequence[Hashable] | None = None,
    prior: float = 1.0,
    anchor: Hashable | None = None,
    tol: float = 1e-9,
    max_iter: int = 10_000,
) -> dict[Hashable, float]:
    """Bradley-Terry ratings on an Elo-like scale, best first.

    comparisons: (winner, loser) pairs, or (a, b, score) with a's score (1 win, 0.5 tie, 0 loss).
    models: ids to rate even if they have no comparison (they get the prior's rating).
    prior: virtual games per model against a reference player, half won: larger pulls every
        rating toward the middle; must be > 0 so an unbeaten model stays finite.
    anchor: the model rated ELO_BASE (1000); by default the ratings' mean is ELO_BASE.

    A difference of 400 points means 10:1 odds: P(i beats j) = 1 / (1 + 10^((r_j - r_i) / 400)).
    """
    if prior <= 0:
        raise ValueError("prior must be > 0: without it an unbeaten model's rating diverges")
    ids, a, b, score = _tally(comparisons, models)
    if anchor is not None and anchor not in ids:
        raise ValueError(f"anchor {anchor!r} is not among the rated models")
    if not ids:
        return {}
    w = _points(len(ids), a, b, score)
    p = _fit_strengths(w, prior=prior, tol=tol, max_iter=max_iter)
    ratings = _ratings(ids, p, anchor)
    return dict(sorted(ratings.items(), key=lambda item: -item[1]))


def bootstrap_intervals(
    comparisons: Sequence[Comparison],
    *,
    n_boot: int = 1000,
    seed: int | None = None,
    confidence: float = 0.95,
    models: Sequence[Hashable] | None = None,
    prior: float = 1.0,
    anchor: Hashable | None = None,
    tol: float = 1e-9,
) -> dict[Hashable, tuple[float, float]]:
    """Percentile bootstrap intervals of the Bradley-Terry ratings.

    Resamples the comparisons with replacement `n_boot` times, refits, and takes the
    (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of each model's rating. The
    ratings are on the same scale as `bradley_terry`'s with the same `anchor` (so with an anchor,
    each interval says where a model stands relative to it; the anchor's own is a point).
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if prior <= 0:
        raise ValueError("prior must be > 0")
    ids, a, b, score = _tally(comparisons, models)
    if not ids:
        return {}
    if anchor is not None and anchor not in ids:
        raise ValueError(f"anchor {anchor!r} is not among the rated models")
    m, n = len(ids), len(a)
    if n == 0:  # nothing to resample: every model sits at the prior's rating
        ratings = _ratings(ids, np.ones(m), anchor)
        return {model: (rating, rating) for model, rating in ratings.items()}
    start = _fit_strengths(_points(m, a, b, score), prior=prior, tol=tol, max_iter=10_000)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_boot, m))
    for row in range(n_boot):
        k = rng.integers(0, n, size=n)
        w = _points(m, a[k], b[k], score[k])
        # Warm start from the full fit: a resample's answer is close to it.
        p = _fit_strengths(w, prior=prior, tol=tol, max_iter=10_000, start=start)
        samples[row] = list(_ratings(ids, p, anchor).values())
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return {model: (float(lo), float(hi)) for model, lo, hi in zip(ids, low, high, strict=True)}


@dataclass(frozen=True)
class RatedModel:
    model: Hashable
    rating: float
    low: float
    high: float
    games: float  # comparisons it took part in
    points: float  # wins, ties counted as half


def leaderboard(
    comparisons: Sequence[Comparison],
    *,
    n_boot: int = 1000,
    seed: int | None = None,
    models: Sequence[Hashable] | None = None,
    prior: float = 1.0,
    anchor: Hashable | None = None,
) -> list[RatedModel]:
    """Every model with its rating, 95 % bootstrap interval and record, best first."""
    comparisons = list(comparisons)
    ratings = bradley_terry(comparisons, models=models, prior=prior, anchor=anchor)
    intervals = bootstrap_intervals(
        comparisons, n_boot=n_boot, seed=seed, models=models, prior=prior, anchor=anchor
    )
    ids, a, b, score = _tally(comparisons, models)
    w = _points(len(ids), a, b, score)
    games = dict(zip(ids, (w + w.T).sum(axis=1), strict=True))
    points = dict(zip(ids, w.sum(axis=1), strict=True))
    return [
        RatedModel(
            model=model,
            rating=rating,
            low=intervals[model][0],
            high=intervals[model][1],
            games=float(games[model]),
            points=float(points[model]),
        )
        for model, rating in ratings.items()
    ]
