"""A project's pairwise answers as numpy arrays, and the pairwise metrics computed on them.

The statistics page reads 100 000 answers: a Python object per answer and a loop per metric
cost seconds, so pairwise answers come from one query (category and side worked out in SQL)
straight into arrays, and the hot metrics are vectorised here. They compute the same values
as the plain functions in agreement.py (tests/annotator/quality/test_arrays.py holds them to
each other on random data).
"""

from dataclasses import dataclass
from itertools import combinations

import krippendorff
import numpy as np
from django.db import connection

from annotator.models import Annotation, Kind, LabelerKind, Task
from annotator.quality.agreement import CATEGORIES, PairAgreement
from webapp import sql

N_CAT = len(CATEGORIES)


@dataclass
class Pairwise:
    task: np.ndarray  # int64, sorted by task then labeler
    labeler: np.ndarray  # int64
    code: np.ndarray  # int64: index into CATEGORIES
    left: np.ndarray  # int8: 1 chose the left response, 0 the right, -1 tie / both bad / unknown
    time_ms: np.ndarray  # float64, nan when not given
    round: np.ndarray  # int64, -1 when none
    prompt: np.ndarray  # int64
    chosen: np.ndarray  # int64, -1 when none
    rejected: np.ndarray  # int64, -1 when none
    simulated: np.ndarray  # int64: 1 for a simulated labeler's answer
    day: np.ndarray  # int64: days since 1970-01-01 (UTC) of the answer

    def __len__(self) -> int:
        return len(self.task)

    def where(self, mask: np.ndarray) -> "Pairwise":
        return Pairwise(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    def answers(self) -> list[tuple[int, int, str]]:
        return [
            (int(t), int(lab), CATEGORIES[c])
            for t, lab, c in zip(self.task, self.labeler, self.code, strict=True)
        ]


N_COLUMNS = 11


def _sql() -> str:
    """The pairwise answers of project %s, kind %s: N_COLUMNS integers a row, never null,
    in no particular order (`load` sorts them)."""
    if connection.vendor == "postgresql":
        left = "(a.shown_order->>0)::bigint"
        day = "((a.created_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
    else:
        left = "CAST(json_extract(a.shown_order, '$[0]') AS INTEGER)"
        day = "CAST(julianday(a.created_at) - 2440587.5 AS INTEGER)"
    columns = [
        "a.task_id", "a.labeler_id",
        """CASE WHEN a.verdict = 'tie' THEN 2 WHEN a.verdict = 'both_bad' THEN 3
                WHEN a.chosen_id < a.rejected_id THEN 0 ELSE 1 END""",
        f"""CASE WHEN a.chosen_id IS NULL OR {left} IS NULL THEN -1
                 WHEN a.chosen_id = {left} THEN 1 ELSE 0 END""",
        "COALESCE(a.time_spent_ms, -1)", "COALESCE(t.round, -1)", "t.prompt_id",
        "COALESCE(a.chosen_id, -1)", "COALESCE(a.rejected_id, -1)",
        f"CASE WHEN a.labeler_kind = '{LabelerKind.SIMULATED}' THEN 1 ELSE 0 END", day,
    ]  # fmt: skip
    if connection.vendor == "postgresql":  # every column 8 bytes: see _aggregated
        columns = [f"({c})::bigint" for c in columns]
    assert len(columns) == N_COLUMNS
    return f"""
        SELECT {", ".join(columns)}
        FROM {sql.table(Annotation)} a JOIN {sql.table(Task)} t ON t.id = a.task_id
        WHERE t.project_id = %s AND a.kind = %s
    """  # noqa: S608 -- table names only


# PostgreSQL caps one value at 1 GB, and an answer takes N_COLUMNS * 8 bytes: up to this
# many answers come as one value; a project with more comes in ranges of GROUP_TASKS task
# ids (~1 000 answers a task at most).
ONE_VALUE = 5_000_000
GROUP_TASKS = 20_000


# PostgreSQL sends each row as six 8-byte integers: the small columns packed into two (what
# the server spends is per value made and appended, not per byte). (column, first bit) of
# each packed one; every field is non-negative once 1 is added to those that can be -1, and
# the day (the last field of its word) is read back with its sign.
_PACKED = {
    "w1": ((1, 0), (2, 32), (3, 34), (9, 36), (10, 37)),  # labeler, code, left, simulated, day
    "w2": ((4, 0), (5, 32)),  # time_ms, round
}
_PLUS_ONE = {3, 4, 5}  # left, time_ms, round: -1 for none
_WORDS = [0, "w1", "w2", 6, 7, 8]


def _word(word) -> str:
    if isinstance(word, int):
        return f"c{word}"
    return " | ".join(
        f"((c{c}{' + 1' if c in _PLUS_ONE else ''}) << {bit})" for c, bit in _PACKED[word]
    )


def _unpack(words: np.ndarray) -> np.ndarray:
    """The N_COLUMNS columns from the six words of each row."""
    m = np.empty((len(words), N_COLUMNS), dtype=np.int64)
    for i, word in enumerate(_WORDS):
        if isinstance(word, int):
            m[:, word] = words[:, i]
            continue
        signed, bits = words[:, i], words[:, i].view(np.uint64)
        fields = _PACKED[word]
        for (c, bit), (_, end) in zip(fields, [*fields[1:], (None, 64)], strict=True):
            if end == 64 and c == 10:  # the day: an arithmetic shift keeps its sign
                m[:, c] = signed >> bit
            else:
                m[:, c] = ((bits >> np.uint64(bit)) & np.uint64((1 << (end - bit)) - 1)).astype(
                    np.int64
                )
            if c in _PLUS_ONE:
                m[:, c] -= 1
    return m


def _aggregated(project_id: int, answers: int | None) -> np.ndarray:
    """PostgreSQL: the rows as bytea values, each the rows' (packed) columns as 8-byte
    big-endian integers (`int8send`) one after another, read in binary. The whole result goes
    into a numpy buffer without a Python object per row: 100 000 rows take milliseconds of
    Python instead of a tuple (or a COPY row) each. Concatenated bytes cost the server about
    half what an array of arrays (`array_agg`, `array_send`) did, which builds an array per
    row.

    One aggregate over all rows needs no sort; a GROUP BY (only past ONE_VALUE answers) has
    PostgreSQL sort every row first, on disk past work_mem, which took longer than the rest
    of the read together at 100 000 answers. `answers`: at most how many rows there are, when
    the caller knows (else one count finds out)."""
    params = [project_id, Kind.PAIRWISE]
    if answers is None:
        (answers,) = sql.one(f"SELECT count(*) FROM ({_sql()}) AS q", params)  # noqa: S608
    names = ", ".join(f"c{i}" for i in range(N_COLUMNS))
    row = " || ".join(f"int8send({_word(w)})" for w in _WORDS)
    group = f"GROUP BY q.c0 / {GROUP_TASKS}" if answers > ONE_VALUE else ""
    statement = f"""
        SELECT string_agg({row}, ''::bytea) FROM ({_sql()}) AS q({names}) {group}
    """  # noqa: S608 -- our own column names and constants
    parts = [np.zeros((0, N_COLUMNS), dtype=np.int64)]
    for (data,) in sql.binary_rows(statement, params):
        if data is not None:  # no rows: one aggregate of nothing is null
            words = np.frombuffer(data, ">i8").astype(np.int64).reshape(-1, len(_WORDS))
            parts.append(_unpack(words))
    return np.concatenate(parts)


def load(project_id: int, *, answers: int | None = None) -> Pairwise:
    """The project's pairwise answers. `answers`: an upper bound of their number when the
    caller has one (the page's version counts every answer), which saves a count."""
    if connection.vendor == "postgresql":
        rows = _aggregated(project_id, answers)
    else:
        rows = sql.all_rows(_sql(), [project_id, Kind.PAIRWISE])
    if not len(rows):
        empty = np.zeros(0, dtype=np.int64)
        return Pairwise(empty, empty, empty, empty.astype(np.int8), empty.astype(float),
                        empty, empty, empty, empty, empty, empty)  # fmt: skip
    # One conversion of the whole result; nulls came as -1 (COALESCE above). Sorted here,
    # not in SQL: the database would sort 100 000 rows on disk (past work_mem), numpy
    # sorts them in memory in milliseconds.
    m = np.array(rows, dtype=np.int64)
    m = m[_by_task_then_labeler(m[:, 0], m[:, 1])]
    time_ms = m[:, 4].astype(float)
    time_ms[m[:, 4] < 0] = np.nan
    return Pairwise(
        task=m[:, 0], labeler=m[:, 1], code=m[:, 2], left=m[:, 3].astype(np.int8),
        time_ms=time_ms, round=m[:, 5], prompt=m[:, 6], chosen=m[:, 7], rejected=m[:, 8],
        simulated=m[:, 9], day=m[:, 10],
    )  # fmt: skip


def _by_task_then_labeler(task: np.ndarray, labeler: np.ndarray) -> np.ndarray:
    """The order that sorts rows by task, then labeler (ids are positive): one stable sort of
    a combined key where it cannot overflow (a third of lexsort's time), else lexsort."""
    span = int(labeler.max()) + 1
    if int(task.max()) < (2**62) // span:
        return np.argsort(task * span + labeler, kind="stable")
    return np.lexsort((labeler, task))


def _groups(task: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task ids, the index of each row's task, and each task's row count. The rows are
    sorted by task (load sorts them, `where` keeps the order), so this is one pass where
    np.unique would sort again."""
    if not len(task) or (task[1:] < task[:-1]).any():
        return np.unique(task, return_inverse=True, return_counts=True)
    starts = np.flatnonzero(np.concatenate([[True], task[1:] != task[:-1]]))
    ids = task[starts]
    sizes = np.diff(np.append(starts, len(task)))
    inverse = np.repeat(np.arange(len(ids)), sizes)
    return ids, inverse, sizes


def counts_per_task(p: Pairwise) -> tuple[np.ndarray, np.ndarray]:
    """(tasks x categories) answer counts, and each row's task index."""
    ids, inverse, _ = _groups(p.task)
    counts = np.bincount(inverse * N_CAT + p.code, minlength=len(ids) * N_CAT)
    return counts.reshape(len(ids), N_CAT), inverse


def percent_agreement(p: Pairwise) -> float | None:
    """As agreement.percent_agreement: the mean share of agreeing labeler pairs per task."""
    if not len(p):
        return None
    counts, _ = counts_per_task(p)
    n = counts.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return None
    agreeing = (counts * (counts - 1)).sum(axis=1)[keep]
    return float(np.mean(agreeing / (n[keep] * (n[keep] - 1))))


def percent_agreement_by_round(p: Pairwise) -> list[tuple[int, float | None]]:
    """(round, percent_agreement of that round's answers) for each round with answers. A
    task belongs to one round, so each task's share is worked out once and grouped."""
    rounds = sorted(set(np.unique(p.round).tolist()) - {-1})
    if not rounds:
        return []
    counts, inverse = counts_per_task(p)
    task_round = np.empty(len(counts), dtype=np.int64)
    task_round[inverse] = p.round
    n = counts.sum(axis=1)
    keep = n >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (counts * (counts - 1)).sum(axis=1) / (n * (n - 1))
    out = []
    for r in rounds:
        mask = keep & (task_round == r)
        out.append((r, float(np.mean(share[mask])) if mask.any() else None))
    return out


def consensus(p: Pairwise) -> dict[int, tuple[int, int]]:
    """As stats.consensus_agreement for pairwise rows: labeler -> (agreeing, compared)."""
    if not len(p):
        return {}
    counts, inverse = counts_per_task(p)
    others = counts[inverse].copy()
    others[np.arange(len(p)), p.code] -= 1
    top = others.max(axis=1)
    unique = (others == top[:, None]).sum(axis=1) == 1
    compared = unique & (top > 0)
    agree = compared & (others[np.arange(len(p)), p.code] == top)
    labs, inv = np.unique(p.labeler, return_inverse=True)
    n = np.bincount(inv, weights=compared, minlength=len(labs))
    a = np.bincount(inv, weights=agree, minlength=len(labs))
    return {int(lab): (int(a[i]), int(n[i])) for i, lab in enumerate(labs)}


def _pair_tables(p: Pairwise):
    """Every labeler pair's confusion matrix, counted at once: (pairs as (a, b) rows, shared
    tasks, observed agreement, Cohen's kappa (nan where undefined)), or None if no task has
    two answers."""
    _, inverse, sizes = _groups(p.task)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    first, second = [], []
    for m in np.unique(sizes):
        if m < 2:
            continue
        base = starts[sizes == m]
        for i, j in combinations(range(int(m)), 2):
            first.append(base + i)
            second.append(base + j)
    if not first:
        return None
    a, b = np.concatenate(first), np.concatenate(second)
    la, lb = p.labeler[a], p.labeler[b]  # la < lb: rows are sorted by labeler within a task
    big = int(p.labeler.max()) + 1
    keys, pair_idx = np.unique(la * big + lb, return_inverse=True)
    pairs = np.stack([keys // big, keys % big], axis=1)
    cells = (pair_idx * N_CAT + p.code[a]) * N_CAT + p.code[b]
    matrices = np.bincount(cells, minlength=len(pairs) * N_CAT * N_CAT)
    matrices = matrices.reshape(len(pairs), N_CAT, N_CAT).astype(float)
    n = matrices.sum(axis=(1, 2))
    observed = np.trace(matrices, axis1=1, axis2=2) / n
    expected = (matrices.sum(axis=2) * matrices.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    return pairs, n, observed, np.where(np.isfinite(kappa), kappa, np.nan)


def labeler_pairs(p: Pairwise) -> list[PairAgreement]:
    """As agreement.labeler_pairs: every labeler pair's agreement and Cohen's kappa."""
    tables = _pair_tables(p) if len(p) else None
    if tables is None:
        return []
    pairs, n, observed, kappa = tables
    # Plain Python numbers first: 4950 pairs at 100 labelers, one numpy scalar each is slow.
    return [
        PairAgreement(x, y, int(shared), share, None if k != k else k)  # k != k: nan
        for (x, y), shared, share, k in zip(pairs.tolist(), n.tolist(), observed.tolist(),
                                            kappa.tolist(), strict=True)
    ]  # fmt: skip


def mean_kappa(p: Pairwise) -> float | None:
    """agreement.mean_kappa(labeler_pairs(p)), the same number, without an object per pair
    (the Labelers page shows only this mean)."""
    tables = _pair_tables(p) if len(p) else None
    if tables is None:
        return None
    _, n, _, kappa = tables
    keep = np.isfinite(kappa)
    shared, kappas = n[keep].tolist(), kappa[keep].tolist()
    total = sum(shared)
    return sum(k * s for k, s in zip(kappas, shared, strict=True)) / total if total else None


def nominal_alpha(p: Pairwise) -> float | None:
    """Krippendorff's alpha (nominal, the krippendorff package) of the pairwise answers,
    from each task's category counts: the package takes them as they are (`value_counts`),
    so no labelers x tasks matrix is built. None when fewer than two categories are used
    on tasks with two or more answers (alpha is 0/0)."""
    if not len(p):
        return None
    counts, _ = counts_per_task(p)
    counts = counts[counts.sum(axis=1) >= 2]
    if (counts.sum(axis=0) > 0).sum() < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = krippendorff.alpha(
            value_counts=counts, value_domain=list(range(N_CAT)), level_of_measurement="nominal"
        )
    return float(alpha) if np.isfinite(alpha) else None


def per_labeler(p: Pairwise) -> dict[int, dict]:
    """labeler -> answers, median seconds, (left answers, strict answers)."""
    labs, inv = np.unique(p.labeler, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(labs) + 1))
    out = {}
    for i, lab in enumerate(labs):
        idx = order[bounds[i] : bounds[i + 1]]
        times = p.time_ms[idx]
        times = times[~np.isnan(times)]
        side = p.left[idx]
        out[int(lab)] = {
            "n": len(idx),
            "times": times,
            "left": (int((side == 1).sum()), int((side >= 0).sum())),
        }
    return out


def preference_edges(p: Pairwise) -> list[tuple[int, int, int, int]]:
    """(labeler, prompt, winner, loser) of strict answers on prompts where the labeler
    judged two or more pairs (one can be neither a triad nor a contradiction)."""
    strict = p.code < 2
    if not strict.any():
        return []
    q = p.where(strict)
    keys = q.labeler * (int(q.prompt.max()) + 1) + q.prompt
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    many = counts[inv] >= 2
    q = q.where(many)
    return list(zip(q.labeler.tolist(), q.prompt.tolist(), q.chosen.tolist(),
                    q.rejected.tolist(), strict=True))  # fmt: skip
