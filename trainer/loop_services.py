"""Writes for the loop page: a reward model's accuracy on labels it was not trained on.

The measurement loads the reward model, so it runs on a gpu worker (trainer.tasks.
measure_fresh_accuracy), never in the web process: this module imports torch only inside
`reward_model_fresh_accuracy`, which only the task calls. The result is stored in the model's
`metrics["fresh_accuracy"]`: {"status", "n", "correct", "accuracy", "cutoff", "measured_at",
"simulated"} (or "error" when it failed).
"""

import logging

from django.db import transaction
from django.utils import timezone

from trainer import loop_selectors
from trainer.exceptions import JobError
from trainer.models import ModelVersion

log = logging.getLogger(__name__)

# At most this many of the newest fresh comparisons are scored: enough for an interval of about
# ±2 points, and a bounded job however many labels arrive.
FRESH_LIMIT = 2000


def _store(model_id: int, value: dict) -> None:
    with transaction.atomic():
        model = ModelVersion.objects.select_for_update().only("metrics").get(id=model_id)
        metrics = dict(model.metrics or {})
        metrics["fresh_accuracy"] = value
        ModelVersion.objects.filter(id=model_id).update(metrics=metrics)


def reward_model_fresh_accuracy_request(*, model_version: ModelVersion) -> None:
    """Mark the measurement queued and send it to a gpu worker once this is committed."""
    from trainer import outbox
    from trainer.tasks import measure_fresh_accuracy

    if model_version.role != ModelVersion.Role.REWARD:
        raise JobError("Only a reward model's accuracy can be measured.")
    previous = (model_version.metrics or {}).get("fresh_accuracy")
    queued = {"status": "queued", "requested_at": timezone.now().isoformat()}
    if isinstance(previous, dict) and previous.get("status") == "done":
        # The last result stays on the page until the new one replaces it.
        queued = {**previous, **queued}
    with transaction.atomic():
        _store(model_version.id, queued)
        # Best effort: with the broker away the request still answers (the button can be
        # pressed again); trainer/outbox.py.
        transaction.on_commit(
            lambda: outbox.send(measure_fresh_accuracy, model_version.id, queue="gpu")
        )


def reward_model_fresh_accuracy(
    *, model_version_id: int, limit: int = FRESH_LIMIT, device: str = "auto"
) -> dict:
    """Score every fresh comparison's chosen and rejected completion with the reward model and
    store how often the chosen one scored higher (a tie in score counts as wrong, as in
    training's validation accuracy)."""
    model = ModelVersion.objects.select_related("job").get(id=model_version_id)
    cutoff = loop_selectors.fresh_accuracy_cutoff(model_version=model)
    rows = loop_selectors.fresh_comparisons(model_version=model, cutoff=cutoff, limit=limit)
    result = {
        "status": "done",
        "n": len(rows),
        "correct": 0,
        "cutoff": cutoff.isoformat(),
        "simulated": sum(r.simulated for r in rows),
    }
    try:
        if rows:
            result["correct"] = _count_correct(model, rows, device)
            result["accuracy"] = result["correct"] / len(rows)
    except Exception as exc:
        log.exception("Measuring reward model %s on fresh labels failed", model.id)
        _store(model.id, {"status": "failed", "error": str(exc)[-500:], **_when()})
        raise
    result |= _when()
    _store(model.id, result)
    return result


def _when() -> dict:
    return {"measured_at": timezone.now().isoformat()}


def _count_correct(model: ModelVersion, rows: list, device: str) -> int:
    from trainer.algorithms.reward_scoring import score_texts  # torch: on the worker only

    config = model.config or {}
    prompts = [r.prompt for r in rows]
    scores = score_texts(
        model.path,
        prompts + prompts,
        [r.chosen for r in rows] + [r.rejected for r in rows],
        device=device,
        batch_size=int(config.get("eval_batch_size") or 16),
        max_length=int(config.get("max_length") or 512),
    )
    n = len(rows)
    return sum(chosen > rejected for chosen, rejected in zip(scores[:n], scores[n:], strict=True))
