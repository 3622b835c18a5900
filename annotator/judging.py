"""AI judges on the labeling side: their accounts, the tasks they are given, and their verdicts.

A judge is a labeler account of kind `ai` (a user in the group `ai-judges`, a labeler of its
project). What it answers comes in batches from the judging job (trainer/judging/) and is
written here, one batch in one transaction: a batch is stored whole or not at all.
Which judge said what, and whether it agreed with itself when the responses were swapped
(a pair) or reversed (a ranking), is kept in JudgeVerdict rows; only a consistent verdict
becomes an annotation. A Likert score is asked once and is always consistent. Likert tasks of
a project with aspects are not judged (a judge gives one overall score).
"""

import random
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import F

from annotator.exceptions import ServiceError
from annotator.models import (
    Annotation,
    JudgeVerdict,
    Kind,
    LabelerKind,
    Membership,
    Project,
    Task,
    TaskCompletion,
)
from annotator.signals import annotation_created

AI_GROUP = "ai-judges"
CHOICES = ("a", "b", "tie", "both_bad")
JUDGED_KINDS = (Kind.PAIRWISE, Kind.LIKERT, Kind.RANKING)
LETTERS = "ABCDEFGHIJKLMNOP"  # a ranking as the judge answers it: served letters, best first


def labeler_ai_ensure(*, project: Project, username: str) -> AbstractBaseUser:
    """The judge's labeler account on the project, created if need be (idempotent). It has no
    usable password and no API token: it only answers through the judging job."""
    from annotator.services import membership_set

    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        elif not user.groups.filter(name=AI_GROUP).exists():
            raise ServiceError(f"The user name {username!r} is taken by a person.", field="name")
        user.groups.add(Group.objects.get_or_create(name=AI_GROUP)[0])
        if not Membership.objects.filter(project=project, user=user).exists():
            membership_set(project=project, user=user, role=Membership.Role.LABELER)
        return user


def is_ai(user: AbstractBaseUser) -> bool:
    return user.groups.filter(name=AI_GROUP).exists()


def tasks_for_judging(
    *, project: Project, labeler: AbstractBaseUser, limit: int | None = None,
    round: int | None = None, seed: int | None = None, include_complete: bool = False,
    kinds: tuple[str, ...] = JUDGED_KINDS,
) -> list[dict]:  # fmt: skip
    """Tasks of `kinds` this judge has not given a verdict on, oldest first, as plain rows for
    the judging process: the prompt and the responses in a random order (Likert rows also
    carry the project's points and flags). Open tasks only, unless `include_complete` (judging
    what people already labeled: calibration)."""
    rng = random.Random(seed)
    tasks = judgeable(project=project, labeler=labeler, kinds=kinds, round=round,
                      include_complete=include_complete).select_related("prompt")  # fmt: skip
    if limit:
        tasks = tasks[:limit]
    tasks = list(tasks)
    texts: dict[int, list[tuple[int, str]]] = {}
    links = TaskCompletion.objects.filter(task__in=tasks).order_by("task_id", "position")
    for task_id, cid, text in links.values_list("task_id", "completion_id", "completion__text"):
        texts.setdefault(task_id, []).append((cid, text))
    wanted = {Kind.PAIRWISE: (2, 2), Kind.LIKERT: (1, 1), Kind.RANKING: (2, len(LETTERS))}
    rows = []
    for task in tasks:
        shown = texts.get(task.id, [])
        low, high = wanted[task.kind]
        if not low <= len(shown) <= high:
            continue
        rng.shuffle(shown)
        prompt = task.prompt.messages if task.prompt.messages is not None else task.prompt.text
        row = {
            "task_id": task.id,
            "kind": task.kind,
            "prompt": prompt,
            "shown_order": [cid for cid, _ in shown],
            "responses": [text for _, text in shown],
        }
        if task.kind == Kind.LIKERT:
            row |= {"points": project.likert_points, "flags": list(project.flags or [])}
        rows.append(row)
    return rows


