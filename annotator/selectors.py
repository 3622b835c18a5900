"""Reads shared by the labeler UI, the API and the exports.

Access rule: a user sees a project only through a membership (superusers see all). Anything
outside the user's projects is reported as missing, never as forbidden, so ids do not leak.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from annotator.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Completion,
    Kind,
    Membership,
    Project,
    Prompt,
    Repeat,
    Task,
    TaskCompletion,
)
from webapp import sql


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def projects_overview_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects, each annotated with `role`, `done` and `remaining`, in one query
    for the whole list. `remaining` counts the open tasks the user has neither answered nor
    skipped, a task they hold right now included."""

    def count(queryset, group: str) -> Coalesce:
        counted = queryset.order_by().values(group).annotate(n=Count("id")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))

    done = Annotation.objects.filter(task__project=OuterRef("pk"), labeler=user)
    open_tasks = Task.objects.filter(project=OuterRef("pk"), is_complete=False)
    # At most one assignment per (task, labeler), so this counts tasks.
    finished = Assignment.objects.filter(
        labeler=user,
        task__project=OuterRef("pk"),
        task__is_complete=False,
        status__in=[Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED],
    )
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects_for_user(user).annotate(
        role=Value(Membership.Role.ADMIN) if user.is_superuser else Subquery(role),
        done=count(done, "task__project"),
        remaining=count(open_tasks, "project") - count(finished, "task__project"),
    )


def project_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    if user.is_superuser:
        return Membership.Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def project_get_for_member(*, project_id: int, user: AbstractBaseUser) -> tuple[Project, str]:
    """The project and the user's role in it; 404 if they are not a member. One query,
    written by hand because every labeling request runs it (see webapp/sql.py)."""
    if user.is_superuser:
        statement = f"""SELECT {sql.columns(Project, "p")}, %s FROM {sql.table(Project)} p
                        WHERE p.id = %s"""  # noqa: S608 -- table and column names only
        params = [Membership.Role.ADMIN, project_id]
    else:
        statement = f"""
            SELECT {sql.columns(Project, "p")}, m.role
            FROM {sql.table(Membership)} m JOIN {sql.table(Project)} p ON p.id = m.project_id
            WHERE m.project_id = %s AND m.user_id = %s
        """  # noqa: S608 -- table and column names only
        params = [project_id, user.pk]
    row = sql.one(statement, params)
    if row is None:
        raise Http404("No such project.")
    *project, role = row
    return sql.instance(Project, project), role


def task_get_for_member(*, task_id: int, user: AbstractBaseUser) -> Task:
    """A task in one of the user's projects, with its project; 404 otherwise. One query."""
    member = ""
    params = [task_id]
    if not user.is_superuser:
        member = f"""AND EXISTS (SELECT 1 FROM {sql.table(Membership)} m
                                 WHERE m.project_id = t.project_id AND m.user_id = %s)"""  # noqa: S608
        params.append(user.pk)
    statement = f"""
        SELECT {sql.columns(Task, "t")}, {sql.columns(Project, "p")}
        FROM {sql.table(Task)} t JOIN {sql.table(Project)} p ON p.id = t.project_id
        WHERE t.id = %s {member}
    """  # noqa: S608 -- table and column names only
    row = sql.one(statement, params)
    if row is None:
        raise Http404("No such task.")
    n = len(Task._meta.concrete_fields)
    task = sql.instance(Task, row[:n])
    task.project = sql.instance(Project, row[n:])
    return task


def assignment_with_task(*, assignment_id: int) -> Assignment:
    """An assignment with everything needed to show its task, in three queries."""
    return (
        Assignment.objects.select_related("task__prompt", "task__project")
        .prefetch_related(
            Prefetch("task__completions", queryset=Completion.objects.only("id", "text"))
        )
        .get(pk=assignment_id)
    )


