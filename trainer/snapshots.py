"""Freeze the rows a job trains on, with their hash and count.

Label-based kinds (reward, dpo, sft) take the export's own JSONL bytes (annotator/export): the
rows of `GET /api/v1/projects/{id}/export/` for the same parameters and `until`, except that a
chat prompt stays its list of messages (SNAPSHOT_SCHEMA), so the training code renders it with
the chat template exactly as the policy is prompted when it generates. For plain-text prompts
the bytes, and so the sha256, are the export's: every model can say which labels it saw.
Prompt-based kinds (generate, raft, ppo, rloo, grpo) take the project's prompts, oldest first;
a generate job with `strategies` in its config gets, on every row, those strategies' templates
(`"strategies": {name: {"system_prompt", "instruction"}}`, see `strategy_templates`), which the
algorithm renders around the query (trainer/algorithms/strategy_prompts.py).
Outcome kinds (prompt_reward) take the project's query x strategy outcome table
(annotator/strategies/outcomes.py), one line per logged cell.

Held out: every kind that trains (all but generate) takes train-split prompts and their labels
only, whatever its dataset says; eval-split prompts are what the loop measures its policies on.

Rankings stay rankings: in a reward job's snapshot the K(K-1)/2 pairs of one ranking (rows of
one `group` from a ranking task) become one row, ``{"prompt", "ranking": [best, ...]}`` when
they order all K completions, else ``{"prompt", "completions", "pairs"}``: one batch element
of reward training (trainer/algorithms/reward_data.py), as in InstructGPT. Pairwise and
Likert-derived rows pass through as the export wrote them.

`job.dataset` chooses the rows: export filters for label kinds, split and a cap for prompt
kinds. `dataset_validate` checks it when the job is created. An SFT job with
`demonstrations: true` takes the written demonstrations instead (the `sft` export, chat
prompts kept as messages): rows of {"prompt", "completion"}.
"""

import hashlib
import json
from pathlib import Path

from annotator.export import ExportParams, export_start
from annotator.export.params import AGGREGATES, SOURCES, source_weights_from
from annotator.export.rows import SFT_SNAPSHOT_SCHEMA, SNAPSHOT_SCHEMA
from annotator.models import Prompt, PromptStrategy
from annotator.strategies.outcomes import AUTO, OutcomeError, outcome_table
from annotator.strategies.outcomes import SOURCES as OUTCOME_SOURCES
from trainer.exceptions import JobError
from trainer.kinds import LABEL_KINDS, OUTCOME_KINDS, PROMPT_KINDS, TASK_KINDS, TRAINING_KINDS
from trainer.models import TrainingJob

Kind = TrainingJob.Kind
_LABEL_KEYS = {
    "min_votes": int, "min_agreement": float, "split": str, "round": int,
    # Label quality (docs/quality.md) and review (docs/review.md): aggregation and exclusions.
    "aggregate": str, "min_labeler_reliability": float, "source": str, "posterior_margin": bool,
    "exclude_rejected": bool, "reviewed_only": bool,
    # SFT (docs/demonstrations.md): train on the written demonstrations (and edit tasks'
    # revisions, unless revisions is false) instead of each prompt's best-judged response.
    "demonstrations": bool, "revisions": bool,
    # Reward jobs: {source: weight}, each row's loss times its labelers' (docs/ai-judges.md).
    "source_weights": dict,
}  # fmt: skip
_CHOICES = {"aggregate": AGGREGATES, "source": SOURCES}
_OUTCOME_CHOICES = {"source": (AUTO, *OUTCOME_SOURCES)}
_PROMPT_KEYS = {"split": str, "max_prompts": int, "prompt_ids": list}
# A judging job (docs/ai-judges.md): which judge, and which of the tasks it has not judged.
_TASK_KEYS = {"judge": int, "max_tasks": int, "round": int, "include_complete": bool, "seed": int}
# Outcome kinds (prompt_reward): which outcome table (annotator/strategies/outcomes.py).
_OUTCOME_KEYS = {"split": str, "source": str, "likert_threshold": int}
# LABEL_KINDS / PROMPT_KINDS: what a kind's snapshot holds; TRAINING_KINDS: every kind that
# trains on its rows (all but generate), so eval-split prompts never reach them.
TRAIN = Prompt.Split.TRAIN
RANKING = "ranking"  # the export's `source` of a pair from a ranking task


