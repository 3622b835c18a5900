"""The reads behind the quality metrics: a project's answers in one pass, as plain tuples.

`project_answers` streams every annotation of a project once (no per-row ORM conversion),
which is what the statistics page, the agreement endpoint and the reliability fit share.
`project_fit` caches the reliability fit per process, keyed by the project's annotation
count and latest id, so a page that is reloaded does not fit again; a new answer changes
the key.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from annotator.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Kind,
    LabelerKind,
    Project,
    Task,
    TaskCompletion,
)
from annotator.quality import reliability
from annotator.quality.agreement import Answer, Preference, Ranked, pairwise_category
from annotator.quality.reliability import Fit
from webapp import sql

FIT_CACHE_SECONDS = 600


@dataclass
class Row:
    """One annotation, as the metrics need it."""

    id: int
    task_id: int
    labeler_id: int
    kind: str
    verdict: str
    chosen_id: int | None
    rejected_id: int | None
    left_id: int | None  # the completion shown first (on the left)
    time_spent_ms: int | None
    flags: list
    score: int | None
    scores: dict
    ranking: list
    created_at: datetime
    is_simulated: bool
    round: int | None
    prompt_id: int

    @property
    def category(self) -> str:
        return pairwise_category(self.verdict, self.chosen_id, self.rejected_id)


@dataclass
class ProjectAnswers:
    project: Project
    rows: list[Row] = field(default_factory=list)

    def likert(self, *, aspect: str | None = None, round: int | None = None) -> list[Answer]:
        out = []
        for r in self.rows:
            if r.kind != Kind.LIKERT or (round is not None and r.round != round):
                continue
            value = r.scores.get(aspect) if aspect else r.score
            if value is not None:
                out.append(Answer(r.task_id, r.labeler_id, value))
        return out

    def rankings(self, *, round: int | None = None) -> list[Ranked]:
        return [
            Ranked(r.task_id, r.labeler_id, r.ranking)
            for r in self.rows
            if r.kind == Kind.RANKING and (round is None or r.round == round)
        ]

    def preferences(self) -> list[Preference]:
        """Every "x beat y" a labeler said, from pairwise answers and from rankings."""
        out = []
        for r in self.rows:
            if r.kind == Kind.PAIRWISE and r.verdict == Annotation.Verdict.PREFERRED:
                out.append(Preference(r.labeler_id, r.prompt_id, r.chosen_id, r.rejected_id))
            elif r.kind == Kind.RANKING:
                for i, winner in enumerate(r.ranking):
                    for loser in r.ranking[i + 1 :]:
                        out.append(Preference(r.labeler_id, r.prompt_id, winner, loser))
        return out

    def rounds(self) -> list[int]:
        return sorted({r.round for r in self.rows if r.round is not None})


_FIELDS = (
    "id", "task_id", "labeler_id", "kind", "verdict", "chosen_id", "rejected_id",
    "shown_order", "time_spent_ms", "flags", "score", "scores", "ranking", "created_at",
    "labeler_kind", "task__round", "task__prompt_id",
)  # fmt: skip


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _left(shown_order) -> int | None:
    if isinstance(shown_order, str):  # "[12, 13]" as the driver gives it: no full parse
        head = shown_order[1 : shown_order.find(",")] if "," in shown_order else ""
        return int(head) if head.strip().isdigit() else None
    return shown_order[0] if shown_order else None


def annotations(project: Project, *, labelers: Iterable[int] | None = None) -> QuerySet:
    qs = Annotation.objects.filter(task__project_id=project.id)
    if labelers is not None:
        qs = qs.filter(labeler_id__in=list(labelers))
    return qs


def project_answers(project: Project, *, pairwise: bool = True) -> ProjectAnswers:
    """Every annotation of the project (without pairwise ones if `pairwise` is False: the
    statistics read those as arrays, annotator/quality/arrays.py), in id order, one query."""
    qs = annotations(project)
    out = ProjectAnswers(project)
    if not pairwise:
        # No task of another kind, no answer of another kind: one look at the tasks saves
        # a scan of every annotation (which is what filtering on their kind costs).
        if not Task.objects.filter(project_id=project.id).exclude(kind=Kind.PAIRWISE).exists():
            return out
        qs = qs.exclude(kind=Kind.PAIRWISE)
    qs = qs.order_by("id").values_list(*_FIELDS)
    statement, params = qs.query.sql_with_params()
    rows = out.rows
    for row in sql.chunked(statement, params, size=5000):
        kind, shown = row[3], row[7]
        if kind == Kind.PAIRWISE:  # no flags, scores or ranking to decode
            extra = ([], None, {}, [])
        else:
            extra = (_json(row[9]) or [], row[10], _json(row[11]) or {},
                     _json(row[12]) or [])  # fmt: skip
        rows.append(
            Row(
                *row[:7],
                _left(shown),
                row[8],
                *extra,
                _aware(row[13]),
                row[14] == LabelerKind.SIMULATED,
                row[15],
                row[16],
            )  # fmt: skip
        )
    return out


def _aware(value):
    if isinstance(value, str):  # SQLite without converters
        value = datetime.fromisoformat(value)
    return value


def answers_version(project: Project) -> tuple:
    """What changes whenever the project's answers or skips change: counts and latest ids
    of its annotations and skipped leases, and its latest revision (an edited answer keeps
    its id). One statement: every view of the statistics asks for it, cached or not."""
    task, annotation = sql.table(Task), sql.table(Annotation)
    assignment, revision = sql.table(Assignment), sql.table(AnnotationRevision)
    statement = f"""
        SELECT count(a.id), max(a.id),
               (SELECT count(s.id) FROM {assignment} s JOIN {task} t ON t.id = s.task_id
                WHERE t.project_id = %s AND s.status = %s),
               (SELECT max(s.id) FROM {assignment} s JOIN {task} t ON t.id = s.task_id
                WHERE t.project_id = %s AND s.status = %s),
               (SELECT max(r.id) FROM {revision} r JOIN {task} t ON t.id = r.task_id
                WHERE t.project_id = %s)
        FROM {annotation} a JOIN {task} t ON t.id = a.task_id WHERE t.project_id = %s
    """  # noqa: S608 -- table names only
    skipped = Assignment.Status.SKIPPED
    return tuple(sql.one(statement, [project.id, skipped, project.id, skipped, project.id,
                                     project.id]))  # fmt: skip


def cache_key(what: str, project: Project, version: tuple) -> str:
    """A key for numbers computed from one state of a project's answers. The project's
    creation time is in it, so a project that reuses a deleted one's id (SQLite reuses ids)
    never gets the other's numbers."""
    made = project.created_at.timestamp() if project.created_at else 0
    return f"quality:{what}:{project.id}:{made}:{'-'.join(map(str, version))}"


