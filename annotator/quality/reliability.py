"""Labeler reliability from pairwise answers: the Dawid-Skene model fitted by EM (numpy).

Dawid & Skene (1979): every task has a hidden true answer k (FIRST: the completion with the
lower id is better, SECOND: the other one); every labeler j answers l (first, second, tie,
both bad) with probability pi[j, k, l], their confusion matrix. Here the matrix is
symmetric (one rate of answering the true side, one of the other side, one of tie, one of
both bad, whichever side is true): "first" and "second" are completion ids, not meanings,
and half the parameters make the estimates steadier with a few hundred answers a labeler.
EM alternates between the posterior of each task's true answer given everyone's answers
(E step) and the confusion matrices and class prior that make those posteriors most likely
(M step).

A small Dirichlet prior on each confusion row (labelers are somewhat better than chance)
keeps labelers with few answers from getting a degenerate 0 or 1 and picks the
non-flipped one of the model's two mirror-image solutions.

A labeler's estimated accuracy is the probability that they answer the true side:
sum_k prior[k] * pi[j, k, k]. A labeler who always picks the left-hand response answers
"first" or "second" at random with respect to the truth (the sides are drawn per lease), so
their accuracy comes out near 0.5.

Pure numpy: no Django. Vectorised over annotations, so 100 000 answers fit in well under a
second.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from annotator.quality.agreement import CATEGORIES, CODE, FIRST

N_TRUE = 2  # FIRST, SECOND
N_ANSWERS = len(CATEGORIES)
# Pseudo-counts of each confusion row: [first, second, tie, both_bad] for truth FIRST;
# truth SECOND swaps the first two. About "right 2 times in 3" before any data.
PRIOR_ROW = np.array([2.0, 1.0, 0.5, 0.5])


@dataclass
class Fit:
    labelers: list[int]  # labeler ids, in the order of the arrays
    tasks: list[int]  # task ids, in the order of `posterior`
    confusion: np.ndarray  # (labelers, 2, 4): P(answer | truth)
    class_prior: np.ndarray  # (2,)
    posterior: np.ndarray  # (tasks, 2): P(truth | answers)
    answers: np.ndarray  # (labelers,): how many answers each labeler gave
    iterations: int
    converged: bool

    def accuracy(self) -> dict[int, float]:
        """labeler id -> estimated probability of answering the true side."""
        diag = self.confusion[:, [0, 1], [0, 1]]  # (labelers, 2)
        acc = diag @ self.class_prior
        return {lab: float(a) for lab, a in zip(self.labelers, acc, strict=True)}

    def task_posteriors(self) -> dict[int, float]:
        """task id -> P(the completion with the lower id is the better one)."""
        return {t: float(p) for t, p in zip(self.tasks, self.posterior[:, 0], strict=True)}

    def posterior_of(self, votes: Iterable[tuple[int, str]]) -> float:
        """P(FIRST is better) for one task given (labeler id, category) answers, with the
        fitted confusion matrices (a labeler the fit never saw gets the prior's)."""
        index = {lab: i for i, lab in enumerate(self.labelers)}
        log = np.log(self.class_prior).copy()
        default = _prior_confusion()
        for labeler, category in votes:
            i = index.get(labeler)
            matrix = self.confusion[i] if i is not None else default
            log += np.log(matrix[:, CODE[category]])
        log -= log.max()
        p = np.exp(log)
        return float(p[0] / p.sum())


def _prior_confusion() -> np.ndarray:
    rows = np.stack([PRIOR_ROW, PRIOR_ROW[[1, 0, 2, 3]]])
    return rows / rows.sum(axis=1, keepdims=True)


def fit(
    answers: Iterable[tuple[int, int, str]],
    *,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> Fit:
    """Fit Dawid-Skene to (task id, labeler id, category) answers."""
    rows = list(answers)
    task_ids, t_idx = np.unique(np.array([r[0] for r in rows], dtype=np.int64), return_inverse=True)
    lab_ids, l_idx = np.unique(np.array([r[1] for r in rows], dtype=np.int64), return_inverse=True)
    resp = np.array([CODE[r[2]] for r in rows], dtype=np.int64)
    return fit_arrays(task_ids, t_idx, lab_ids, l_idx, resp, max_iterations, tolerance)


def fit_arrays(task_ids, t_idx, lab_ids, l_idx, resp, max_iterations=200, tolerance=1e-6) -> Fit:
    """The EM fit of answers given as arrays: task and labeler index of each answer (into
    `task_ids`, `lab_ids`) and its category code.

    Each iteration is two passes over the strict answers. The confusion matrix is symmetric,
    so an answer's tie and both-bad terms are the same for both truths and cancel out of the
    posterior; what is left is a sum per task of +-d[labeler], d the labeler's log-odds of
    answering the true side rather than the other one (E step). In the M step a labeler's
    count of answers on the true side is, over their strict answers, P(FIRST) of the task
    for a FIRST answer and 1 - P(FIRST) for a SECOND one."""
    n_tasks, n_labs = len(task_ids), len(lab_ids)
    if n_tasks == 0:
        return Fit([], [], np.zeros((0, 2, 4)), np.full(2, 0.5), np.zeros((0, 2)),
                   np.zeros(0), 0, True)  # fmt: skip
    resp = np.asarray(resp)
    strict = resp < 2
    st, sl = t_idx[strict], l_idx[strict]
    sign = np.where(resp[strict] == 0, 1.0, -1.0)  # +1 said FIRST, -1 said SECOND
    # Per labeler: strict answers, SECOND answers among them, ties, both bad.
    n_strict = np.bincount(sl, minlength=n_labs).astype(float)
    n_second = np.bincount(sl, weights=sign < 0, minlength=n_labs)
    n_tie = np.bincount(l_idx, weights=resp == 2, minlength=n_labs)
    n_bad = np.bincount(l_idx, weights=resp == 3, minlength=n_labs)
    # Start from the vote shares (ties and both-bad count half for each side).
    first = np.bincount(t_idx, weights=(resp == CODE[FIRST]) + 0.5 * (resp >= 2), minlength=n_tasks)
    total = np.bincount(t_idx, minlength=n_tasks)
    p_first = (first + 1.0) / (total + 2.0)
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 -- read after the loop
        # M step: each labeler's rates of answering the true side, the other side, tie
        # and both bad (the same whichever side is true: the sides are ids, not meanings).
        right = n_second + np.bincount(sl, weights=sign * p_first[st], minlength=n_labs)
        counts = np.stack([right, n_strict - right, n_tie, n_bad], axis=1) + PRIOR_ROW
        rates = counts / counts.sum(axis=1, keepdims=True)  # (labelers, 4)
        class_prior = np.array([p_first.sum() + 1.0, n_tasks - p_first.sum() + 1.0])
        class_prior /= n_tasks + 2.0
        # E step: each task's log-odds of FIRST from its strict answers.
        d = np.log(rates[:, 0]) - np.log(rates[:, 1])
        log_odds = np.log(class_prior[0]) - np.log(class_prior[1])
        log_odds = log_odds + np.bincount(st, weights=sign * d[sl], minlength=n_tasks)
        new = 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # the logistic function, without overflow
        change = np.abs(new - p_first).max()
        p_first = new
        if change < tolerance:
            converged = True
            break
    answers = np.bincount(l_idx, minlength=n_labs)
    return Fit(
        labelers=[int(x) for x in lab_ids],
        tasks=[int(x) for x in task_ids],
        confusion=np.stack([rates, rates[:, [1, 0, 2, 3]]], axis=1),
        class_prior=class_prior,
        posterior=np.stack([p_first, 1.0 - p_first], axis=1),
        answers=answers,
        iterations=iteration,
        converged=converged,
    )
