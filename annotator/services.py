"""Everything that writes labeling data: projects, members, the queue and answers.

The queue's rules (issue #2):
- "next task" resumes the labeler's own live lease first, so a double click or a second tab
  never hands out a second task;
- it never returns a task the labeler answered or skipped, nor one whose overlap is already
  covered by annotations plus live leases;
- order: priority (high first), then fewest annotations, then oldest.

Concurrency: a claim locks the task row (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL)
and only then counts live leases in a fresh statement, so every claimer of one task is
serialised and sees the leases of those before it. Submissions take the same row lock.
A claim first locks the labeler's user row (FOR NO KEY UPDATE), so one labeler's claims are
serialised too and the resume check sees a lease taken a moment ago in another tab.
On SQLite, IMMEDIATE transactions (settings.py) serialise all writers, which gives the same
guarantee.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Subquery
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotator.answers import validate_answer
from annotator.exceptions import AlreadyAnswered, LeaseLost, NotAssigned, ServiceError
from annotator.models import Annotation, Assignment, Membership, Project, Task
from annotator.signals import annotation_created

# How many candidate tasks a claim tries before answering "nothing left" when every one it
# locked turned out full (only under heavy contention on one task).
_CLAIM_ATTEMPTS = 20


# --- Projects and members -------------------------------------------------------------------


def project_create(*, created_by: AbstractBaseUser, **fields) -> Project:
    """Create a project; its creator becomes its first admin."""
    with transaction.atomic():
        project = Project(created_by=created_by, **fields)
        project.full_clean()
        project.save()
        Membership.objects.create(project=project, user=created_by, role=Membership.Role.ADMIN)
    return project


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change their role (idempotent)."""
    if role not in Membership.Role.values:
        raise ServiceError(f"role must be one of {', '.join(Membership.Role.values)}", field="role")
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def api_token_regenerate(*, user: AbstractBaseUser) -> Token:
    """Give the user a new API token; the old one stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


# Users in this group are scripted labelers (trainer's simulate_labelers): their annotations
# are stored with is_simulated=True, and the UI and the exports mark them.
SIMULATED_GROUP = "simulated"


def labeler_simulated_ensure(*, project: Project, username: str) -> Token:
    """A simulated labeler on the project, created if need be, and its API token (idempotent).

    It has no usable password: it only labels over the API.
    """
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get_or_create(name=SIMULATED_GROUP)[0])
        if not Membership.objects.filter(project=project, user=user).exists():
            membership_set(project=project, user=user, role=Membership.Role.LABELER)
        return Token.objects.get_or_create(user=user)[0]


def _is_simulated(labeler: AbstractBaseUser) -> bool:
    return labeler.groups.filter(name=SIMULATED_GROUP).exists()


# --- The queue ------------------------------------------------------------------------------


def _live_leases(now) -> Q:
    return Q(status=Assignment.Status.ACTIVE, expires_at__gt=now)


def _claim_candidate(
    *, project_id: int, labeler_id: int, now, tried: list[int]
) -> tuple[int, int, int, bool] | None:
    """The first task this labeler may take, in serving order, locked where the database can
    (`FOR UPDATE SKIP LOCKED`: tasks other claimers hold are passed over, not waited for).

    Returns (task id, annotation count, overlap, renew): `renew` says the labeler holds an
    expired lease on it, the only lease of theirs a claimable task can have. Written as SQL
    because it runs on every "next task" and the ORM took longer to build this statement
    than the database took to run it. Every subquery is a scalar one on purpose: one index
    probe per candidate, walked in the queue index's order until the first fit. (NOT EXISTS
    and EXISTS let PostgreSQL plan an anti-join or a hash over all the labeler's leases,
    which grows with everything they ever labeled.)
    """
    task, lease = Task._meta.db_table, Assignment._meta.db_table
    ops, features = connection.ops, connection.features
    at = ops.adapt_datetimefield_value(now)
    lock = ""
    if features.has_select_for_update_skip_locked and features.has_select_for_update_of:
        lock = "FOR UPDATE OF t SKIP LOCKED"
    not_tried = f"AND t.id NOT IN ({', '.join(['%s'] * len(tried))})" if tried else ""
    sql = f"""
        SELECT t.id, t.annotation_count, t.overlap,
               (SELECT COUNT(*) FROM {lease} r WHERE r.task_id = t.id AND r.labeler_id = %s)
        FROM {task} t
        WHERE t.project_id = %s AND NOT t.is_complete {not_tried}
          AND t.annotation_count + (
                SELECT COUNT(*) FROM {lease} l
                WHERE l.task_id = t.id AND l.status = %s AND l.expires_at > %s
              ) < t.overlap
          AND (
                SELECT COUNT(*) FROM {lease} m
                WHERE m.task_id = t.id AND m.labeler_id = %s
                  AND (m.status IN (%s, %s) OR m.expires_at > %s)
              ) = 0
        ORDER BY t.priority DESC, t.annotation_count, t.id
        LIMIT 1 {lock}
    """  # noqa: S608 -- only the models' table names are formatted in; values are bound
    Status = Assignment.Status
    params = [labeler_id, project_id, *tried, Status.ACTIVE, at, labeler_id]
    params += [Status.SUBMITTED, Status.SKIPPED, at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    task_id, annotation_count, overlap, renew = row
    return task_id, annotation_count, overlap, bool(renew)


def _resume_lease(*, project_id: int, labeler_id: int, now) -> Assignment | None:
    return (
        Assignment.objects.filter(
            _live_leases(now),
            labeler_id=labeler_id,
            task__project_id=project_id,
            task__is_complete=False,
        )
        .order_by("created_at")
        .first()
    )


def task_claim_next(*, project: Project, labeler: AbstractBaseUser) -> Assignment | None:
    """Give the labeler their next task as a lease, or None when nothing is left for them."""
    tried: list[int] = []
    with transaction.atomic():
        # One claim at a time per labeler: a second tab or a double click waits here, then
        # resumes the lease the first one took instead of taking a second task.
        _lock_labeler(labeler)
        now = timezone.now()
        resumed = _resume_lease(project_id=project.id, labeler_id=labeler.id, now=now)
        if resumed is not None:
            return resumed
        for _ in range(_CLAIM_ATTEMPTS):
            row = _claim_candidate(
                project_id=project.id, labeler_id=labeler.id, now=now, tried=tried
            )
            if row is None:
                return None
            task_id, annotation_count, overlap, renew = row
            # Counted after the lock, in a new statement: sees every lease committed by
            # claimers that held this lock before us.
            live = (
                Assignment.objects.filter(_live_leases(now), task_id=task_id)
                .exclude(labeler_id=labeler.id)
                .count()
            )
            if annotation_count + live < overlap:
                return _lease(
                    task_id=task_id, labeler=labeler, project=project, now=now, renew=renew
                )
            tried.append(task_id)
    return None


def _lock_labeler(labeler: AbstractBaseUser) -> None:
    # NO KEY UPDATE: does not block the foreign-key checks of the labeler's own inserts.
    users = get_user_model().objects.select_for_update(no_key=True)
    list(users.filter(pk=labeler.pk).values_list("pk", flat=True))


def _lease(
    *, task_id: int, labeler: AbstractBaseUser, project: Project, now, renew: bool
) -> Assignment:
    expires_at = now + timedelta(seconds=project.lease_seconds)
    if renew:
        Assignment.objects.filter(
            task_id=task_id, labeler=labeler, status=Assignment.Status.ACTIVE
        ).update(expires_at=expires_at)
        return Assignment.objects.get(task_id=task_id, labeler=labeler)
    completion_ids = list(
        Task.completions.through.objects.filter(task_id=task_id)
        .order_by("position")
        .values_list("completion_id", flat=True)
    )
    # Shown in a fresh random order per lease, to cancel position bias.
    shown = random.sample(completion_ids, len(completion_ids))
    return Assignment.objects.create(
        task_id=task_id, labeler=labeler, shown_order=shown, expires_at=expires_at
    )


def task_skip(*, task: Task, labeler: AbstractBaseUser, reason: str = "") -> Assignment:
    """Skip a leased task: it is never served to this labeler again."""
    reason = (reason or "").strip()[:200]
    updated = Assignment.objects.filter(
        task=task, labeler=labeler, status=Assignment.Status.ACTIVE
    ).update(status=Assignment.Status.SKIPPED, skip_reason=reason, finished_at=timezone.now())
    assignment = Assignment.objects.filter(task=task, labeler=labeler).first()
    if assignment is None:
        raise NotAssigned("You do not hold this task; ask for the next task first.")
    if not updated and assignment.status == Assignment.Status.SUBMITTED:
        raise AlreadyAnswered(
            "You already answered this task.", annotation_id=assignment.annotation.id
        )
    return assignment


# --- Answers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    late: bool  # accepted although the lease had expired


def annotation_submit(
    *,
    task: Task,
    labeler: AbstractBaseUser,
    answer: dict,
    time_spent_ms: int | None = None,
    is_simulated: bool = False,
) -> SubmitResult:
    """Store a labeler's answer to a task they hold.

    Idempotent per (task, labeler): a second submit raises AlreadyAnswered with the first
    annotation's id. A submit after the lease expired is accepted while the overlap is not
    yet covered by others; otherwise LeaseLost says so. Nothing is ever dropped silently.
    A simulated labeler's answers are always marked simulated.
    """
    is_simulated = is_simulated or _is_simulated(labeler)
    try:
        with transaction.atomic():
            return _submit(
                task=task, labeler=labeler, answer=answer, time_spent_ms=time_spent_ms,
                is_simulated=is_simulated,
            )  # fmt: skip
    except IntegrityError:
        # Unreachable while the task's row lock (PostgreSQL) or the write lock (SQLite) is
        # held; elsewhere the unique constraint holds and the labeler is told why. Caught out
        # here rather than around the insert, which spares a savepoint on every submit.
        answered_id = _answer_id(task=task, labeler=labeler)
        if answered_id is None:
            raise
        raise AlreadyAnswered(
            "You already answered this task.", annotation_id=answered_id
        ) from None


def _answer_id(*, task: Task, labeler: AbstractBaseUser) -> int | None:
    answers = Annotation.objects.filter(task=task, labeler=labeler)
    return answers.values_list("id", flat=True).first()


def _submit(
    *, task: Task, labeler: AbstractBaseUser, answer: dict, time_spent_ms, is_simulated: bool
) -> SubmitResult:
    # The same row lock as claims take, so submit and claim counts never interleave.
    locked = Task.objects.select_for_update().get(pk=task.pk)
    answers = Annotation.objects.filter(task=locked, labeler=labeler).values_list("id")
    # The lease and any earlier answer in one query (an answer can outlive its lease).
    assignment = (
        Assignment.objects.filter(task=locked, labeler=labeler)
        .annotate(answered_id=Subquery(answers[:1]))
        .first()
    )
    answered_id = assignment.answered_id if assignment else _answer_id(task=locked, labeler=labeler)
    if answered_id is not None:
        raise AlreadyAnswered("You already answered this task.", annotation_id=answered_id)
    if assignment is None:
        raise NotAssigned("You do not hold this task; ask for the next task first.")
    if assignment.status == Assignment.Status.SKIPPED:
        raise NotAssigned("You skipped this task; it can no longer be answered.")
    fields = validate_answer(
        task=locked, project=task.project, shown_order=assignment.shown_order, answer=answer
    )
    now = timezone.now()
    late = assignment.expires_at <= now
    if late and _overlap_covered(task=locked, labeler=labeler, now=now):
        raise LeaseLost(
            "Your lease on this task expired and other labelers have since covered it; "
            "your answer was not stored. Ask for the next task."
        )
    annotation = Annotation.objects.create(
        task=locked,
        labeler=labeler,
        assignment=assignment,
        kind=locked.kind,
        shown_order=assignment.shown_order,
        time_spent_ms=time_spent_ms,
        is_simulated=is_simulated,
        **fields,
    )
    Assignment.objects.filter(pk=assignment.pk).update(
        status=Assignment.Status.SUBMITTED, finished_at=now
    )
    count = locked.annotation_count + 1
    Task.objects.filter(pk=locked.pk).update(
        annotation_count=count, is_complete=count >= locked.overlap
    )
    transaction.on_commit(
        lambda: annotation_created.send(
            sender=Annotation, annotation_id=annotation.id, project_id=locked.project_id
        )
    )
    return SubmitResult(annotation=annotation, late=late)


def _overlap_covered(*, task: Task, labeler: AbstractBaseUser, now) -> bool:
    live_others = (
        Assignment.objects.filter(_live_leases(now), task=task).exclude(labeler=labeler).count()
    )
    return task.annotation_count + live_others >= task.overlap
