"""Writes of the project setup pages: projects, their settings and their members.

Typed, keyword-only, atomic where they write (style.md). The views (annotator/project_views.py)
stay thin: they validate a form and call one of these.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator import services
from annotator.exceptions import ServiceError
from annotator.gold import gold_pace_restart
from annotator.models import Membership, Project, Task

# The settings a project page may write; anything else is refused, not silently stored.
SETTINGS = (
    "name", "kind", "guidelines", "overlap", "lease_seconds", "allow_tie", "allow_both_bad",
    "ask_strength", "wide_lines", "likert_points", "flags", "aspects", "gold_every",
    "gold_floor", "gold_min_answers", "repeat_share", "min_chars", "max_chars", "principles",
)  # fmt: skip


def _check_settings(values: dict) -> None:
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ServiceError(f"Unknown project setting: {', '.join(unknown)}.", field=unknown[0])


def project_create(*, created_by: AbstractBaseUser, **values) -> Project:
    """A new project, with its creator as its first admin (annotator.services does it)."""
    _check_settings(values)
    return services.project_create(created_by=created_by, **values)


@transaction.atomic
def project_update(*, project: Project, **values) -> Project:
    """Change a project's settings. Its kind is fixed once it has tasks: the tasks were cut
    and answered for that kind."""
    _check_settings(values)
    kind = values.get("kind", project.kind)
    if kind != project.kind and Task.objects.filter(project=project).exists():
        raise ServiceError(
            "The kind cannot change once the project has tasks; make a new project instead.",
            field="kind",
        )
    gold_pace_changed = values.get("gold_every", project.gold_every) != project.gold_every
    for name, value in values.items():
        setattr(project, name, value)
    project.save(update_fields=list(values) or None)
    if gold_pace_changed:
        gold_pace_restart(project=project)
    return project


@transaction.atomic
def member_set_by_username(*, project: Project, username: str, role: str) -> Membership:
    """Add the user with this username to the project, or change their role there; the last
    admin cannot be made a labeler."""
    if role not in Membership.Role.values:
        raise ServiceError("Pick Admin, Reviewer or Labeler.", field="role")
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise ServiceError(f"There is no user named “{username.strip()}”.", field="username")
    current = Membership.objects.filter(project=project, user=user).first()
    if current is not None and current.role != role:
        _keep_one_admin(project, leaving=current)
    return services.membership_set(project=project, user=user, role=role)


@transaction.atomic
def membership_remove(*, project: Project, membership_id: int) -> None:
    membership = (
        Membership.objects.select_for_update().filter(project=project, id=membership_id).first()
    )
    if membership is None:
        raise ServiceError("That person is not a member of this project.", field="membership")
    _keep_one_admin(project, leaving=membership)
    membership.delete()


def _keep_one_admin(project: Project, *, leaving: Membership) -> None:
    if leaving.role != Membership.Role.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        project=project, role=Membership.Role.ADMIN
    )
    if not admins.exclude(id=leaving.id).exists():
        raise ServiceError(
            "A project needs at least one admin: make someone else admin first.", field="role"
        )
