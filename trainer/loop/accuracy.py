"""Reads for a reward model's accuracy on comparisons labelled after it was trained ("fresh"
labels): which labels those are, and what `metrics["fresh_accuracy"]` holds once
trainer/loop/measure.py has measured it on a worker."""

from dataclasses import dataclass
from datetime import datetime

from annotator.export.rows import prompt_native
from annotator.models import Annotation, Kind, LabelerKind
from trainer.loop import evaluation
from trainer.loop.judgments import int_or_none
from trainer.models import ModelVersion

Verdict = Annotation.Verdict
# A job's heavy columns; the loop page shows none of them.
JOB_HEAVY = ("metrics", "log_tail", "config", "dataset")


@dataclass
class FreshAccuracy:
    """A reward model's accuracy on comparisons labelled after it was trained."""

    status: str  # "queued", "done" or "failed"
    n: int = 0
    correct: int = 0
    accuracy: float | None = None
    low: float | None = None
    high: float | None = None
    cutoff: str = ""
    measured_at: str = ""
    simulated: int = 0
    error: str = ""


def fresh_accuracy_of(model: ModelVersion | None) -> FreshAccuracy | None:
    """What `metrics["fresh_accuracy"]` holds, with the 95 % Wilson interval of the accuracy."""
    stored = (model.metrics or {}).get("fresh_accuracy") if model else None
    if not isinstance(stored, dict):
        return None
    n, correct = int_or_none(stored.get("n")) or 0, int_or_none(stored.get("correct")) or 0
    fresh = FreshAccuracy(
        status=str(stored.get("status", "")),
        n=n,
        correct=correct,
        cutoff=str(stored.get("cutoff", "")),
        measured_at=str(stored.get("measured_at", "")),
        simulated=int_or_none(stored.get("simulated")) or 0,
        error=str(stored.get("error", "")),
    )
    if n > 0 and 0 <= correct <= n:
        fresh.accuracy = correct / n
        fresh.low, fresh.high = evaluation.wilson_interval(correct, n)
    return fresh


def fresh_accuracy_cutoff(*, model_version: ModelVersion) -> datetime:
    """Labels after this moment were not in the model's training data: the end of the job that
    trained it (its registration time for a model registered by hand)."""
    job = model_version.job
    if job is not None and job.finished_at is not None:
        return job.finished_at
    return model_version.created_at


@dataclass(frozen=True)
class FreshComparison:
    prompt: str | list[dict]  # a chat prompt stays its messages, as in training snapshots
    chosen: str
    rejected: str
    simulated: bool


def fresh_comparisons(
    *, model_version: ModelVersion, cutoff: datetime, limit: int
) -> list[FreshComparison]:
    """Pairwise preferences of the model's project labelled after `cutoff`, newest first (at
    most `limit`). The prompt comes as in the training snapshot (text, or a chat's messages),
    which is how the reward model saw its training rows. One query."""
    rows = (
        Annotation.objects.filter(
            task__project_id=model_version.project_id,
            kind=Kind.PAIRWISE,
            verdict=Verdict.PREFERRED,
            chosen__isnull=False,
            rejected__isnull=False,
            created_at__gt=cutoff,
        )
        .order_by("-created_at", "-id")
        .values_list(
            "task__prompt__text",
            "task__prompt__messages",
            "chosen__text",
            "rejected__text",
            "labeler_kind",
        )[:limit]
    )
    return [
        FreshComparison(
            prompt_native(text, messages), chosen, rejected, kind == LabelerKind.SIMULATED
        )
        for text, messages, chosen, rejected, kind in rows
    ]


def reward_model_get(*, project_id: int, model_id: int) -> ModelVersion | None:
    """One of the project's reward models, with the job that trained it, or None."""
    return (
        ModelVersion.objects.select_related("job")
        .defer(*(f"job__{name}" for name in JOB_HEAVY))
        .filter(project_id=project_id, role=ModelVersion.Role.REWARD, id=model_id)
        .first()
    )
