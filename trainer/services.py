"""Everything that writes training jobs and model versions.

State changes are conditional updates on the job row (`filter(status=OLD).update(...)`), acted
on only when they changed one row: that is what keeps a job from running twice, and a reaped
job from being finished by a worker that came back.
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Func, JSONField, Value
from django.utils import timezone

from annotator.models import Project
from annotator.task_services import (
    Sample,
    completions_generated_create,
    strategy_comparisons_create,
)
from trainer.algorithms.common import read_jsonl
from trainer.algorithms.generate import COMPLETIONS_FILENAME
from trainer.algorithms.lora import adapter_base, is_adapter
from trainer.configs import validate_config
from trainer.exceptions import JobError
from trainer.kinds import COMPLETIONS, JUDGMENTS, KINDS, POLICY, PROMPT_SELECTOR, REWARD_MODEL
from trainer.memory_check import job_memory_check
from trainer.models import ModelVersion, TrainingJob
from trainer.outbox import job_send_on_commit
from trainer.snapshots import dataset_validate, strategy_templates

Status = TrainingJob.Status
LOG_TAIL_CHARS = 8000

# The registry: which model version a finished job of each kind makes (trainer/kinds.py).
OUTPUT_ROLES = {
    REWARD_MODEL: ModelVersion.Role.REWARD,
    POLICY: ModelVersion.Role.POLICY,
    PROMPT_SELECTOR: ModelVersion.Role.PROMPT_SELECTOR,
}


def job_create(
    *,
    project: Project,
    kind: str,
    config: dict,
    created_by: AbstractBaseUser | None = None,
    input_model: ModelVersion | None = None,
    reward_model: ModelVersion | None = None,
    dataset: dict | None = None,
) -> TrainingJob:
    """Queue a job; its message is sent once the row is committed, best effort: when the broker
    is away the outbox sweep sends it later (trainer/outbox.py). It runs once either way."""

    config = validate_config(
        kind=kind, config=config, input_model=input_model, reward_model=reward_model
    )
    job_memory_check(kind=kind, config=config)  # refuses a job no worker can hold
    dataset = dataset_validate(kind=kind, dataset=dataset)
    if kind == "generate":  # names the project's prompt strategies (docs/prompt-optimisation.md)
        strategy_templates(project=project, names=config.get("strategies"))
    with transaction.atomic():
        job = TrainingJob.objects.create(
            project=project,
            kind=kind,
            config=config,
            dataset=dataset,
            created_by=created_by,
            input_model=input_model,
            reward_model=reward_model,
        )
        job.output_dir = str(Path(settings.PREFLOOP_MODELS_DIR) / f"job-{job.id}")
        job.save(update_fields=["output_dir"])
        job_send_on_commit(job_id=job.id)
    return job


def job_claim(*, job_id: int, worker: str) -> bool:
    now = timezone.now()
    return bool(
        TrainingJob.objects.filter(id=job_id, status=Status.QUEUED).update(
            status=Status.RUNNING,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
        )
    )


def job_heartbeat(
    *,
    job_id: int,
    worker: str,
    step: int | None = None,
    total=None,
    new_metrics: list[dict] | None = None,
    log_tail: str | None = None,
) -> bool:
    """Record liveness and progress. False means the job is no longer ours (reaped)."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if step is not None:
        fields["step"] = step
    if total is not None:
        fields["total_steps"] = total
    if log_tail is not None:
        fields["log_tail"] = log_tail[-LOG_TAIL_CHARS:]
    mine = TrainingJob.objects.filter(id=job_id, status=Status.RUNNING, worker=worker)
    if new_metrics and connection.vendor == "postgresql":
        # Appended in the database, in one statement: the series is not read back, decoded and
        # re-encoded by the worker each second (at 20,000 points: 40 ms a heartbeat, was 144).
        fields["metrics"] = _JsonbAppend(F("metrics"), Value(new_metrics, JSONField()))
        return bool(mine.update(**fields))
    with transaction.atomic():
        updated = mine.update(**fields)
        if updated and new_metrics:
            job = TrainingJob.objects.select_for_update().only("metrics").get(id=job_id)
            TrainingJob.objects.filter(id=job_id).update(metrics=job.metrics + new_metrics)
    return bool(updated)


class _JsonbAppend(Func):
    """``a || b`` on two jsonb arrays (PostgreSQL): b's items appended to a."""

    arg_joiner = " || "
    template = "(%(expressions)s)"
    output_field = JSONField()


def job_cancel_requested(*, job_id: int) -> bool:
    return TrainingJob.objects.filter(id=job_id, cancel_requested=True).exists()