def task_content(task_id: int) -> dict:
    """A task's kind, project and prompt, and its completions as {id: text} in position
    order, in one query (the API's hot path)."""
    statement = f"""
        SELECT t.kind, t.project_id, p.text, p.messages, p.meta, c.id, c.text
        FROM {sql.table(Task)} t
        JOIN {sql.table(Prompt)} p ON p.id = t.prompt_id
        LEFT JOIN {sql.table(TaskCompletion)} tc ON tc.task_id = t.id
        LEFT JOIN {sql.table(Completion)} c ON c.id = tc.completion_id
        WHERE t.id = %s
        ORDER BY tc.position
    """  # noqa: S608 -- table names only
    rows = sql.all_rows(statement, [task_id])
    kind, project_id, text, messages, meta = rows[0][:5]
    return {
        "id": task_id,
        "kind": kind,
        "project": project_id,
        "prompt": {
            "text": text,
            "messages": sql.value(Prompt, "messages", messages),
            "meta": sql.value(Prompt, "meta", meta),
        },
        # A demonstration task has none (the LEFT JOIN's one row of nulls).
        "completions": {row[5]: row[6] for row in rows if row[5] is not None},
    }


def lease_view(assignment: Assignment) -> dict:
    """What a labeler is shown: the prompt and the completions in the lease's order.

    A lease just taken by services.task_claim_next carries its task's content (read to draw
    the shown order), so it is not read twice; otherwise one query."""
    content = getattr(assignment, "task_content", None) or task_content(assignment.task_id)
    texts = content["completions"]
    return {
        **content,
        "completions": [{"id": cid, "text": texts[cid]} for cid in assignment.shown_order],
        "expires_at": assignment.expires_at,
    }


def labeler_progress(*, project: Project, user: AbstractBaseUser) -> dict:
    """Counts for the progress bar: answered by me, and still open to me. Answered swap
    repeats count as done too, so answering one moves the bar like any other task."""
    done = sql.one(
        f"""SELECT (SELECT COUNT(*) FROM {sql.table(Annotation)} n
                    JOIN {sql.table(Task)} t ON t.id = n.task_id
                    WHERE t.project_id = %s AND n.labeler_id = %s)
                 + (SELECT COUNT(*) FROM {sql.table(Repeat)} r
                    WHERE r.project_id = %s AND r.labeler_id = %s AND r.status = %s)""",  # noqa: S608
        [project.id, user.pk, project.id, user.pk, Repeat.Status.ANSWERED],
    )[0]
    now = timezone.now()
    open_to_me = (
        Task.objects.filter(project=project, is_complete=False)
        .exclude(
            assignments__in=Assignment.objects.filter(labeler=user).filter(
                Q(status__in=[Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED])
                | Q(expires_at__gt=now, status=Assignment.Status.ACTIVE)
            )
        )
        .count()
    )
    return {"done": done, "remaining": open_to_me}


def labeler_annotations(*, project: Project, user: AbstractBaseUser) -> "LabelerAnswers":
    """The user's own answers in a project, newest first: their annotations and their
    answers to swap repeats, which they cannot tell from annotations (`repeat_as_annotation`).
    A sequence for a Paginator: a page reads only its own rows."""
    return LabelerAnswers(project=project, user=user)


class LabelerAnswers:
    def __init__(self, *, project: Project, user: AbstractBaseUser) -> None:
        self.annotations = Annotation.objects.filter(task__project=project, labeler=user)
        self.repeats = Repeat.objects.filter(
            project=project, labeler=user, status=Repeat.Status.ANSWERED
        )
        # (when, id, 1 if a repeat's answer) of every answer, in one union.
        self.keys = self.annotations.values_list("created_at", "id", Value(0)).union(
            self.repeats.values_list("answered_at", "answer_id", Value(1)), all=True
        )

    def count(self) -> int:
        return self.keys.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, page: slice) -> list[Annotation]:
        keys = list(self.keys.order_by("-created_at", "-id")[page])
        revised = AnnotationRevision.objects.filter(annotation_id_value=OuterRef("id"))
        found = {
            a.id: a
            for a in self.annotations.filter(id__in=[k[1] for k in keys if not k[2]])
            .select_related(
                "task__prompt", "chosen", "rejected", "review", "task__adjudication__chosen"
            )
            .annotate(revised=Exists(revised))
        }
        if repeat_ids := [k[1] for k in keys if k[2]]:
            changed = Exists(
                AnnotationRevision.objects.filter(annotation_id_value=OuterRef("answer_id"))
            )
            repeats = self.repeats.filter(answer_id__in=repeat_ids).annotate(revised=changed)
            for r in repeats.select_related("task__prompt"):
                found[r.answer_id] = repeat_as_annotation(r)
                found[r.answer_id].revised = r.revised
        return [found[k[1]] for k in keys if k[1] in found]


