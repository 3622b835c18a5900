"""Review: a project's reviewers (and admins) look at tasks with disagreement, failed gold, or a
random sample, see every labeler's answer side by side, and accept, reject (with a reason) or
override them with an adjudicated answer, which wins in exports (docs/review.md).

Services write (`annotation_review`, `task_adjudicate`), selectors read (`review_queue`,
`review_task`). Nothing is deleted: a rejected answer stays, and exports leave it out.
"""

from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator.exceptions import ServiceError
from annotator.gold import gold_check, gold_matches
from annotator.models import (
    Adjudication,
    Annotation,
    Kind,
    Membership,
    Project,
    Review,
    Task,
    TaskCompletion,
)

REVIEW_ROLES = (Membership.Role.ADMIN, Membership.Role.REVIEWER)
# Share of tasks drawn into the queue at random, besides those with disagreement or failed gold.
SAMPLE_PERCENT = 10
QUEUE_LIMIT = 100


def can_review(role: str | None) -> bool:
    return role in REVIEW_ROLES


def _answer_key(a) -> tuple:
    return (a.verdict, a.chosen_id, a.score, tuple(sorted(a.scores.items())), tuple(a.ranking))


def _sampled(task_id: int) -> bool:
    # A fixed pseudo-random draw per task (Knuth's multiplicative hash): the same sample on
    # every visit, spread evenly over the ids.
    return (task_id * 2654435761) % 2**32 % 100 < SAMPLE_PERCENT


@dataclass(frozen=True)
class QueueItem:
    task_id: int
    prompt: str
    answers: int
    reasons: tuple[str, ...]


_QUEUE_FIELDS = (
    "id", "task_id", "kind", "verdict", "chosen_id", "score", "scores", "ranking", "task__gold",
)  # fmt: skip


def review_queue(*, project: Project) -> list[QueueItem]:
    """Tasks to review: answered, not adjudicated, with an answer not yet reviewed, and
    with disagreement, a failed gold answer, or drawn in the random sample. Four queries:
    the answers' few fields (no texts), the reviewed ones, then the listed tasks' prompts
    and the gold tasks' completion texts."""
    rows = (
        Annotation.objects.filter(task__project=project, task__adjudication__isnull=True)
        .order_by("task_id", "id")
        .values_list(*_QUEUE_FIELDS)
    )
    reviewed = set(
        Review.objects.filter(annotation__task__project=project).values_list(
            "annotation_id", flat=True
        )
    )
    by_task: dict[int, list[SimpleNamespace]] = defaultdict(list)
    for row in rows:
        answer = SimpleNamespace(**dict(zip(_QUEUE_FIELDS, row, strict=True)))
        by_task[answer.task_id].append(answer)
    open_tasks = {t: g for t, g in by_task.items() if any(a.id not in reviewed for a in g)}
    gold_ids = [t for t, g in open_tasks.items() if g[0].task__gold]
    texts: dict[int, dict[int, str]] = defaultdict(dict)
    pairs = TaskCompletion.objects.filter(task_id__in=gold_ids)
    for task_id, cid, text in pairs.values_list("task_id", "completion_id", "completion__text"):
        texts[task_id][cid] = text
    found = []
    for task_id, group in open_tasks.items():
        reasons = []
        if len({_answer_key(a) for a in group}) > 1:
            reasons.append("disagreement")
        gold = group[0].task__gold
        if gold and any(gold_matches(gold, a, texts[task_id]) is False for a in group):
            reasons.append("failed gold")
        if not reasons and _sampled(task_id):
            reasons.append("sample")
        if reasons:
            found.append((task_id, len(group), tuple(reasons)))
    # Disagreement and failed gold first, then the sample; oldest first within each.
    found.sort(key=lambda f: (f[2] == ("sample",), f[0]))
    found = found[:QUEUE_LIMIT]
    prompts = {}
    listed = Task.objects.filter(id__in=[f[0] for f in found])
    for task_id, text, messages in listed.values_list("id", "prompt__text", "prompt__messages"):
        prompts[task_id] = text or str(((messages or [{}])[-1] or {}).get("content", ""))
    return [
        QueueItem(task_id, prompts.get(task_id, "")[:120], n, reasons)
        for task_id, n, reasons in found
    ]


def review_task(*, project: Project, task_id: int) -> dict | None:
    """A task with everything the review page shows: prompt, completions in position order,
    every answer with its labeler and review, the adjudication. Four queries."""
    task = (
        Task.objects.filter(project=project, id=task_id)
        .select_related("prompt", "project", "adjudication")
        .first()
    )
    if task is None:
        return None
    completions = [
        tc.completion
        for tc in TaskCompletion.objects.filter(task=task).select_related("completion")
    ]
    answers = list(
        Annotation.objects.filter(task=task).select_related("labeler", "review").order_by("id")
    )
    adjudication = getattr(task, "adjudication", None)
    return {"task": task, "completions": completions, "answers": answers, "adj": adjudication}


def annotation_review(
    *, annotation: Annotation, reviewer: AbstractBaseUser, decision: str, reason: str = ""
) -> Review:
    """Accept or reject one answer (a rejection needs a reason the labeler will read)."""
    reason = (reason or "").strip()
    if decision not in (Review.Decision.ACCEPTED, Review.Decision.REJECTED):
        raise ServiceError("Pick accept or reject (override gives an answer).", field="decision")
    if decision == Review.Decision.REJECTED and not reason:
        raise ServiceError("Say why the answer is rejected: the labeler reads it.", field="reason")
    review, _ = Review.objects.update_or_create(
        annotation=annotation,
        defaults={"reviewer": reviewer, "decision": decision, "reason": reason[:2000]},
    )
    return review


@transaction.atomic
def task_adjudicate(
    *, task: Task, reviewer: AbstractBaseUser, answer: dict, reason: str = ""
) -> Adjudication:
    """Override: the task's adjudicated answer (gold format: pairwise {"chosen_id": id} or
    {"verdict": "tie" | "both_bad"}, Likert {"score": n}, ranking {"ranking": ids}). Each
    labeler's answer is marked accepted if it is the same, overridden otherwise (a rejected
    one stays rejected)."""
    try:
        answer = gold_check(task=task, gold=answer)
    except ServiceError as exc:
        raise ServiceError(exc.message, field="answer") from None
    reason = (reason or "").strip()[:2000]
    pairwise = {"verdict": "", "chosen_id": None, "rejected_id": None}
    if task.kind == Kind.PAIRWISE:
        ids = list(
            TaskCompletion.objects.filter(task=task)
            .order_by("position")
            .values_list("completion_id", flat=True)
        )
        if "chosen_id" in answer:
            other = next(c for c in ids if c != answer["chosen_id"])
            pairwise = {"verdict": "preferred", "chosen_id": answer["chosen_id"],
                        "rejected_id": other}  # fmt: skip
        else:
            pairwise["verdict"] = answer["verdict"]
    adjudication, _ = Adjudication.objects.update_or_create(
        task=task, defaults={"reviewer": reviewer, "answer": answer, "reason": reason, **pairwise}
    )
    for a in Annotation.objects.filter(task=task).select_related("review"):
        current = getattr(a, "review", None)
        if current is not None and current.decision == Review.Decision.REJECTED:
            continue
        same = gold_matches(answer, a, {})
        decision = Review.Decision.ACCEPTED if same else Review.Decision.OVERRIDDEN
        Review.objects.update_or_create(
            annotation=a,
            defaults={"reviewer": reviewer, "decision": decision, "reason": reason},
        )
    return adjudication