def job_finish(
    *, job_id: int, worker: str, status: str, error: str = "", final_metrics: dict | None = None
) -> TrainingJob | None:
    """End a running job; registers its output model when it succeeded."""
    with transaction.atomic():
        updated = TrainingJob.objects.filter(
            id=job_id, status=Status.RUNNING, worker=worker
        ).update(status=status, error=error[-LOG_TAIL_CHARS:], finished_at=timezone.now())
        if not updated:
            return None
        job = TrainingJob.objects.get(id=job_id)
        if status == Status.SUCCEEDED:
            job.output_model = _register_output(job, final_metrics or {})
            job.save(update_fields=["output_model"])
        if KINDS[job.kind].makes == JUDGMENTS:
            from trainer.judging.services import judge_job_ended

            if final_metrics:
                TrainingJob.objects.filter(id=job.id).update(
                    metrics=job.metrics + [{"step": job.step, **final_metrics}]
                )
            judge_job_ended(job=job)
    return job


def model_dir(job: TrainingJob) -> Path:
    """Where the job's process writes its checkpoint (and a generate job its samples)."""
    return Path(job.output_dir) / "model"


def _register_output(job: TrainingJob, metrics: dict) -> ModelVersion | None:
    makes = KINDS[job.kind].makes
    if makes == JUDGMENTS:  # stored batch by batch while the job ran
        return None
    if makes == COMPLETIONS:
        _store_generations(job)
        return None
    role = OUTPUT_ROLES[makes]
    path = model_dir(job)
    base = adapter_base(path) if is_adapter(path) else ""
    return ModelVersion.objects.create(
        project=job.project,
        name=f"{job.kind}-{job.id}",
        role=role,
        path=str(path),
        parent=job.input_model,
        job=job,
        metrics=metrics,
        config=job.config,
        adapter_base=base,
        base_model=base_version(project=job.project, path=base) if base else None,
    )


def base_version(*, project: Project, path: str) -> ModelVersion | None:
    """The registry's version of an adapter's base (full weights at that path), if any."""
    return (
        ModelVersion.objects.filter(project=project, path=path, adapter_base="")
        .order_by("id")
        .first()
    )


def _store_generations(job: TrainingJob) -> int:
    """Samples of a generate job become completions of their prompts, tagged with the model."""
    settings_used = {k: v for k, v in job.config.items() if k != "model_name_or_path"}
    rows = read_jsonl(model_dir(job) / COMPLETIONS_FILENAME)
    samples = [
        Sample(
            prompt_id=row.get("prompt_id"),
            text=row["completion"],
            meta={"job": job.id, "sample_index": row.get("sample_index", 0)}
            # The prompt strategy it was sampled under (docs/prompt-optimisation.md).
            | ({"strategy": row["strategy"]} if row.get("strategy") else {}),
        )
        for row in rows
    ]
    stored = completions_generated_create(
        project=job.project,
        model_version_id=job.input_model_id,
        generation=settings_used,
        samples=samples,
    )
    if job.config.get("compare_strategies"):
        strategy_comparisons_create(project=job.project, job_id=job.id)
    return stored


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop at its next step."""
    now = timezone.now()
    queued = TrainingJob.objects.filter(id=job.id, status=Status.QUEUED).update(
        status=Status.CANCELLED, cancel_requested=True, finished_at=now
    )
    running = queued or TrainingJob.objects.filter(id=job.id, status=Status.RUNNING).update(
        cancel_requested=True
    )
    job.refresh_from_db()
    if not (queued or running):
        raise JobError(f"The job has already ended ({job.status}).")
    return job


def jobs_reap(*, stale_after: timedelta | None = None) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats. Returns their ids."""
    stale_after = stale_after or timedelta(seconds=settings.PREFLOOP_JOB_HEARTBEAT_TIMEOUT)
    cutoff = timezone.now() - stale_after
    reaped = []
    for job_id, worker in TrainingJob.objects.filter(
        status=Status.RUNNING, heartbeat_at__lt=cutoff
    ).values_list("id", "worker"):
        if TrainingJob.objects.filter(
            id=job_id, status=Status.RUNNING, heartbeat_at__lt=cutoff
        ).update(
            status=Status.FAILED,
            finished_at=timezone.now(),
            error=(
                f"The worker {worker or '?'} stopped sending heartbeats (no sign of life for "
                f"{int(stale_after.total_seconds())} s): it was probably killed or lost its "
                "machine. Launch the job again to resume from its last checkpoint."
            ),
        ):
            reaped.append(job_id)
    return reaped
