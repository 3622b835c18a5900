"""Celery tasks: thin wrappers that take ids and call one service.

Each task imports its service inside its body (style.md, after HackSoft's styleguide), so the
services can import these tasks at the top and no trainer module imports another in a circle
at import time (tests/test_imports.py checks both).
"""

import os
import socket

from celery import shared_task


@shared_task(acks_late=True, name="trainer.tasks.run_training_job")
def run_training_job(job_id: int) -> str | None:
    # Time budgets are enforced inside the training loop: Celery's limits do not apply
    # under the solo pool the gpu workers use (docs/architecture.md).
    from trainer import runner

    return runner.job_run_and_advance(job_id=job_id, worker=f"{socket.gethostname()}:{os.getpid()}")


@shared_task(name="trainer.tasks.reap_jobs")
def reap_jobs() -> list[int]:
    from trainer import services

    return services.jobs_reap()


@shared_task(name="trainer.tasks.advance_loop")
def advance_loop(project_id: int) -> str | None:
    """Sent when a label or a job end marked the loop due; a no-op if the sweep got there first."""
    from trainer.loop import services

    return services.loop_advance_if_due(project_id=project_id)


@shared_task(name="trainer.tasks.sweep_outbox")
def sweep_outbox() -> dict:
    """Celery beat, every few seconds: deliver what requests recorded while the broker was
    away (trainer/outbox.py)."""
    from trainer import outbox

    return outbox.outbox_sweep()


@shared_task(name="trainer.tasks.advance_all_loops")
def advance_all_loops() -> None:
    """Safety net: catches any transition whose trigger message was lost."""
    from trainer.loop import services

    services.loops_advance_all()


@shared_task(acks_late=True, name="trainer.tasks.measure_fresh_accuracy")
def measure_fresh_accuracy(model_version_id: int) -> dict:
    """A reward model's accuracy on labels made after it was trained. Its scoring child loads
    the model: sent to the gpu queue (measure.reward_model_fresh_accuracy_request)."""
    from trainer.loop import measure

    return measure.reward_model_fresh_accuracy(model_version_id=model_version_id)


@shared_task(acks_late=True, name="trainer.tasks.score_round_samples")
def score_round_samples(round_id: int) -> dict:
    """A loop round's samples scored by its reward model, in a child process: sent to the gpu
    queue (measure.round_scores_request)."""
    from trainer.loop import measure

    return measure.round_scores_measure(round_id=round_id)


@shared_task(acks_late=True, name="trainer.tasks.score_round_candidates")
def score_round_candidates(round_id: int) -> dict:
    """A loop round's candidates scored for routing by its reward model (every head), in a
    child process: sent to the gpu queue (measure.round_candidates_request)."""
    from trainer.loop import measure

    return measure.round_candidates_measure(round_id=round_id)