def judgeable(
    *, project: Project, labeler: AbstractBaseUser, kinds: tuple[str, ...] = JUDGED_KINDS,
    round: int | None = None, include_complete: bool = False,
):  # fmt: skip
    """The tasks a judge may be given, oldest first: of `kinds`, no gold, not judged by it."""
    kinds = tuple(k for k in kinds if k in JUDGED_KINDS)
    if project.aspects:
        kinds = tuple(k for k in kinds if k != Kind.LIKERT)
    tasks = Task.objects.filter(project=project, kind__in=kinds, gold__isnull=True)
    if not include_complete:
        tasks = tasks.filter(is_complete=False)
    if round is not None:
        tasks = tasks.filter(round=round)
    return tasks.exclude(judge_verdicts__labeler=labeler).order_by("id")


def tasks_hold(*, tasks, seconds: int) -> int:
    """Keep these tasks from people for `seconds` (an AI judge answers them first), except
    those a person is already labeling. Returns how many are held."""
    from datetime import timedelta

    from django.utils import timezone

    from annotator.models import Assignment

    now = timezone.now()
    busy = Assignment.objects.filter(status=Assignment.Status.ACTIVE, expires_at__gt=now)
    busy = busy.values("task_id")
    until = now + timedelta(seconds=seconds)
    ids = list(tasks.values_list("id", flat=True))
    return Task.objects.filter(id__in=ids).exclude(id__in=busy).update(held_until=until)


def tasks_release(*, project: Project, labeler: AbstractBaseUser) -> int:
    """People may take again the held tasks this judge has not answered (its job ended)."""
    held = Task.objects.filter(project=project, held_until__isnull=False)
    return held.exclude(judge_verdicts__labeler=labeler).update(held_until=None)


def in_completion_terms(answer: str, order: list[int]) -> str:
    """A served answer ("a" is order[0]) as the completion id that won, or tie / both_bad."""
    if answer == "a":
        return str(order[0])
    if answer == "b":
        return str(order[1])
    return answer


def ranking_ids(letters: str, order: list[int]) -> list[int]:
    """A judge's ranking (served letters, best first) as completion ids, best first."""
    return [order[LETTERS.index(c)] for c in letters]


def is_consistent(*, first: str, second: str, shown_order: list[int],
                  kind: str = Kind.PAIRWISE) -> bool:  # fmt: skip
    """Whether the answer in the first order and the answer with the responses swapped (a
    ranking: reversed) agree. A Likert score is asked once: always consistent."""
    if kind == Kind.LIKERT:
        return True
    if kind == Kind.RANKING:
        return ranking_ids(first, shown_order) == ranking_ids(second, shown_order[::-1])
    swapped = [shown_order[1], shown_order[0]]
    return in_completion_terms(first, shown_order) == in_completion_terms(second, swapped)


def valid_answer(kind: str, answer: str, *, size: int, points: int) -> bool:
    """Whether a judge's answer is well formed for a task of `kind` with `size` responses."""
    if kind == Kind.LIKERT:
        return answer.isdigit() and 1 <= int(answer) <= points
    if kind == Kind.RANKING:
        return sorted(answer) == list(LETTERS[:size])
    return answer in CHOICES


@dataclass
class VerdictIn:
    task_id: int
    shown_order: list[int]
    first: str  # the answer as served in shown_order
    second: str  # the answer with the two responses swapped
    confidence: float | None = None
    rationale: str = ""
    usage: dict = field(default_factory=dict)
    to_people: bool = False  # also (or only) ask people
    reason: str = ""  # why people are asked
    flags: list = field(default_factory=list)  # Likert: the flags the judge named