def project_fit(project: Project, pairwise=None, *, version: tuple | None = None) -> Fit:
    """The Dawid-Skene fit of the project's pairwise answers, cached per answer set.
    `pairwise`, `version`: the answers as arrays.load gives them and `version()`, when the
    caller has them."""
    from annotator.quality import arrays

    version = version or answers_version(project)
    key = cache_key("fit", project, version)
    fit = cache.get(key)
    if fit is None:
        p = pairwise if pairwise is not None else arrays.load(project.id, answers=version[0])
        task_ids, t_idx = np.unique(p.task, return_inverse=True)
        lab_ids, l_idx = np.unique(p.labeler, return_inverse=True)
        fit = reliability.fit_arrays(task_ids, t_idx, lab_ids, l_idx, p.code)
        cache.set(key, fit, FIT_CACHE_SECONDS)
    return fit


def skip_counts(project: Project) -> dict[int, tuple[int, int]]:
    """labeler id -> (finished leases: submitted or skipped, skipped)."""
    rows = (
        Assignment.objects.filter(
            task__project_id=project.id,
            status__in=[Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED],
        )
        .values("labeler_id")
        .annotate(n=Count("id"), skipped=Count("id", filter=Q(status=Assignment.Status.SKIPPED)))
        .order_by()
    )
    return {r["labeler_id"]: (r["n"], r["skipped"]) for r in rows}


def gold_tasks(project: Project) -> dict[int, dict]:
    """task id -> its gold answer with the task's completions' texts by id (gold tasks only)."""
    tasks = dict(
        Task.objects.filter(project_id=project.id, gold__isnull=False).values_list("id", "gold")
    )
    texts: dict[int, dict[int, str]] = {t: {} for t in tasks}
    for task_id, cid, text in TaskCompletion.objects.filter(task_id__in=list(tasks)).values_list(
        "task_id", "completion_id", "completion__text"
    ):
        texts[task_id][cid] = text
    return {t: {"gold": gold, "texts": texts[t]} for t, gold in tasks.items() if gold}


def task_pairs(project: Project) -> dict[int, tuple[int, int]]:
    """Pairwise task id -> (lower completion id, higher completion id)."""
    pairs: dict[int, list[int]] = {}
    for task_id, cid in TaskCompletion.objects.filter(
        task__project_id=project.id, task__kind=Kind.PAIRWISE
    ).values_list("task_id", "completion_id"):
        pairs.setdefault(task_id, []).append(cid)
    return {t: (min(c), max(c)) for t, c in pairs.items() if len(c) == 2}
