"""The loop's measurements with a reward model, each sent to a gpu worker, which runs the
model in a child process (trainer/loop/score_child.py): torch never loads in the web process nor in
the Celery worker.

- A reward model's accuracy on labels it was not trained on, stored in the model's
  `metrics["fresh_accuracy"]`: {"status", "n", "correct", "accuracy", "cutoff", "measured_at",
  "simulated"} (or "error" when it failed). The loop asks for it by itself for the previous
  round's reward model when a round has collected its labels; the loop page has a button too.
- A round's samples, the new policy's and the previous one's, scored by the round's (newest)
  reward model, stored in `LoopRound.scores`: {"status", "reward_model", "new", "previous",
  "n", "measured_at"}. The over-optimisation warning reads it (trainer/loop/selectors.py).
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotator.export.rows import prompt_native
from annotator.models import Completion
from trainer import outbox
from trainer.exceptions import JobError
from trainer.loop import accuracy
from trainer.models import LoopRound, ModelVersion
from trainer.tasks import measure_fresh_accuracy, score_round_candidates, score_round_samples

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
    cutoff = accuracy.fresh_accuracy_cutoff(model_version=model)
    rows = accuracy.fresh_comparisons(model_version=model, cutoff=cutoff, limit=limit)
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
    prompts = [r.prompt for r in rows]
    scores = score_in_child(
        model=model,
        prompts=prompts + prompts,
        completions=[r.chosen for r in rows] + [r.rejected for r in rows],
        device=device,
    )
    n = len(rows)
    return sum(chosen > rejected for chosen, rejected in zip(scores[:n], scores[n:], strict=True))


# A scoring child that runs longer than this is killed and the measurement fails.
SCORE_TIMEOUT_SECONDS = 3600


def score_in_child(
    *,
    model: ModelVersion,
    prompts: list,
    completions: list[str],
    device: str = "auto",
    heads: bool = False,
) -> list[float] | list[list[float]]:
    """The reward model's score of each (prompt, completion) (with `heads`, each head's score
    of it), computed by `python -m trainer.loop.score_child` so that torch loads in that
    process, not in this one."""
    config = model.config or {}
    spec = {
        "model_path": model.path,
        "prompts": prompts,
        "completions": completions,
        "batch_size": int(config.get("eval_batch_size") or 16),
        "max_length": int(config.get("max_length") or 512),
        "device": device,
    }
    with tempfile.TemporaryDirectory(prefix="prefloop-score-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "scores.json"
        spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run(  # noqa: S603 (our own module, our own arguments)
            [sys.executable, "-m", "trainer.loop.score_child", str(spec_path), str(out_path)],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCORE_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise JobError(f"Scoring with {model.name} failed: {done.stderr[-1000:]}")
        return json.loads(out_path.read_text(encoding="utf-8"))["heads" if heads else "scores"]


# --- A round's samples under one reward model ---------------------------------------------------


def round_scores_request(*, round_: LoopRound) -> None:
    """Mark the round's scoring queued and send it to a gpu worker once this is committed."""

    LoopRound.objects.filter(id=round_.id).update(scores={"status": "queued"})
    transaction.on_commit(lambda: score_round_samples.apply_async((round_.id,), queue="gpu"))


def round_samples(round_: LoopRound) -> dict[str, list[tuple]]:
    """{"new" | "previous": [(prompt, completion text)]}: every sample of the round's generate
    jobs for both policies, over the prompts both of them answered. One query."""
    ids = {role: round_.generate_jobs[role] for role in ("new", "previous")}
    rows = Completion.objects.filter(meta__job__in=list(ids.values())).values_list(
        "meta__job", "prompt_id", "prompt__text", "prompt__messages", "text"
    )
    by_job: dict[int, list[tuple]] = {job_id: [] for job_id in ids.values()}
    for job_id, prompt_id, text, messages, completion in rows.order_by("id"):
        by_job[int(job_id)].append((prompt_id, prompt_native(text, messages), completion))
    common = set.intersection(*({p for p, _, _ in samples} for samples in by_job.values()))
    return {
        role: [(prompt, text) for p, prompt, text in by_job[job_id] if p in common]
        for role, job_id in ids.items()
    }