def judge_verdicts_store(
    *, project: Project, labeler: AbstractBaseUser, verdicts: list[VerdictIn],
    job_id: int | None = None, people_priority: int = 0,
) -> int:  # fmt: skip
    """Store one batch of a judge's verdicts, all or nothing. Returns the annotations made.

    A consistent verdict becomes the judge's annotation (labeler kind `ai`), unless it is an
    answer the project does not offer its people (a tie or "both bad" where they are off):
    then, as for an inconsistent one, there is no annotation and people are asked ("not
    allowed"): a tie there means the judge could not tell. A task the judge
    settles (consistent and not sent to people) is complete; one sent to people stays open
    and its priority is raised by `people_priority`, so people see it before unjudged ones.
    The judge's answer never counts towards the people's overlap."""
    if not is_ai(labeler):
        raise ServiceError("Only an AI judge's account stores judge verdicts.")
    made, last_id = 0, None
    with transaction.atomic():
        tasks = Task.objects.select_for_update().in_bulk([v.task_id for v in verdicts])
        members: dict[int, set[int]] = {}
        links = TaskCompletion.objects.filter(task_id__in=list(tasks))
        for task_id, cid in links.values_list("task_id", "completion_id"):
            members.setdefault(task_id, set()).add(cid)
        for v in verdicts:
            task = tasks.get(v.task_id)
            if task is None or task.project_id != project.id or task.kind not in JUDGED_KINDS:
                raise ServiceError(f"Task {v.task_id} is not a judged task of this project.")
            if sorted(v.shown_order) != sorted(members.get(task.id, ())):
                raise ServiceError(f"Task {v.task_id}: the order names other responses.")
            second_ok = task.kind == Kind.LIKERT and v.second == ""
            size = len(v.shown_order)
            for answer in (v.first,) if second_ok else (v.first, v.second):
                if not valid_answer(task.kind, answer, size=size, points=project.likert_points):
                    raise ServiceError(f"Task {v.task_id}: {answer!r} is no {task.kind} answer.")
            unknown = [f for f in v.flags if f not in (project.flags or [])]
            if unknown:
                raise ServiceError(f"Task {v.task_id}: unknown flags {unknown}.")
            consistent = is_consistent(first=v.first, second=v.second,
                                       shown_order=v.shown_order, kind=task.kind)  # fmt: skip
            allowed = task.kind != Kind.PAIRWISE or answer_allowed(project, v.first)
            to_people = v.to_people or not consistent or not allowed
            reason = v.reason or ("" if consistent else "inconsistent")
            if consistent and not allowed:
                reason = "not allowed"
            annotation = None
            if consistent and allowed:
                annotation = Annotation.objects.create(
                    task=task, labeler=labeler, kind=task.kind, shown_order=v.shown_order,
                    labeler_kind=LabelerKind.AI, **_answer_fields(task.kind, v),
                )  # fmt: skip
                made, last_id = made + 1, annotation.id
            JudgeVerdict.objects.create(
                task=task, labeler=labeler, job_id=job_id, shown_order=v.shown_order,
                first=v.first, second=v.second, consistent=consistent,
                confidence=v.confidence, rationale=v.rationale, usage=v.usage,
                annotation=annotation, to_people=to_people, reason=reason, flags=v.flags,
            )  # fmt: skip
            if not to_people:
                Task.objects.filter(id=task.id).update(is_complete=True, held_until=None)
            else:
                Task.objects.filter(id=task.id).update(
                    priority=F("priority") + people_priority, held_until=None
                )
        if made:
            # As a person's label does: the loop may move on (one signal for the batch).
            annotation_created.send(sender=Annotation, annotation_id=last_id,
                                    project_id=project.id)  # fmt: skip
    return made


def answer_allowed(project: Project, answer: str) -> bool:
    """Whether the project offers its people this answer (a tie, "both bad" may be off)."""
    if answer == "tie":
        return project.allow_tie
    if answer == "both_bad":
        return project.allow_both_bad
    return True


def _answer_fields(kind: str, v: VerdictIn) -> dict:
    if kind == Kind.LIKERT:
        return {"score": int(v.first), "flags": list(v.flags)}
    if kind == Kind.RANKING:
        return {"ranking": ranking_ids(v.first, v.shown_order)}
    answer, order = v.first, v.shown_order
    if answer == "tie":
        return {"verdict": Annotation.Verdict.TIE}
    if answer == "both_bad":
        return {"verdict": Annotation.Verdict.BOTH_BAD}
    chosen, rejected = (order[0], order[1]) if answer == "a" else (order[1], order[0])
    return {
        "verdict": Annotation.Verdict.PREFERRED,
        "chosen_id": chosen,
        "rejected_id": rejected,
    }