def dataset_validate(*, kind: str, dataset: dict | None) -> dict:
    dataset = dict(dataset or {})
    allowed = _LABEL_KEYS if kind in LABEL_KINDS else _PROMPT_KEYS
    choices = _CHOICES
    if kind in TASK_KINDS:
        allowed = _TASK_KEYS
    if kind in OUTCOME_KINDS:
        allowed, choices = _OUTCOME_KEYS, _OUTCOME_CHOICES
    for key, value in dataset.items():
        expected = allowed.get(key)
        if expected is None:
            raise JobError(
                f"Unknown dataset key {key!r} for {kind} jobs; known: {', '.join(sorted(allowed))}."
            )
        if expected is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise JobError(f"dataset.{key} must be of type {expected.__name__}.")
        if key in choices and value not in choices[key]:
            raise JobError(f"dataset.{key} must be one of {', '.join(choices[key])}.")
        if key == "prompt_ids" and not all(isinstance(i, int) for i in value):
            raise JobError("dataset.prompt_ids must be a list of prompt ids.")
        if key == "source_weights":
            value = _source_weights(kind, value)
        dataset[key] = value
    if dataset.get("split") not in (None, *Prompt.Split.values):
        raise JobError(f"dataset.split must be one of {', '.join(Prompt.Split.values)}.")
    if kind in TRAINING_KINDS and dataset.get("split", TRAIN) != TRAIN:
        raise JobError(
            f"A {kind} job trains on train-split prompts only: eval-split prompts are held out "
            "to measure the models on. Leave dataset.split out, or set it to train."
        )
    return dataset


def _source_weights(kind: str, value: dict) -> dict:
    if kind != Kind.REWARD:
        raise JobError(
            f"dataset.source_weights weighs reward training's rows; {kind} jobs take no per-row "
            "weight (TRL's trainers have none). Choose the labels with dataset.source instead."
        )
    try:
        return dict(source_weights_from(value))
    except ValueError as exc:
        raise JobError(f"dataset.source_weights: {exc}") from None


def _split(job: TrainingJob) -> str | None:
    """The prompts' split a job may see: train for every kind that trains on them."""
    return TRAIN if job.kind in TRAINING_KINDS else job.dataset.get("split")


def _label_chunks(job: TrainingJob):
    # The preference export with chat prompts kept as messages (see SNAPSHOT_SCHEMA); an SFT
    # job on demonstrations takes the sft export, chats kept as messages alike.
    dataset = {k: v for k, v in job.dataset.items() if k != "demonstrations"}
    schema = SNAPSHOT_SCHEMA
    if job.kind == Kind.SFT and job.dataset.get("demonstrations"):
        schema = SFT_SNAPSHOT_SCHEMA
    weights = tuple(sorted(dataset.pop("source_weights", {}).items()))
    params = ExportParams(
        schema=schema, **{**dataset, "split": _split(job)}, source_weights=weights
    )
    chunks = export_start(project=job.project, params=params).chunks()
    if job.kind == Kind.REWARD:
        chunks = ranking_groups(chunks)
    yield from chunks


def strategy_templates(*, project, names) -> dict:
    """{name: {"system_prompt", "instruction"}} of the project's strategies named in a generate
    job's config, in the config's order; JobError naming the ones the project does not have."""
    if not names:
        return {}
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise JobError("strategies must be a list of the project's prompt strategy names.")
    found = {
        s.name: {"system_prompt": s.system_prompt, "instruction": s.instruction}
        for s in PromptStrategy.objects.filter(project=project, name__in=names)
    }
    missing = [n for n in names if n not in found]
    if missing:
        known = ", ".join(
            PromptStrategy.objects.filter(project=project).values_list("name", flat=True)
        )
        raise JobError(
            f"Unknown prompt strategy {', '.join(repr(n) for n in missing)}: the project's "
            f"strategies are {known or 'none yet (add them on the Strategies page)'}."
        )
    return {n: found[n] for n in names}


