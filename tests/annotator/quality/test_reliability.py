"""The Dawid-Skene fit: it finds who is careless, and beats the plain vote."""

import random
from collections import defaultdict

import numpy as np
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


def reference_fit(t_idx, l_idx, resp, n_tasks, n_labs, max_iterations=200, tolerance=1e-6):
    """The EM of Dawid-Skene written out plainly, with the full confusion matrix in both
    steps (the first implementation): the fast one must give the same numbers."""
    prior_row = reliability.PRIOR_ROW
    first = np.bincount(t_idx, weights=(resp == 0) + 0.5 * (resp >= 2), minlength=n_tasks)
    total = np.bincount(t_idx, minlength=n_tasks)
    post = np.empty((n_tasks, 2))
    post[:, 0] = (first + 1.0) / (total + 2.0)
    post[:, 1] = 1.0 - post[:, 0]
    for iteration in range(1, max_iterations + 1):  # noqa: B007 -- returned
        right = np.where(resp == 0, post[t_idx, 0], 0.0) + np.where(resp == 1, post[t_idx, 1], 0.0)
        wrong = np.where(resp < 2, 1.0 - right, 0.0)
        counts = np.stack(
            [np.bincount(l_idx, weights=w, minlength=n_labs)
             for w in (right, wrong, resp == 2, resp == 3)], axis=1,
        ) + prior_row  # fmt: skip
        rates = counts / counts.sum(axis=1, keepdims=True)
        confusion = np.stack([rates, rates[:, [1, 0, 2, 3]]], axis=1)
        class_prior = (post.sum(axis=0) + 1.0) / (n_tasks + 2.0)
        log_post = np.tile(np.log(class_prior), (n_tasks, 1))
        for k in range(2):
            log_post[:, k] += np.bincount(
                t_idx, weights=np.log(confusion)[l_idx, k, resp], minlength=n_tasks
            )
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        change = np.abs(new - post).max()
        post = new
        if change < tolerance:
            break
    return confusion, class_prior, post, iteration


@pytest.mark.parametrize("seed", range(4))
def test_it_gives_the_numbers_of_the_plain_em(seed):
    rng = np.random.default_rng(seed)
    n_tasks, n_labs, n = 300, 12, 900
    t_idx = np.sort(rng.integers(0, n_tasks, n))
    t_idx[:n_tasks] = np.arange(n_tasks)  # every task answered at least once
    t_idx.sort()
    l_idx = rng.integers(0, n_labs, n)
    l_idx[:n_labs] = np.arange(n_labs)
    # Mostly strict answers, some ties and both-bad; labeler 0 answers only ties.
    resp = rng.choice(4, size=n, p=[0.45, 0.4, 0.1, 0.05])
    resp[l_idx == 0] = 2
    fit = reliability.fit_arrays(np.arange(n_tasks), t_idx, np.arange(n_labs), l_idx, resp)
    confusion, class_prior, post, iterations = reference_fit(t_idx, l_idx, resp, n_tasks, n_labs)
    assert fit.iterations == iterations
    np.testing.assert_allclose(fit.confusion, confusion, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.class_prior, class_prior, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.posterior, post, rtol=0, atol=1e-12)