def repeat_as_annotation(repeat: Repeat) -> Annotation:
    """A swap repeat's answer as the annotation its labeler takes it for (never saved): its
    own id, order, answer and time, on the same task. Never reviewed (a review is of the
    dataset's answers)."""
    answer = dict(repeat.answer)
    time_spent_ms = answer.pop("time_spent_ms", None)
    annotation = Annotation(
        id=repeat.answer_id, task=repeat.task, labeler_id=repeat.labeler_id, kind=Kind.PAIRWISE,
        shown_order=repeat.shown_order, time_spent_ms=time_spent_ms,
        created_at=repeat.answered_at, **answer,
    )  # fmt: skip
    annotation._state.adding = False
    annotation._state.db = repeat._state.db
    annotation._state.fields_cache["review"] = None
    return annotation


def project_stats(*, project: Project) -> dict:
    counts = Task.objects.filter(project=project).aggregate(
        tasks=Count("id"), complete=Count("id", filter=Q(is_complete=True))
    )
    counts["annotations"] = Annotation.objects.filter(task__project=project).count()
    counts["prompts"] = project.prompts.count()
    return counts


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("role", "user__username")


def annotation_get_for_member(
    *, annotation_id: int, user: AbstractBaseUser, repeats: bool = True
) -> Annotation:
    """An annotation in one of the user's projects; 404 otherwise (whose it is, the services
    check: a member who is not its labeler gets a 403 there)."""
    annotations = Annotation.objects.filter(id=annotation_id)
    if not user.is_superuser:
        annotations = annotations.filter(task__project__memberships__user=user)
    annotation = annotations.only("id", "labeler_id", "task_id").first()
    if annotation is None and repeats:  # a swap repeat's answer, as its labeler knows it
        annotation = repeat_answer_for_member(answer_id=annotation_id, user=user)
    if annotation is None:
        raise Http404("No such annotation.")
    return annotation


def repeat_answer_for_member(*, answer_id: int, user: AbstractBaseUser) -> Annotation | None:
    """The answer to a swap repeat with this id, in one of the user's projects, as an
    annotation (`repeat_as_annotation`); None if there is none."""
    repeats = Repeat.objects.filter(answer_id=answer_id, status=Repeat.Status.ANSWERED)
    if not user.is_superuser:
        repeats = repeats.filter(project__memberships__user=user)
    repeat = repeats.select_related("task__prompt").first()
    return repeat_as_annotation(repeat) if repeat is not None else None


def annotation_revision_count(*, annotation_id: int) -> int:
    return AnnotationRevision.objects.filter(annotation_id_value=annotation_id).count()


def annotation_revisions(*, annotation_id: int) -> QuerySet[AnnotationRevision]:
    return AnnotationRevision.objects.filter(annotation_id_value=annotation_id).order_by("id")


def completion_texts(*, ids: set[int]) -> dict[int, str]:
    """{completion id: text} for the given ids, in one query."""
    if not ids:
        return {}
    return dict(Completion.objects.filter(id__in=ids).values_list("id", "text"))


def next_project_with_work(*, user: AbstractBaseUser, after: Project) -> Project | None:
    """Another of the user's projects with tasks left for them (the first by name), for the
    "all done" page to point to."""
    projects = projects_overview_for_user(user).exclude(id=after.id)
    return projects.filter(remaining__gt=0).order_by("name", "id").first()