def round_scores_measure(*, round_id: int, device: str = "auto") -> dict:
    """Score the new and the previous policy's samples with the round's reward model, so
    that the two means are on one scale, and store them in `LoopRound.scores`."""
    round_ = LoopRound.objects.select_related("reward_job__output_model").get(id=round_id)
    model = round_.reward_job.output_model
    samples = round_samples(round_)
    flat = samples["new"] + samples["previous"]
    result = {"status": "done", "reward_model": model.id, "n": len(samples["new"])}
    try:
        if samples["new"] and samples["previous"]:
            heads = score_in_child(
                model=model,
                prompts=[p for p, _ in flat],
                completions=[c for _, c in flat],
                device=device,
                heads=True,
            )
            scores = [sum(h) / len(h) for h in heads]
            n = len(samples["new"])
            result["new"] = sum(scores[:n]) / n
            result["previous"] = sum(scores[n:]) / len(samples["previous"])
            if len(heads[0]) > 1:
                # A reward ensemble's disagreement on each policy's samples (mean per-sample
                # standard deviation of the heads): rising on the new policy's is a warning.
                spread = [statistics.stdev(h) for h in heads]
                result["spread_new"] = sum(spread[:n]) / n
                result["spread_previous"] = sum(spread[n:]) / len(samples["previous"])
    except Exception as exc:
        log.exception("Scoring round %s's samples failed", round_id)
        failed = {"status": "failed", "reward_model": model.id, "error": str(exc)[-500:]}
        LoopRound.objects.filter(id=round_id).update(scores=failed | _when())
        raise
    result |= _when()
    LoopRound.objects.filter(id=round_id).update(scores=result)
    return result


# --- A round's candidates, for routing -----------------------------------------------------------


def round_candidates_request(*, round_: LoopRound) -> None:
    """Mark the round's candidates queued for scoring and send the scoring to a gpu worker once
    this is committed; the loop moves on when the scores are stored (loop/services.py)."""
    queued = {"status": "queued", "requested_at": timezone.now().isoformat()}
    LoopRound.objects.filter(id=round_.id).update(acquisition=queued)
    transaction.on_commit(lambda: outbox.send(score_round_candidates, round_.id, queue="gpu"))


def round_candidates(round_: LoopRound, prompt_ids) -> list[tuple[int, object, str]]:
    """(completion id, prompt, text) of every sample of the round's new and previous policy on
    `prompt_ids`, oldest first. One query."""
    jobs = [job for role, job in round_.generate_jobs.items() if role in ("new", "previous")]
    rows = Completion.objects.filter(meta__job__in=jobs, prompt_id__in=list(prompt_ids))
    return [
        (cid, prompt_native(text, messages), completion)
        for cid, text, messages, completion in rows.order_by("id").values_list(
            "id", "prompt__text", "prompt__messages", "text"
        )
    ]


def round_candidates_measure(*, round_id: int, device: str = "auto") -> dict:
    """Score every candidate on the round's train prompts under each head of the round's
    reward model, store them in `LoopRound.acquisition`, and advance the loop, which then
    queues the pairs its acquisition rule chooses."""
    from trainer.loop import services

    round_ = LoopRound.objects.select_related("reward_job__output_model").get(id=round_id)
    model = round_.reward_job.output_model
    rows = round_candidates(round_, services.round_train_prompts(round_))
    result = {"status": "done", "reward_model": model.id, "n": len(rows), "scores": {}}
    try:
        if rows:
            heads = score_in_child(
                model=model,
                prompts=[p for _, p, _ in rows],
                completions=[c for _, _, c in rows],
                device=device,
                heads=True,
            )
            result["heads"] = len(heads[0])
            result["scores"] = {str(cid): h for (cid, _, _), h in zip(rows, heads, strict=True)}
    except Exception as exc:
        log.exception("Scoring round %s's candidates failed", round_id)
        failed = {"status": "failed", "reward_model": model.id, "error": str(exc)[-500:]}
        LoopRound.objects.filter(id=round_id).update(acquisition=failed | _when())
        services.loop_advance(project_id=round_.project_id)  # fails the round, with the error
        raise
    LoopRound.objects.filter(id=round_id).update(acquisition=result | _when())
    services.loop_advance(project_id=round_.project_id)
    return result
