"""Gold tasks: tasks with a known answer, served to every labeler to check their work.

A gold task (Task.gold set) stands outside the dataset: it has no overlap to fill (it is
marked complete, so the normal queue never serves it), every labeler is given it once, at
the project's pace (services.task_claim_next, `Project.gold_every`), and the exports leave
it out. Its answers land beside the others (Annotation), and the labeler statistics read
them against Task.gold. Under the project's optional floor (`gold_floor`, after
`gold_min_answers` gold answers) a labeler is paused: the queue serves them nothing and
the project page tells its admins.

Gold answers (docs/quality.md): pairwise {"chosen_id": completion id} (or {"chosen":
completion text}) or {"verdict": "tie" | "both_bad"}; Likert {"score": n}; ranking
{"ranking": [completion ids or texts, best first]}.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.exceptions import ServiceError
from annotator.models import (
    Annotation,
    Assignment,
    Kind,
    Membership,
    Project,
    Repeat,
    Task,
    TaskCompletion,
)

# One rule for what matches a gold answer, shared with the statistics page.
from annotator.quality.stats import gold_matches, wilson  # noqa: F401 (review uses gold_matches)


def gold_check(*, task: Task, gold: dict) -> dict:
    """The gold answer, checked against the task; ServiceError (field "gold") if it does
    not fit. Stored with completion ids, whatever names them."""
    if not isinstance(gold, dict):
        raise ServiceError("The gold answer must be an object.", field="gold")
    ids = list(
        TaskCompletion.objects.filter(task=task)
        .order_by("position")
        .values_list("completion_id", flat=True)
    )
    if task.kind == Kind.PAIRWISE:
        if gold.get("verdict") in ("tie", "both_bad") and set(gold) == {"verdict"}:
            return {"verdict": gold["verdict"]}
        if set(gold) == {"chosen_id"} and gold["chosen_id"] in ids:
            return {"chosen_id": gold["chosen_id"]}
        raise ServiceError(
            'Give {"chosen_id": one of the task\'s completion ids} or '
            '{"verdict": "tie" | "both_bad"}.',
            field="gold",
        )
    if task.kind == Kind.LIKERT:
        score = gold.get("score")
        points = task.project.likert_points
        if set(gold) == {"score"} and type(score) is int and 1 <= score <= points:
            return {"score": score}
        raise ServiceError(f'Give {{"score": 1 to {points}}}.', field="gold")
    ranking = gold.get("ranking")
    if set(gold) == {"ranking"} and isinstance(ranking, list) and sorted(ranking) == sorted(ids):
        return {"ranking": ranking}
    raise ServiceError(
        'Give {"ranking": all the task\'s completion ids, best first}.', field="gold"
    )


@transaction.atomic
def task_gold_set(*, task: Task, gold: dict | None) -> Task:
    """Make a task gold with this answer, change its answer, or (None) make it an ordinary
    task again. A gold task is complete (outside the queue's overlap); an ordinary one is
    complete when its overlap is covered."""
    task = Task.objects.select_for_update().select_related("project").get(id=task.id)
    if gold is not None:
        gold = gold_check(task=task, gold=gold)
    task.gold = gold
    task.is_complete = gold is not None or task.annotation_count >= task.overlap
    task.save(update_fields=["gold", "is_complete"])
    return task


def gold_pace_restart(*, project: Project) -> None:
    """Start each labeler's gold pacing afresh at a new pace: their claim count is set to
    where the gold tasks they already had put them, so no past gap is made up in a burst."""
    seen = (
        Assignment.objects.filter(
            labeler_id=OuterRef("user_id"),
            task__project_id=OuterRef("project_id"),
            task__gold__isnull=False,
        )
        .order_by()
        .values("labeler_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    Membership.objects.filter(project=project).update(
        claims=Coalesce(Subquery(seen, output_field=IntegerField()), Value(0)) * project.gold_every
    )


def gold_tasks(*, project: Project) -> QuerySet[Task]:
    return (
        Task.objects.filter(project=project, gold__isnull=False)
        .select_related("prompt")
        .order_by("id")
    )


def labeler_gold_score(*, project: Project, labeler_id: int) -> tuple[int, int]:
    """(answers matching the gold, gold answers the gold says something of). Two queries."""
    answers = list(
        Annotation.objects.filter(
            task__project=project, task__gold__isnull=False, labeler_id=labeler_id
        ).select_related("task")
    )
    texts: dict[int, dict[int, str]] = {}
    rows = TaskCompletion.objects.filter(task_id__in=[a.task_id for a in answers])
    for task_id, cid, text in rows.values_list("task_id", "completion_id", "completion__text"):
        texts.setdefault(task_id, {})[cid] = text
    right = counted = 0
    for answer in answers:
        match = gold_matches(answer.task.gold, answer, texts.get(answer.task_id, {}))
        if match is not None:
            counted += 1
            right += match
    return right, counted


def gold_floor_check(*, project: Project, labeler_id: int) -> bool:
    """Pause the labeler for the project if their gold accuracy, over at least
    `gold_min_answers` gold answers, is under the project's floor. True if it paused them."""
    if project.gold_floor is None:
        return False
    right, counted = labeler_gold_score(project=project, labeler_id=labeler_id)
    if counted < max(project.gold_min_answers, 1) or right / counted >= project.gold_floor:
        return False
    reason = (
        f"You are paused on this project: {right} of your {counted} answers on check tasks "
        f"matched the expected answer ({right / counted:.0%}), under the project's floor of "
        f"{project.gold_floor:.0%}. Its admins have been told and can resume you."
    )
    paused = Membership.objects.filter(
        project=project, user_id=labeler_id, paused_at__isnull=True
    ).update(paused_at=timezone.now(), paused_reason=reason)
    return bool(paused)


def membership_resume(*, project: Project, user_id: int) -> None:
    """Let a paused labeler label again. Their gold answers so far still count: the floor
    is checked again on their next gold answer."""
    updated = Membership.objects.filter(project=project, user_id=user_id).update(
        paused_at=None, paused_reason=""
    )
    if not updated:
        raise ServiceError("That person is not a member of this project.", field="user")


def paused_members(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project, paused_at__isnull=False)
        .select_related("user")
        .order_by("paused_at")
    )


