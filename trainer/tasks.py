"""Celery tasks: thin wrappers that take ids and call one service."""

import os
import socket

from celery import shared_task

from trainer import runner, services


@shared_task(acks_late=True, name="trainer.tasks.run_training_job")
def run_training_job(job_id: int) -> str | None:
    # Time budgets are enforced inside the training loop: Celery's limits do not apply
    # under the solo pool the gpu workers use (design.md).
    return runner.job_run(job_id=job_id, worker=f"{socket.gethostname()}:{os.getpid()}")


@shared_task(name="trainer.tasks.reap_jobs")
def reap_jobs() -> list[int]:
    return services.jobs_reap()
