"""Freeze the rows a job trains on, with their hash and count.

Label-based kinds (reward, dpo, sft) take the export's own JSONL bytes (annotator/export): the
rows of `GET /api/v1/projects/{id}/export/` for the same parameters and `until`, except that a
chat prompt stays its list of messages (SNAPSHOT_SCHEMA), so the training code renders it with
the chat template exactly as the policy is prompted when it generates. For plain-text prompts
the bytes, and so the sha256, are the export's: every model can say which labels it saw.
Prompt-based kinds (generate, raft, ppo) take the project's prompts, oldest first.

`job.dataset` chooses the rows: export filters for label kinds, split and a cap for prompt
kinds. `dataset_validate` checks it when the job is created.
"""

import hashlib
import json
from pathlib import Path

from annotator.export import ExportParams, export_start
from annotator.export.rows import SNAPSHOT_SCHEMA
from annotator.models import Prompt
from trainer.exceptions import JobError
from trainer.models import TrainingJob

Kind = TrainingJob.Kind
LABEL_KINDS = {Kind.REWARD, Kind.DPO, Kind.SFT}
PROMPT_KINDS = {Kind.GENERATE, Kind.RAFT, Kind.PPO, Kind.RLOO, Kind.GRPO}
_LABEL_KEYS = {"min_votes": int, "min_agreement": float, "split": str, "round": int}
_PROMPT_KEYS = {"split": str, "max_prompts": int, "prompt_ids": list}


def dataset_validate(*, kind: str, dataset: dict | None) -> dict:
    dataset = dict(dataset or {})
    allowed = _LABEL_KEYS if kind in LABEL_KINDS else _PROMPT_KEYS
    for key, value in dataset.items():
        expected = allowed.get(key)
        if expected is None:
            raise JobError(
                f"Unknown dataset key {key!r} for {kind} jobs; known: {', '.join(sorted(allowed))}."
            )
        if expected is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise JobError(f"dataset.{key} must be of type {expected.__name__}.")
        if key == "prompt_ids" and not all(isinstance(i, int) for i in value):
            raise JobError("dataset.prompt_ids must be a list of prompt ids.")
        dataset[key] = value
    if dataset.get("split") not in (None, *Prompt.Split.values):
        raise JobError(f"dataset.split must be one of {', '.join(Prompt.Split.values)}.")
    return dataset


def _label_chunks(job: TrainingJob):
    # The preference export with chat prompts kept as messages (see SNAPSHOT_SCHEMA).
    params = ExportParams(schema=SNAPSHOT_SCHEMA, **job.dataset)
    yield from export_start(project=job.project, params=params).chunks()


def _prompt_chunks(job: TrainingJob):
    prompts = Prompt.objects.filter(project=job.project).order_by("id")
    if job.dataset.get("split"):
        prompts = prompts.filter(split=job.dataset["split"])
    if "prompt_ids" in job.dataset:
        prompts = prompts.filter(id__in=job.dataset["prompt_ids"])
    if job.dataset.get("max_prompts"):
        prompts = prompts[: job.dataset["max_prompts"]]
    for pk, text, messages in prompts.values_list("id", "text", "messages").iterator(2000):
        row = {"prompt_id": pk, "prompt": messages if messages is not None else text}
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def snapshot_chunks(job: TrainingJob):
    if job.kind in LABEL_KINDS:
        return _label_chunks(job)
    if job.kind in PROMPT_KINDS:
        return _prompt_chunks(job)
    raise JobError(f"No dataset source for {job.kind} jobs.")


def snapshot_freeze(*, job: TrainingJob, directory: Path) -> Path:
    """Write the rows to `directory/rows.jsonl` and store their sha256 and count on the job."""
    path = directory / "rows.jsonl"
    digest, count = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for chunk in snapshot_chunks(job):
            handle.write(chunk)
            digest.update(chunk)
            count += chunk.count(b"\n")
    if count == 0:
        raise JobError("The dataset snapshot is empty: there are no usable labels or prompts.")
    TrainingJob.objects.filter(id=job.id).update(
        snapshot_sha256=digest.hexdigest(), snapshot_rows=count
    )
    return path