# --- Swap repeats ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RepeatStats:
    labeler_id: int
    username: str
    repeats: int  # answered swap repeats
    consistent: int  # ...whose answer matched the first one (same response, or same verdict)
    left: int  # preferences for the left-hand response, first answers and repeats together
    preferences: int

    @property
    def consistency(self) -> float | None:
        return self.consistent / self.repeats if self.repeats else None

    @property
    def consistency_interval(self):
        return wilson(self.consistent, self.repeats)

    @property
    def left_share(self) -> float | None:
        return self.left / self.preferences if self.preferences else None

    @property
    def left_interval(self):
        return wilson(self.left, self.preferences)


def repeat_stats(*, project: Project) -> list[RepeatStats]:
    """Per labeler, from their answered swap repeats: self-consistency (the repeat's answer
    is the first one's) and position bias (the share of their preferences, in both answers of
    each repeated pair, that went to the response shown on the left). One query."""
    rows = Repeat.objects.filter(project=project, status=Repeat.Status.ANSWERED).values_list(
        "labeler_id", "labeler__username", "verdict", "chosen_id", "shown_order",
        "annotation__verdict", "annotation__chosen_id", "annotation__shown_order",
    )  # fmt: skip
    per: dict[int, list] = {}
    for labeler, name, verdict, chosen, shown, first_verdict, first_chosen, first_shown in rows:
        stats = per.setdefault(labeler, [name, 0, 0, 0, 0])
        stats[1] += 1
        stats[2] += (verdict, chosen) == (first_verdict, first_chosen)
        for v, c, order in ((verdict, chosen, shown), (first_verdict, first_chosen, first_shown)):
            if v == Annotation.Verdict.PREFERRED and order:
                stats[3] += c == order[0]
                stats[4] += 1
    return [
        RepeatStats(labeler, name, n, same, left, prefs)
        for labeler, (name, n, same, left, prefs) in sorted(per.items(), key=lambda kv: kv[1][0])
    ]
