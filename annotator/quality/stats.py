"""Per-labeler statistics and the project's agreement, from one read of its answers.

Used by the admin pages (annotator/quality/views.py) and the API (annotator/quality/api.py):
the same numbers in both.
"""

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db.models import Exists, OuterRef

from annotator.export.params import HARM_FLAGS
from annotator.judging import AI_GROUP
from annotator.models import Kind, Project
from annotator.quality import agreement as ag
from annotator.quality import arrays, selectors
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
    # The account of an imported preference file (annotator/preference_import.py), not a person.
    imported: bool = False
    # An AI judge's account (annotator/judging.py, labeler kind `ai`), not a person.
    ai: bool = False

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
        if r.kind == Kind.PAIRWISE:
            by_question[(r.task_id,)].append((r.labeler_id, r.category))
        elif r.kind == Kind.RANKING:
            for question, answer in _judgements(r):
                by_question[question].append((r.labeler_id, answer))
        elif r.score is not None:
            likert[r.task_id].append((r.labeler_id, r.score))
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for answers in by_question.values():
        if len(answers) < 2:
            continue
        counts = Counter(a for _, a in answers)
        for labeler, answer in answers:
            counts[answer] -= 1  # the others' answers only
            top = max(counts.values())
            leaders = [a for a, n in counts.items() if n == top]
            counts[answer] += 1
            if top == 0 or len(leaders) > 1:
                continue  # the others are split: no consensus to compare with
            out[labeler][1] += 1
            out[labeler][0] += answer == leaders[0]
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


def _pairwise_row(p: arrays.Pairwise, i: int) -> Row:
    verdict = {2: "tie", 3: "both_bad"}.get(int(p.code[i]), "preferred")
    chosen = int(p.chosen[i]) if p.chosen[i] >= 0 else None
    rejected = int(p.rejected[i]) if p.rejected[i] >= 0 else None
    return Row(0, int(p.task[i]), int(p.labeler[i]), Kind.PAIRWISE, verdict, chosen, rejected,
               None, None, [], None, {}, [], None, False, None, int(p.prompt[i]))  # fmt: skip


