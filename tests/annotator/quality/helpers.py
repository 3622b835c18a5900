"""Answers made straight in the database, for the quality tests (the queue is not under test)."""

from django.utils import timezone

from annotator.models import Annotation, Assignment, Kind, Membership
from tests.factories import UserFactory, make_task


def labelers(project, n, prefix="lab"):
    users = [UserFactory(username=f"{prefix}{i}") for i in range(n)]
    Membership.objects.bulk_create(
        Membership(project=project, user=u, role=Membership.Role.LABELER) for u in users
    )
    return users


def answer(task, user, choice, *, left=None, seconds=None, skip=False):
    """choice: "first" / "second" (by completion id), "tie" or "both_bad"; `left` is the
    completion shown on the left (default the first)."""
    ids = sorted(task.task_completions.values_list("completion_id", flat=True))
    left = ids[0] if left is None else left
    shown = [left, next(c for c in ids if c != left)]
    status = Assignment.Status.SKIPPED if skip else Assignment.Status.SUBMITTED
    assignment = Assignment.objects.create(
        task=task, labeler=user, status=status, shown_order=shown,
        expires_at=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip
    if skip:
        return None
    fields = {"verdict": choice}
    if choice in ("first", "second"):
        chosen = ids[0] if choice == "first" else ids[1]
        rejected = ids[1] if choice == "first" else ids[0]
        fields = {"verdict": "preferred", "chosen_id": chosen, "rejected_id": rejected}
    return Annotation.objects.create(
        task=task, labeler=user, assignment=assignment, kind=Kind.PAIRWISE, shown_order=shown,
        time_spent_ms=None if seconds is None else int(seconds * 1000), **fields,
    )  # fmt: skip


def pairwise_tasks(project, n):
    return [make_task(project) for _ in range(n)]