def _prompt_chunks(job: TrainingJob):
    templates = {}
    if job.kind == Kind.GENERATE:
        templates = strategy_templates(project=job.project, names=job.config.get("strategies"))
    prompts = Prompt.objects.filter(project=job.project).order_by("id")
    if _split(job):
        prompts = prompts.filter(split=_split(job))
    if "prompt_ids" in job.dataset:
        prompts = prompts.filter(id__in=job.dataset["prompt_ids"])
    if job.dataset.get("max_prompts"):
        prompts = prompts[: job.dataset["max_prompts"]]
    for pk, text, messages in prompts.values_list("id", "text", "messages").iterator(2000):
        row = {"prompt_id": pk, "prompt": messages if messages is not None else text}
        if templates:
            row["strategies"] = templates
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def _lines(chunks):
    pending = b""
    for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        yield from lines
    if pending:
        yield pending


def ranking_groups(chunks):
    """Export chunks in, one line per pair out, except that consecutive ranking pairs of one
    `group` come out as one row (see the module's docstring)."""
    group: list[dict] = []
    for line in _lines(chunks):
        row = json.loads(line)
        if group and (row.get("source") != RANKING or row["group"] != group[0]["group"]):
            yield _ranking_line(group)
            group = []
        if row.get("source") == RANKING:
            group.append(row)
        else:
            yield line + b"\n"
    if group:
        yield _ranking_line(group)


def _ranking_line(pairs: list[dict]) -> bytes:
    return (json.dumps(ranking_row(pairs), ensure_ascii=False) + "\n").encode()


def ranking_row(pairs: list[dict]) -> dict:
    """One reward-training row from the pairs of one ranking: a full order of its completions
    when the pairs give one (K(K-1)/2 consistent pairs), else the completions and the pairs."""
    texts: dict[int, str] = {}
    for p in pairs:
        texts[p["chosen_id"]], texts[p["rejected_id"]] = p["chosen"], p["rejected"]
    ids = list(texts)
    beaten = {cid: sum(p["chosen_id"] == cid for p in pairs) for cid in ids}
    order = sorted(ids, key=lambda cid: -beaten[cid])
    row = {
        "prompt": pairs[0]["prompt"],
        "task_id": pairs[0]["task_id"],
        "prompt_id": pairs[0]["prompt_id"],
        "round": pairs[0]["round"],
        "split": pairs[0]["split"],
        "group": pairs[0]["group"],
        "source": RANKING,
        "pair_count": len(pairs),
    }
    if "weight" in pairs[0]:  # per-source weights: the ranking's labeler's, or their mean
        row["weight"] = round(sum(p["weight"] for p in pairs) / len(pairs), 6)
    full = len(pairs) == len(ids) * (len(ids) - 1) // 2
    if full and sorted(beaten.values()) == list(range(len(ids))):
        return {**row, "ranking": [texts[cid] for cid in order], "ranking_ids": order}
    index = {cid: i for i, cid in enumerate(ids)}
    return {
        **row,
        "completions": [texts[cid] for cid in ids],
        "completion_ids": ids,
        "pairs": [[index[p["chosen_id"]], index[p["rejected_id"]], p["margin"]] for p in pairs],
    }


def _task_chunks(job: TrainingJob):
    from annotator.judging import tasks_for_judging
    from trainer.models import Judge

    judge = (
        Judge.objects.select_related("user")
        .filter(id=job.dataset.get("judge"), project_id=job.project_id)
        .first()
    )
    if judge is None:
        raise JobError("A judging job needs dataset.judge: one of the project's judges.")
    from trainer.judging.services import judged_kinds

    rows = tasks_for_judging(
        project=job.project, labeler=judge.user, limit=job.dataset.get("max_tasks"),
        round=job.dataset.get("round"), seed=job.dataset.get("seed"),
        include_complete=job.dataset.get("include_complete", False),
        kinds=judged_kinds(judge),
    )  # fmt: skip
    for row in rows:
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def _outcome_chunks(job: TrainingJob):
    """One ``{"query_id", "query", "strategy", "outcome"}`` line per cell of the project's
    outcome table, train-split queries only."""
    try:
        table = outcome_table(
            project=job.project,
            source=job.dataset.get("source", AUTO),
            likert_threshold=job.dataset.get("likert_threshold"),
            split=_split(job),
        )
    except OutcomeError as exc:
        raise JobError(f"dataset.{exc.field}: {exc.message}") from None
    for row in table.training_rows():
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def snapshot_chunks(job: TrainingJob):
    if job.kind in TASK_KINDS:
        return _task_chunks(job)
    if job.kind in OUTCOME_KINDS:
        return _outcome_chunks(job)
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