def labeler_stats(project: Project, *, pw=None, other=None, version=None) -> list[LabelerStats]:
    """One row per labeler who answered or skipped something in the project, by username.
    `pw`, `other`, `version`: the project's reads, when the caller already made them."""
    pw = pw if pw is not None else arrays.load(project.id)
    other = other if other is not None else selectors.project_answers(project, pairwise=False)
    accuracy = selectors.project_fit(project, pw, version=version).accuracy()
    skips = selectors.skip_counts(project)
    gold = selectors.gold_tasks(project)
    harm = set(HARM_FLAGS) & set(project.flags or [])
    agree = arrays.consensus(pw)
    for lab, (a, n) in consensus_agreement(other.rows).items():
        a0, n0 = agree.get(lab, (0, 0))
        agree[lab] = (a0 + a, n0 + n)

    per: dict[int, dict] = defaultdict(
        lambda: {"n": 0, "times": [], "left": [0, 0], "harm": [0, 0], "gold": [0, 0]}
    )
    for lab, d in arrays.per_labeler(pw).items():
        per[lab]["n"] = d["n"]
        per[lab]["times"] = list(d["times"])
        per[lab]["left"] = list(d["left"])
    gold_rows = [_pairwise_row(pw, i) for i in np.flatnonzero(np.isin(pw.task, list(gold)))]
    for r in other.rows:
        p = per[r.labeler_id]
        p["n"] += 1
        if r.time_spent_ms is not None:
            p["times"].append(r.time_spent_ms)
        if r.kind == Kind.LIKERT:
            p["harm"][0] += bool(harm.intersection(r.flags))
            p["harm"][1] += 1
        if r.task_id in gold:
            gold_rows.append(r)
    for r in gold_rows:
        match = gold_matches(gold[r.task_id]["gold"], r, gold[r.task_id]["texts"])
        if match is not None:
            per[r.labeler_id]["gold"][0] += match
            per[r.labeler_id]["gold"][1] += 1
    ids = set(per) | set(skips)
    # Usernames and the imported and AI marks in one query.
    users = (
        get_user_model()
        .objects.filter(pk__in=ids)
        .annotate(
            imported=Exists(Group.objects.filter(user=OuterRef("pk"), name="imported")),
            ai=Exists(Group.objects.filter(user=OuterRef("pk"), name=AI_GROUP)),
        )
    )
    names, imported, ai = {}, set(), set()
    for pk, username, is_imported, is_ai in users.values_list("pk", "username", "imported", "ai"):
        names[pk] = username
        if is_imported:
            imported.add(pk)
        if is_ai:
            ai.add(pk)
    simulated = set(pw.labeler[pw.simulated == 1].tolist())
    simulated |= {r.labeler_id for r in other.rows if r.is_simulated}
    out = []
    for lab in ids:
        p = per[lab]
        finished, skipped = skips.get(lab, (0, 0))
        out.append(
            LabelerStats(
                labeler_id=lab,
                username=names.get(lab, str(lab)),
                simulated=lab in simulated,
                imported=lab in imported,
                ai=lab in ai,
                tasks_done=p["n"],
                median_seconds=float(np.median(p["times"])) / 1000 if p["times"] else None,
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


def _pairwise_summary(pw: arrays.Pairwise, *, pairs: bool) -> dict:
    counts, _ = arrays.counts_per_task(pw) if len(pw) else (np.zeros((0, 4)), None)
    out = {
        "answers": len(pw),
        "tasks_with_overlap": int((counts.sum(axis=1) >= 2).sum()),
        "percent_agreement": arrays.percent_agreement(pw),
        "krippendorff_alpha": arrays.nominal_alpha(pw),
    }
    if pairs:
        each = arrays.labeler_pairs(pw)
        out.update(cohen_kappa=ag.mean_kappa(each), pairs=_pairs_out(each))
    else:
        out["cohen_kappa"] = arrays.mean_kappa(pw)
    return out


def project_agreement(
    project: Project, *, round: int | None = None, pw=None, other=None, pairs: bool = True
) -> dict:
    """The agreement metrics of the project's kind (all rounds, or one). `pairs`: with every
    labeler pair's agreement (the API's answer; the page shows only the means)."""
    out: dict = {"kind": project.kind, "round": round}
    pw = pw if pw is not None else arrays.load(project.id)
    if round is not None:
        pw = pw.where(pw.round == round)
    other = other if other is not None else selectors.project_answers(project, pairwise=False)
    rows = [r for r in other.rows if round is None or r.round == round]
    other = ProjectAnswers(project, rows)
    if project.kind == Kind.PAIRWISE:
        out["pairwise"] = _pairwise_summary(pw, pairs=pairs)
    elif project.kind == Kind.LIKERT:
        aspects = project.aspects or [None]
        out["likert"] = {
            (aspect or "score"): ag.likert_summary(
                other.likert(aspect=aspect), points=project.likert_points
            )
            for aspect in aspects
        }
    else:
        summary = ag.ranking_summary(other.rankings())
        each = summary.pop("pairs")
        if pairs:
            summary["pairs"] = _pairs_out(each)
        out["ranking"] = summary
    preferences = other.preferences() + [
        ag.Preference(*edge) for edge in arrays.preference_edges(pw)
    ]
    out["transitivity"] = [t._asdict() for t in ag.transitivity(preferences)]
    return out


def agreement_by_round(project: Project, *, pw=None, other=None) -> list[tuple[int, float | None]]:
    """(round, agreement) for each loop round with answers: percent agreement (pairwise,
    Likert) or Kendall's W (ranking)."""
    if project.kind == Kind.PAIRWISE:
        pw = pw if pw is not None else arrays.load(project.id)
        return arrays.percent_agreement_by_round(pw)
    answers = other if other is not None else selectors.project_answers(project, pairwise=False)
    out = []
    for number in answers.rounds():
        if project.kind == Kind.LIKERT:
            value = ag.percent_agreement(answers.likert(round=number))
        else:
            value = ag.mean_kendall_w(answers.rankings(round=number))
        out.append((number, value))
    return out


def page_numbers(project: Project) -> dict:
    """Every number of the Labelers page (and the labelers endpoint), computed from one read
    of the answers and cached until the project's answers or skips change."""
    version = selectors.answers_version(project)
    key = selectors.cache_key("page", project, version)
    numbers = cache.get(key)
    if numbers is None:
        pw = arrays.load(project.id, answers=version[0])
        # The version counts every answer: when they are all pairwise, nothing else to read.
        if version[0] == len(pw):
            other = ProjectAnswers(project)
        else:
            other = selectors.project_answers(project, pairwise=False)
        numbers = {
            "rows": labeler_stats(project, pw=pw, other=other, version=version),
            "agreement": project_agreement(project, pw=pw, other=other, pairs=False),
            "by_round": agreement_by_round(project, pw=pw, other=other),
            "per_day": labels_per_day(pw, other),
        }
        cache.set(key, numbers, selectors.FIT_CACHE_SECONDS)
    return numbers


def labels_per_day(pw: arrays.Pairwise, other: ProjectAnswers) -> list[tuple[str, int]]:
    """(ISO date, answers that day, UTC) for every day with answers."""
    day, n = np.unique(pw.day, return_counts=True)
    days = Counter(dict(zip(day.tolist(), n.tolist(), strict=True)))
    epoch = date(1970, 1, 1)
    for r in other.rows:
        days[(r.created_at.date() - epoch).days] += 1
    return [((epoch + timedelta(days=d)).isoformat(), n) for d, n in sorted(days.items())]
