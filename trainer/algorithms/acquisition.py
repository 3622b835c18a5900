"""Acquisition rules: which pairs of candidate responses are worth a human label (issue #10).

Plain Python, no Django and no torch: the loop (trainer/loop/services.py) calls it with the
reward model's scores of each candidate, and a benchmark can call it the same way.

A prompt has N candidates; each candidate carries its reward under each head of a reward
ensemble (one head: a plain reward model). The margin of a pair under head k is
``m_k = r_k(a) - r_k(b)``; its mean over heads is the ensemble's margin.

- ``random``: the baseline: a random pair per prompt, a random order of prompts.
- ``uncertainty``: the pair whose ensemble margin is closest to zero, i.e. whose predicted
  preference ``σ(m)`` is closest to a coin flip; score ``1 - |2σ(m) - 1|`` in [0, 1].
- ``disagreement``: the pair on whose margin the heads disagree most; score: the variance of
  ``m_k`` over the heads (epistemic uncertainty, as in ensemble active learning). Equal
  variances (a single head has none) fall back to the uncertainty score.
- ``top-two``: the two candidates the ensemble ranks highest, scored by uncertainty: the
  comparison that decides what a best-of-N policy step would keep.

Pairs of identical texts teach nothing (their margin is zero by construction) and are never
chosen. :func:`choose_pairs` takes at most ``per_prompt`` pairs from each prompt (correlated
pairs of one prompt teach less than pairs of different prompts), then the ``budget`` best
over all prompts, best first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

RULES = ("random", "uncertainty", "disagreement", "top-two")
# What each rule is, for forms and help texts.
RULE_HELP = {
    "random": "a random pair per prompt (the baseline)",
    "uncertainty": "the pair whose reward margin is closest to zero",
    "disagreement": "the pair on whose margin the reward heads disagree most",
    "top-two": "the two candidates with the highest reward",
}
# Rules that need the reward model's scores of the candidates.
SCORED_RULES = frozenset(RULES) - {"random"}


@dataclass(frozen=True)
class Candidate:
    """One response: an id of the caller's, its text, and its reward under each head."""

    key: Hashable
    scores: tuple[float, ...] = ()
    text: str = ""

    @property
    def reward(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass(frozen=True)
class Pick:
    """A chosen pair: the prompt, the two candidates' keys, the rule's score (higher is more
    useful) and the margin the ensemble predicted (a minus b)."""

    prompt: Hashable
    a: Hashable
    b: Hashable
    score: float
    margin: float
    rule: str


def _margins(a: Candidate, b: Candidate) -> list[float]:
    return [x - y for x, y in zip(a.scores, b.scores, strict=True)]


def uncertainty(a: Candidate, b: Candidate) -> float:
    """1 at a zero margin, towards 0 as the predicted preference gets sure."""
    m = a.reward - b.reward
    p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, m))))
    return 1.0 - abs(2.0 * p - 1.0)


def disagreement(a: Candidate, b: Candidate) -> float:
    """Variance over the heads of the pair's margin (0 with a single head)."""
    margins = _margins(a, b)
    if len(margins) < 2:
        return 0.0
    mean = sum(margins) / len(margins)
    return sum((m - mean) ** 2 for m in margins) / (len(margins) - 1)


def _distinct(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Drop candidates whose text repeats an earlier one's (empty texts count as distinct)."""
    seen, out = set(), []
    for c in candidates:
        if c.text and c.text in seen:
            continue
        seen.add(c.text)
        out.append(c)
    return out


def pair_scores(
    rule: str, candidates: Sequence[Candidate], rng: random.Random | None = None
) -> list[tuple[float, float, int, int]]:
    """Every pair of distinct candidates with its score, best first:
    ``(score, tie-break, i, j)`` with i, j indices into ``candidates``."""
    if rule not in RULES:
        raise ValueError(f"unknown acquisition rule {rule!r}; expected one of {', '.join(RULES)}")
    rng = rng or random.Random(0)
    keep = {id(c) for c in _distinct(candidates)}
    index = [i for i, c in enumerate(candidates) if id(c) in keep]
    if rule == "top-two":
        ranked = sorted(index, key=lambda i: -candidates[i].reward)
        if len(ranked) < 2:
            return []
        i, j = ranked[0], ranked[1]
        return [(uncertainty(candidates[i], candidates[j]), 0.0, i, j)]
    out = []
    for x, i in enumerate(index):
        for j in index[x + 1 :]:
            a, b = candidates[i], candidates[j]
            if rule == "random":
                out.append((rng.random(), 0.0, i, j))
            elif rule == "uncertainty":
                out.append((uncertainty(a, b), 0.0, i, j))
            else:
                out.append((disagreement(a, b), uncertainty(a, b), i, j))
    out.sort(key=lambda t: (-t[0], -t[1], t[2], t[3]))
    return out


def choose_pairs(
    rule: str,
    groups: dict[Hashable, Sequence[Candidate]],
    *,
    budget: int | None = None,
    per_prompt: int = 1,
    seed: int = 0,
) -> list[Pick]:
    """The pairs to ask about: at most ``per_prompt`` from each prompt, the ``budget`` best
    over all prompts (None: no limit), best first. ``random`` shuffles instead of sorting."""
    rng = random.Random(seed)
    picks: list[tuple[float, float, Pick]] = []
    for prompt, candidates in groups.items():
        candidates = list(candidates)
        for score, tie, i, j in pair_scores(rule, candidates, rng)[:per_prompt]:
            a, b = candidates[i], candidates[j]
            # Which side is shown first is randomised per assignment by the queue anyway.
            pick = Pick(prompt, a.key, b.key, score, a.reward - b.reward, rule)
            picks.append((score, tie, pick))
    if rule == "random":
        rng.shuffle(picks)
    else:
        picks.sort(key=lambda t: (-t[0], -t[1]))
    chosen = [p for _, _, p in picks]
    return chosen if budget is None else chosen[:budget]


def priorities(picks: Sequence[Pick], base: int = 0, spread: int = 1000) -> list[int]:
    """Queue priorities for picks given best first: ``base + spread`` for the first down to
    ``base + 1`` for the last, so the queue serves the most useful pair first whatever the
    scale of the rule's score."""
    n = len(picks)
    if n == 1:
        return [base + spread]
    return [base + 1 + round((spread - 1) * (n - 1 - k) / (n - 1)) for k in range(n)]
