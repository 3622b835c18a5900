"""Reads of jobs and models, always through the user's admin memberships."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from annotator.models import Membership, Project
from trainer.models import ModelVersion, TrainingJob


def _admin_project_ids(user: AbstractBaseUser):
    return Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values("project_id")


def projects_for_admin(user: AbstractBaseUser) -> QuerySet[Project]:
    projects = Project.objects.order_by("name", "id")
    return projects if user.is_superuser else projects.filter(id__in=_admin_project_ids(user))


def jobs_for_admin(user: AbstractBaseUser) -> QuerySet[TrainingJob]:
    jobs = TrainingJob.objects.select_related("project", "output_model", "input_model")
    return jobs if user.is_superuser else jobs.filter(project_id__in=_admin_project_ids(user))


def models_for_admin(user: AbstractBaseUser) -> QuerySet[ModelVersion]:
    models = ModelVersion.objects.select_related("project", "parent", "job")
    return models if user.is_superuser else models.filter(project_id__in=_admin_project_ids(user))


def job_get_for_admin(*, job_id: int, user: AbstractBaseUser) -> TrainingJob:
    job = jobs_for_admin(user).filter(id=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return job
