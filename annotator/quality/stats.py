"""Per-labeler statistics and the project's agreement, from one read of its answers.

Used by the admin pages (annotator/quality/views.py) and the API (annotator/quality/api.py):
the same numbers in both.
"""

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

from django.contrib.auth import get_user_model

from annotator.export.params import HARM_FLAGS
from annotator.models import Kind, Project
from annotator.quality import agreement as ag
from annotator.quality import selectors
from annotator.quality.selectors import ProjectAnswers, Row

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None when n is 0."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Rate:
    """A proportion with its count and 95 % Wilson interval."""

    value: float | None
    n: int
    low: float | None
    high: float | None

    @classmethod
    def of(cls, successes: int, n: int) -> "Rate":
        interval = wilson(successes, n)
        if interval is None:
            return cls(None, 0, None, None)
        return cls(successes / n, n, *interval)


@dataclass
class LabelerStats:
    labeler_id: int
    username: str
    simulated: bool
    tasks_done: int
    median_seconds: float | None
    skip_rate: float | None
    agreement: Rate  # with the consensus of the other labelers on the same tasks
    reliability: float | None  # Dawid-Skene estimated accuracy (pairwise answers)
    left_share: Rate  # position bias: share of strict pairwise answers for the left side
    harmful_rate: Rate  # Likert answers with a harm flag
    gold: Rate  # answers on gold tasks that match the gold answer

    def as_dict(self) -> dict:
        return asdict(self)


# --- Consensus ------------------------------------------------------------------------------


def _judgements(row: Row) -> list[tuple[tuple, object]]:
    """What one answer says, as (question, answer) items that others can agree with."""
    if row.kind == Kind.PAIRWISE:
        return [((row.task_id,), row.category)]
    if row.kind == Kind.RANKING:
        pos = {c: i for i, c in enumerate(row.ranking)}
        ids = sorted(pos)
        return [
            ((row.task_id, x, y), pos[x] < pos[y]) for i, x in enumerate(ids) for y in ids[i + 1 :]
        ]
    return []


def consensus_agreement(rows: list[Row]) -> dict[int, tuple[int, int]]:
    """labeler id -> (agreeing, compared): each judgement is compared with the strict
    plurality of the other labelers' answers to the same question (none: not compared).
    Likert: agreeing is within one point of the others' mean score."""
    by_question: dict[tuple, list[tuple[int, object]]] = defaultdict(list)
    likert: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in rows:
        for question, answer in _judgements(r):
            by_question[question].append((r.labeler_id, answer))
        if r.kind == Kind.LIKERT and r.score is not None:
            likert[r.task_id].append((r.labeler_id, r.score))
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for answers in by_question.values():
        if len(answers) < 2:
            continue
        counts = Counter(a for _, a in answers)
        for labeler, answer in answers:
            others = counts.copy()
            others[answer] -= 1
            (top, n), *rest = others.most_common(2) + [(None, 0)]
            if n == 0 or (rest and rest[0][1] == n):
                continue  # the others are split: no consensus to compare with
            out[labeler][1] += 1
            out[labeler][0] += answer == top
    for scores in likert.values():
        if len(scores) < 2:
            continue
        total = sum(s for _, s in scores)
        for labeler, score in scores:
            mean = (total - score) / (len(scores) - 1)
            out[labeler][1] += 1
            out[labeler][0] += abs(score - mean) <= 1
    return {lab: (a, n) for lab, (a, n) in out.items()}


# --- Gold -----------------------------------------------------------------------------------


def gold_matches(gold: dict, row: Row, texts: dict[int, str]) -> bool | None:
    """Whether an answer matches a gold answer; None when the gold says nothing about it.

    Gold answers (docs/quality.md): pairwise {"chosen": completion text} or
    {"chosen_id": id} or {"verdict": "tie" | "both_bad"}; Likert {"score": n}; ranking
    {"ranking": [completion texts or ids, best first]}."""
    if row.kind == Kind.PAIRWISE:
        if "verdict" in gold:
            return row.verdict == gold["verdict"]
        chosen = gold.get("chosen_id")
        if chosen is None and "chosen" in gold:
            chosen = next((c for c, t in texts.items() if t == gold["chosen"]), None)
        return None if chosen is None else row.chosen_id == chosen
    if row.kind == Kind.LIKERT and "score" in gold:
        return row.score == gold["score"]
    if row.kind == Kind.RANKING and isinstance(gold.get("ranking"), list):
        by_text = {t: c for c, t in texts.items()}
        expected = [by_text.get(x, x) for x in gold["ranking"]]
        return row.ranking == expected
    return None


