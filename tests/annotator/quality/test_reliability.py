"""The Dawid-Skene fit: it finds who is careless, and beats the plain vote."""

import random
from collections import defaultdict

import pytest

from annotator.quality import reliability
from annotator.quality.agreement import FIRST, SECOND, TIE


def simulate(seed, tasks=1500, noise=None):
    """Overlap 3 from 6 labelers: 3 careful (5 %), 2 careless (40 %), 1 who picks a side at
    random with respect to the truth (always the left one, with sides drawn per lease)."""
    noise = noise or {1: 0.05, 2: 0.05, 3: 0.05, 4: 0.4, 5: 0.4, 6: None}
    rng = random.Random(seed)
    rows, truth = [], {}
    for t in range(tasks):
        truth[t] = rng.choice([FIRST, SECOND])
        for lab in rng.sample(sorted(noise), 3):
            if noise[lab] is None:
                answer = rng.choice([FIRST, SECOND])
            elif rng.random() < noise[lab]:
                answer = SECOND if truth[t] == FIRST else FIRST
            else:
                answer = truth[t]
            rows.append((t, lab, answer))
    return rows, truth


@pytest.mark.parametrize("seed", range(3))
def test_it_estimates_each_labelers_accuracy(seed):
    rows, _ = simulate(seed, tasks=4000)
    fit = reliability.fit(rows)
    acc = fit.accuracy()
    assert fit.converged
    for lab in (1, 2, 3):
        assert acc[lab] == pytest.approx(0.95, abs=0.03)
    for lab in (4, 5):
        assert acc[lab] == pytest.approx(0.60, abs=0.05)
    assert acc[6] == pytest.approx(0.50, abs=0.05)
    ranked = sorted(acc, key=acc.get)
    assert set(ranked[:3]) == {4, 5, 6}


def majority_first(categories: list[str]) -> float | None:
    """The plain vote: 1.0 if FIRST has more votes than SECOND, 0.0 if fewer, None if even."""
    f, s = categories.count(FIRST), categories.count(SECOND)
    return None if f == s else float(f > s)


@pytest.mark.parametrize("seed", range(3))
def test_it_recovers_the_truth_better_than_the_majority(seed):
    rows, truth = simulate(seed)
    fit = reliability.fit(rows)
    post = fit.task_posteriors()
    by_task = defaultdict(list)
    for t, _, answer in rows:
        by_task[t].append(answer)
    fit_right = sum((post[t] > 0.5) == (truth[t] == FIRST) for t in truth)
    vote_right = sum(majority_first(by_task[t]) == float(truth[t] == FIRST) for t in truth)
    assert fit_right > vote_right + 0.03 * len(truth)


def test_it_gives_a_task_posterior_from_its_votes_by_hand():
    # The posterior of one vote is Bayes' rule with the fitted confusion matrix.
    rows, _ = simulate(0, tasks=300)
    fit = reliability.fit(rows)
    i = fit.labelers.index(1)
    c, prior = fit.confusion[i], fit.class_prior
    expected = prior[0] * c[0, 0] / (prior[0] * c[0, 0] + prior[1] * c[1, 0])
    assert fit.posterior_of([(1, FIRST)]) == pytest.approx(expected)
    # The careful labeler outweighs two careless ones.
    assert fit.posterior_of([(1, FIRST), (4, SECOND), (5, SECOND)]) > 0.5
    # A tie says little about the side.
    assert 0.3 < fit.posterior_of([(1, TIE)]) < 0.7


def test_it_fits_nothing_to_nothing():
    fit = reliability.fit([])
    assert fit.accuracy() == {} and fit.task_posteriors() == {}
