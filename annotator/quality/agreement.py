"""Agreement between labelers. Pure functions over plain answers: no database, no Django.

Krippendorff's alpha comes from the krippendorff package and Kendall's tau from scipy;
Cohen's kappa is computed for all labeler pairs at once from their confusion matrices
(scikit-learn's cohen_kappa_score, called once per pair, takes seconds at 100 labelers),
and the tests hold it to scikit-learn's on random data.

Pairwise answers are categories (FIRST: the lower completion id won, SECOND: the higher one
won, TIE, BOTH_BAD); a tie and "both bad" are categories of their own. Likert answers are
scores; rankings are lists of completion ids, best first.

A value that cannot be computed (one labeler, one category used by everyone, no shared
task) is None, never 0: "no evidence" is not "no agreement".
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations
from typing import NamedTuple

import krippendorff
import numpy as np
from scipy.stats import kendalltau

FIRST, SECOND, TIE, BOTH_BAD = "first", "second", "tie", "both_bad"
CATEGORIES = (FIRST, SECOND, TIE, BOTH_BAD)
CODE = {c: i for i, c in enumerate(CATEGORIES)}


class Answer(NamedTuple):
    """One pairwise answer (category) or one Likert score (value) on a task."""

    task_id: int
    labeler_id: int
    value: object


class Ranked(NamedTuple):
    task_id: int
    labeler_id: int
    ranking: list[int]  # completion ids, best first


class Preference(NamedTuple):
    """One "winner beat loser" judgement by a labeler on a prompt (from any task kind)."""

    labeler_id: int
    prompt_id: int
    winner: int
    loser: int


def pairwise_category(verdict: str, chosen_id: int | None, rejected_id: int | None) -> str:
    """What a labeler chose, independent of the side it was shown on."""
    if verdict in (TIE, BOTH_BAD):
        return verdict
    return FIRST if chosen_id < rejected_id else SECOND


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _by_task(answers: Iterable[Answer]) -> dict[int, dict[int, object]]:
    tasks: dict[int, dict[int, object]] = defaultdict(dict)
    for a in answers:
        tasks[a.task_id][a.labeler_id] = a.value
    return tasks


def percent_agreement(answers: Iterable[Answer]) -> float | None:
    """Observed agreement: over tasks with two or more answers, the mean share of labeler
    pairs on the task that gave the same answer."""
    shares = []
    for given in _by_task(answers).values():
        values = list(given.values())
        if len(values) < 2:
            continue
        pairs = list(combinations(values, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


class PairAgreement(NamedTuple):
    labeler_a: int
    labeler_b: int
    shared: int  # tasks both answered
    percent: float
    kappa: float | None


def labeler_pairs(answers: Iterable[Answer], labels=CATEGORIES) -> list[PairAgreement]:
    """Percent agreement and Cohen's kappa for every pair of labelers with a shared task.

    Every pair's confusion matrix is counted in one pass over the tasks and the kappas come
    out of the matrices together (the same formula as scikit-learn's cohen_kappa_score,
    which the tests hold them to): calling it once per pair takes seconds with a hundred
    labelers (4950 pairs)."""
    code = {v: i for i, v in enumerate(labels)}
    index: dict[tuple[int, int], int] = {}
    cells: list[int] = []
    for given in _by_task(answers).values():
        labs = sorted(given)
        for i, x in enumerate(labs):
            for y in labs[i + 1 :]:
                k = index.setdefault((x, y), len(index))
                cells.append((k * len(labels) + code[given[x]]) * len(labels) + code[given[y]])
    if not index:
        return []
    n_labels = len(labels)
    counts = np.bincount(np.array(cells), minlength=len(index) * n_labels * n_labels)
    matrices = counts.reshape(len(index), n_labels, n_labels).astype(float)
    n = matrices.sum(axis=(1, 2))
    observed = np.trace(matrices, axis1=1, axis2=2) / n
    expected = (matrices.sum(axis=2) * matrices.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    out = [
        PairAgreement(x, y, int(n[k]), float(observed[k]), _finite(kappa[k]))
        for (x, y), k in index.items()
    ]
    return sorted(out)


def mean_kappa(pairs: list[PairAgreement]) -> float | None:
    """Light's kappa: the mean of the pairwise kappas, each weighted by its shared tasks."""
    scored = [(p.kappa, p.shared) for p in pairs if p.kappa is not None]
    total = sum(n for _, n in scored)
    return sum(k * n for k, n in scored) / total if total else None