# --- Per labeler ----------------------------------------------------------------------------


def labeler_stats(project: Project, answers: ProjectAnswers | None = None) -> list[LabelerStats]:
    """One row per labeler who answered or skipped something in the project, by username."""
    answers = answers or selectors.project_answers(project)
    fit = selectors.project_fit(project, answers)
    accuracy = fit.accuracy()
    skips = selectors.skip_counts(project)
    gold = selectors.gold_tasks(project)
    harm = set(HARM_FLAGS) & set(project.flags or [])
    agree = consensus_agreement(answers.rows)

    per: dict[int, dict] = defaultdict(
        lambda: {"n": 0, "times": [], "left": [0, 0], "harm": [0, 0], "gold": [0, 0], "sim": 0}
    )
    for r in answers.rows:
        p = per[r.labeler_id]
        p["n"] += 1
        p["sim"] += r.is_simulated
        if r.time_spent_ms is not None:
            p["times"].append(r.time_spent_ms)
        if r.kind == Kind.PAIRWISE and r.chosen_id is not None and r.left_id is not None:
            p["left"][0] += r.chosen_id == r.left_id
            p["left"][1] += 1
        if r.kind == Kind.LIKERT:
            p["harm"][0] += bool(harm.intersection(r.flags))
            p["harm"][1] += 1
        if r.task_id in gold:
            match = gold_matches(gold[r.task_id]["gold"], r, gold[r.task_id]["texts"])
            if match is not None:
                p["gold"][0] += match
                p["gold"][1] += 1
    ids = set(per) | set(skips)
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    out = []
    for lab in ids:
        p = per[lab]
        finished, skipped = skips.get(lab, (0, 0))
        out.append(
            LabelerStats(
                labeler_id=lab,
                username=names.get(lab, str(lab)),
                simulated=p["sim"] > 0,
                tasks_done=p["n"],
                median_seconds=statistics.median(p["times"]) / 1000 if p["times"] else None,
                skip_rate=skipped / finished if finished else None,
                agreement=Rate.of(*agree.get(lab, (0, 0))),
                reliability=accuracy.get(lab),
                left_share=Rate.of(*p["left"]),
                harmful_rate=Rate.of(*p["harm"]),
                gold=Rate.of(*p["gold"]),
            )
        )
    return sorted(out, key=lambda s: s.username)


# --- Project agreement ----------------------------------------------------------------------


def _pairs_out(pairs) -> list[dict]:
    return [p._asdict() for p in pairs]


def project_agreement(
    project: Project, answers: ProjectAnswers | None = None, *, round: int | None = None
) -> dict:
    """The agreement metrics of the project's kind (all rounds, or one)."""
    answers = answers or selectors.project_answers(project)
    out: dict = {"kind": project.kind, "round": round}
    if project.kind == Kind.PAIRWISE:
        summary = ag.pairwise_summary(answers.pairwise(round=round))
        summary["pairs"] = _pairs_out(summary["pairs"])
        out["pairwise"] = summary
    elif project.kind == Kind.LIKERT:
        aspects = project.aspects or [None]
        out["likert"] = {
            (aspect or "score"): ag.likert_summary(
                answers.likert(aspect=aspect, round=round), points=project.likert_points
            )
            for aspect in aspects
        }
    else:
        summary = ag.ranking_summary(answers.rankings(round=round))
        summary["pairs"] = _pairs_out(summary["pairs"])
        out["ranking"] = summary
    rows = [r for r in answers.rows if round is None or r.round == round]
    sub = ProjectAnswers(project, rows)
    out["transitivity"] = [t._asdict() for t in ag.transitivity(sub.preferences())]
    return out


def agreement_by_round(project: Project, answers: ProjectAnswers) -> list[tuple[int, float | None]]:
    """(round, percent agreement) for each loop round with answers."""
    out = []
    for number in answers.rounds():
        if project.kind == Kind.PAIRWISE:
            value = ag.percent_agreement(answers.pairwise(round=number))
        elif project.kind == Kind.LIKERT:
            value = ag.percent_agreement(answers.likert(round=number))
        else:
            value = ag.mean_kendall_w(answers.rankings(round=number))
        out.append((number, value))
    return out


def labels_per_day(answers: ProjectAnswers) -> list[tuple[str, int]]:
    counts = Counter(r.created_at.date().isoformat() for r in answers.rows)
    return sorted(counts.items())
