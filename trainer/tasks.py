"""Celery tasks: thin wrappers that take ids and call one service."""

import os
import socket

from celery import shared_task
from django.db import transaction

from trainer import loop, loop_services, runner, services
from trainer.models import LoopPolicy, TrainingJob


@shared_task(acks_late=True, name="trainer.tasks.run_training_job")
def run_training_job(job_id: int) -> str | None:
    # Time budgets are enforced inside the training loop: Celery's limits do not apply
    # under the solo pool the gpu workers use (design.md).
    status = runner.job_run(job_id=job_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    project_id = TrainingJob.objects.filter(id=job_id).values_list("project_id", flat=True).first()
    if status is not None and project_id is not None:
        from trainer import outbox

        with transaction.atomic():
            outbox.loop_advance_request(project_id=project_id)
    return status


@shared_task(name="trainer.tasks.reap_jobs")
def reap_jobs() -> list[int]:
    return services.jobs_reap()


@shared_task(name="trainer.tasks.advance_loop")
def advance_loop(project_id: int) -> str | None:
    """Sent when a label or a job end marked the loop due; a no-op if the sweep got there first."""
    from trainer import outbox

    if not outbox.loop_advance_claim(project_id=project_id):
        return None
    return loop.loop_advance(project_id=project_id)


@shared_task(name="trainer.tasks.sweep_outbox")
def sweep_outbox() -> dict:
    """Celery beat, every few seconds: deliver what requests recorded while the broker was
    away (trainer/outbox.py)."""
    from trainer import outbox

    return outbox.outbox_sweep()


@shared_task(name="trainer.tasks.advance_all_loops")
def advance_all_loops() -> None:
    """Safety net: catches any transition whose trigger message was lost."""
    for project_id in LoopPolicy.objects.filter(enabled=True).values_list("project_id", flat=True):
        loop.loop_advance(project_id=project_id)


@shared_task(acks_late=True, name="trainer.tasks.measure_fresh_accuracy")
def measure_fresh_accuracy(model_version_id: int) -> dict:
    """A reward model's accuracy on labels made after it was trained. Its scoring child loads
    the model: sent to the gpu queue (loop_services.reward_model_fresh_accuracy_request)."""
    return loop_services.reward_model_fresh_accuracy(model_version_id=model_version_id)


@shared_task(acks_late=True, name="trainer.tasks.score_round_samples")
def score_round_samples(round_id: int) -> dict:
    """A loop round's samples scored by its reward model, in a child process: sent to the gpu
    queue (loop_services.round_scores_request)."""
    return loop_services.round_scores_measure(round_id=round_id)
