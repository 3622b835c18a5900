"""Reads shared by the labeler UI, the API and the exports.

Access rule: a user sees a project only through a membership (superusers see all). Anything
outside the user's projects is reported as missing, never as forbidden, so ids do not leak.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    Count,
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
    Assignment,
    Completion,
    Membership,
    Project,
    Task,
    TaskCompletion,
)


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
    """The project and the user's role in it; 404 if they are not a member. One query."""
    if user.is_superuser:
        project = Project.objects.filter(pk=project_id).first()
        role = Membership.Role.ADMIN
    else:
        membership = (
            Membership.objects.select_related("project")
            .filter(project_id=project_id, user=user)
            .first()
        )
        project, role = (membership.project, membership.role) if membership else (None, None)
    if project is None:
        raise Http404("No such project.")
    return project, role


def task_get_for_member(*, task_id: int, user: AbstractBaseUser) -> Task:
    """A task in one of the user's projects; 404 otherwise."""
    tasks = Task.objects.select_related("project")
    if not user.is_superuser:
        tasks = tasks.filter(project__memberships__user=user)
    task = tasks.filter(pk=task_id).first()
    if task is None:
        raise Http404("No such task.")
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


def lease_view(assignment: Assignment) -> dict:
    """What a labeler is shown: the prompt and the completions in the lease's order, in one
    query (the API's hot path)."""
    rows = list(
        TaskCompletion.objects.filter(task_id=assignment.task_id)
        .select_related("completion", "task__prompt")
        .only(
            "completion__id", "completion__text", "task__kind", "task__project_id",
            "task__prompt__text", "task__prompt__messages", "task__prompt__meta",
        )
    )  # fmt: skip
    task = rows[0].task
    by_id = {row.completion_id: row.completion for row in rows}
    prompt = task.prompt
    return {
        "id": task.id,
        "kind": task.kind,
        "project": task.project_id,
        "prompt": {"text": prompt.text, "messages": prompt.messages, "meta": prompt.meta},
        "completions": [{"id": cid, "text": by_id[cid].text} for cid in assignment.shown_order],
        "expires_at": assignment.expires_at,
    }


def labeler_progress(*, project: Project, user: AbstractBaseUser) -> dict:
    """Counts for the progress bar: answered by me, and still open to me."""
    done = Annotation.objects.filter(task__project=project, labeler=user).count()
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


def labeler_annotations(*, project: Project, user: AbstractBaseUser) -> QuerySet[Annotation]:
    """The user's own annotations in a project, newest first."""
    return (
        Annotation.objects.filter(task__project=project, labeler=user)
        .select_related("task__prompt", "chosen", "rejected")
        .order_by("-created_at")
    )


def project_stats(*, project: Project) -> dict:
    counts = Task.objects.filter(project=project).aggregate(
        tasks=Count("id"), complete=Count("id", filter=Q(is_complete=True))
    )
    counts["annotations"] = Annotation.objects.filter(task__project=project).count()
    counts["prompts"] = project.prompts.count()
    return counts


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("role", "user__username")