def krippendorff_alpha(
    answers: Iterable[Answer], *, level: str, domain: list | None = None
) -> float | None:
    """Krippendorff's alpha (the krippendorff package) over labelers x tasks; `level` is
    "nominal" (pairwise categories, coded by CATEGORIES) or "ordinal" (scores)."""
    answers = list(answers)
    if level == "nominal":
        answers = [a._replace(value=CODE[a.value]) for a in answers]
        domain = list(range(len(CATEGORIES)))
    tasks = _by_task(answers)
    units = [t for t, given in tasks.items() if len(given) >= 2]
    if not units:
        return None
    values = {v for t in units for v in tasks[t].values()}
    if len(values) < 2:
        return None  # every pairable answer is the same: alpha is 0/0
    labelers = sorted({lab for t in units for lab in tasks[t]})
    row = {lab: i for i, lab in enumerate(labelers)}
    data = np.full((len(labelers), len(units)), np.nan)
    for j, t in enumerate(units):
        for lab, v in tasks[t].items():
            data[row[lab], j] = v
    domain = domain if domain is not None else sorted(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = krippendorff.alpha(
            reliability_data=data, level_of_measurement=level, value_domain=domain
        )
    return _finite(alpha)


# --- Rankings -------------------------------------------------------------------------------


def _positions(ranking: list[int]) -> dict[int, int]:
    return {cid: i for i, cid in enumerate(ranking)}


def kendall_tau(a: list[int], b: list[int]) -> float | None:
    """Kendall's tau (scipy) between two rankings of the same completions."""
    if len(a) < 2:
        return None
    pa, pb = _positions(a), _positions(b)
    items = sorted(pa)
    return _finite(kendalltau([pa[i] for i in items], [pb[i] for i in items]).statistic)


class PairTau(NamedTuple):
    labeler_a: int
    labeler_b: int
    shared: int
    tau: float | None  # mean over the shared tasks


def ranking_pairs(rankings: Iterable[Ranked]) -> list[PairTau]:
    """Mean Kendall's tau for every pair of labelers who ranked a task in common."""
    by_labeler: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for r in rankings:
        by_labeler[r.labeler_id][r.task_id] = r.ranking
    out = []
    for x, y in combinations(sorted(by_labeler), 2):
        shared = sorted(by_labeler[x].keys() & by_labeler[y].keys())
        if not shared:
            continue
        taus = [kendall_tau(by_labeler[x][t], by_labeler[y][t]) for t in shared]
        taus = [t for t in taus if t is not None]
        out.append(PairTau(x, y, len(shared), sum(taus) / len(taus) if taus else None))
    return out


def mean_tau(pairs: list[PairTau]) -> float | None:
    scored = [(p.tau, p.shared) for p in pairs if p.tau is not None]
    total = sum(n for _, n in scored)
    return sum(t * n for t, n in scored) / total if total else None


def kendall_w(rankings: list[list[int]]) -> float | None:
    """Kendall's coefficient of concordance W of m rankings of the same K items (no ties):
    W = 12 S / (m^2 (K^3 - K)), S the sum of squared deviations of the items' rank sums."""
    m = len(rankings)
    if m < 2 or len(rankings[0]) < 2:
        return None
    k = len(rankings[0])
    positions = [_positions(r) for r in rankings]
    sums = [sum(p[item] + 1 for p in positions) for item in rankings[0]]
    mean = m * (k + 1) / 2
    s = sum((r - mean) ** 2 for r in sums)
    return 12 * s / (m**2 * (k**3 - k))


def mean_kendall_w(rankings: Iterable[Ranked]) -> float | None:
    """Kendall's W per task with two or more rankings, averaged over those tasks."""
    by_task: dict[int, list[list[int]]] = defaultdict(list)
    for r in rankings:
        by_task[r.task_id].append(r.ranking)
    ws = [w for rs in by_task.values() if (w := kendall_w(rs)) is not None]
    return sum(ws) / len(ws) if ws else None


# --- Transitivity ---------------------------------------------------------------------------


class Transitivity(NamedTuple):
    labeler_id: int
    triads: int  # triples of completions of one prompt with all three pairs judged
    cycles: int  # of those, judged A>B, B>C, C>A
    contradictions: int  # pairs judged both ways by the same labeler on the same prompt


def transitivity(preferences: Iterable[Preference]) -> list[Transitivity]:
    """Per labeler with a triad or a contradiction: cyclic triads among their judgements on
    each prompt.

    A pair judged both ways (e.g. a repeated task answered differently) is a contradiction
    and takes no part in the triads."""
    edges: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    for p in preferences:
        if p.winner != p.loser:
            edges[(p.labeler_id, p.prompt_id)].add((p.winner, p.loser))
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (labeler, _), judged in edges.items():
        both = {(a, b) for a, b in judged if (b, a) in judged}
        totals[labeler][2] += len(both) // 2
        beats = judged - both
        nodes = sorted({c for e in beats for c in e})
        for a, b, c in combinations(nodes, 3):
            pairs = [(a, b), (a, c), (b, c)]
            direction = []
            for x, y in pairs:
                if (x, y) in beats:
                    direction.append(1)
                elif (y, x) in beats:
                    direction.append(-1)
                else:
                    break
            else:
                totals[labeler][0] += 1
                # a>b, b>c, c>a is (1, -1, 1); the reverse cycle is (-1, 1, -1).
                if direction in ([1, -1, 1], [-1, 1, -1]):
                    totals[labeler][1] += 1
    # Only labelers whose answers could break transitivity (a triad or a pair judged twice).
    return [Transitivity(lab, *totals[lab]) for lab in sorted(totals) if any(totals[lab])]


# --- A summary ------------------------------------------------------------------------------


def likert_summary(answers: list[Answer], *, points: int) -> dict:
    return {
        "answers": len(answers),
        "tasks_with_overlap": sum(1 for g in _by_task(answers).values() if len(g) >= 2),
        "percent_agreement": percent_agreement(answers),
        "krippendorff_alpha": krippendorff_alpha(
            answers, level="ordinal", domain=list(range(1, points + 1))
        ),
    }


def ranking_summary(rankings: list[Ranked]) -> dict:
    pairs = ranking_pairs(rankings)
    return {
        "answers": len(rankings),
        "tasks_with_overlap": sum(
            1 for n in _count_by_task(r.task_id for r in rankings).values() if n >= 2
        ),
        "kendall_tau": mean_tau(pairs),
        "kendall_w": mean_kendall_w(rankings),
        "pairs": pairs,
    }


def _count_by_task(ids: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for t in ids:
        counts[t] += 1
    return counts
