"""RAFT (reward-ranked fine-tuning): sample, score, keep the best, fine-tune, repeat.

Each iteration samples ``num_samples`` completions per prompt from the current policy
(generate.py, from the policy's own distribution: no generation settings of the checkpoint),
scores them with the reward model (reward_scoring, the same text as in reward training; a
sample cut off at max_new_tokens is scored without the end-of-text token), keeps the
``keep_top_k`` best finished samples of each prompt and runs SFT on them (sft.py). A truncated
sample is never kept (LMFlow's RAFT keeps only complete responses); a prompt whose samples were
all truncated contributes nothing that round. The policy of iteration i is saved in
``output_dir/iteration-i`` (only the newest is kept); the final one also in output_dir.

Under ``accelerate launch`` each process samples and scores its share of the round's prompts;
the kept samples of all processes are gathered, so every process fine-tunes on the same set
through the SFT step's Trainer (which shards its batches, DDP); process 0 alone writes the
iteration directories and the final model (distributed.py).

Rows are prompt rows: ``{"prompt": text or chat transcript, ...}``.
Resuming (``resume_from_checkpoint="latest"``) continues after the last finished iteration,
with the same per-round seeds an uninterrupted run would have used.

``engine`` (as the generate job's): ``auto`` samples through vLLM when it is installed and the job
runs on one GPU, else with transformers' ``generate`` (the fall-back is a line in the job log).
vLLM samples in a child process (``python -m trainer.algorithms.generate``) that exits before
the fine-tuning step, so its reserved GPU memory is back for the SFT step; an adapter policy is
served through vLLM's LoRA support. Under ``accelerate launch`` each process samples with
``generate``.

``dtype`` sets the precision of sampling and scoring (frozen models) and of the SFT step's
autocast (``bf16``; its weights stay float32). ``fp16`` samples and scores in float16 and
fine-tunes in float32.

    python -m trainer.algorithms.raft --config job.json
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms import distributed, fast_generation, sft
from trainer.algorithms.common import (
    ProgressCallback,
    StopCheck,
    TrainingError,
    compute_dtype,
    report,
    resolve_device,
    run_main,
    save_config,
    set_seed,
    stop_requested,
)
from trainer.algorithms.generate import (
    COMPLETIONS_FILENAME,
    GenerateConfig,
    generate_completions,
    load_policy,
)
from trainer.algorithms.lora import SCALE_FIELD_NAMES, ScaleFields, check_scale
from trainer.algorithms.reward_scoring import RewardScorer
from trainer.algorithms.samples import SampleLog

ITERATION_PREFIX = "iteration-"
# Written last in an iteration's directory: without it the round did not finish.
ROUND_FILENAME = "raft_round.json"


@dataclass
class RAFTConfig(ScaleFields):
    model_name_or_path: str = field(metadata={"help": "Policy to start from: model id or path."})
    reward_model_path: str = field(
        default="", metadata={"help": "Trained reward model that scores the samples."}
    )
    iterations: int = field(default=3, metadata={"help": "Sample-score-finetune rounds."})
    prompts_per_iteration: int = field(
        default=0, metadata={"help": "Prompts sampled per round (0: all rows every round)."}
    )
    num_samples: int = field(default=4, metadata={"help": "Completions sampled per prompt (N)."})
    keep_top_k: int = field(default=1, metadata={"help": "Best completions kept per prompt."})
    keep_truncated: bool = field(
        default=False,
        metadata={
            "help": "Let samples cut off at max_new_tokens be kept too (still scored without "
            "the end-of-text token). Off: a cut-off reply is not the behaviour to imitate, and "
            "a round whose samples were all cut off stops with an error."
        },
    )
    max_new_tokens: int = field(default=128, metadata={"help": "Length limit of a sample."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1: off)."})
    generation_batch_size: int = field(
        default=16, metadata={"help": "Sequences per generate call."}
    )
    engine: str = field(
        default="auto",
        metadata={
            "help": "Sampling: auto (vLLM when installed and on one GPU, else transformers' "
            "generate, noted in the job log), vllm (the same, louder fall-back) or generate."
        },
    )
    reward_batch_size: int = field(default=16, metadata={"help": "Texts per reward forward."})
    learning_rate: float = field(default=2e-5, metadata={"help": "SFT learning rate."})
    sft_epochs: float = field(default=1.0, metadata={"help": "SFT passes over the kept samples."})
    sft_batch_size: int = field(default=8, metadata={"help": "SFT rows per step."})
    max_length: int = field(default=512, metadata={"help": "SFT token limit per row."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' continues after the last finished iteration."}
    )
    device: str = field(default="auto", metadata={"help": "'auto', 'cpu' or 'cuda:0'."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on a GPU that supports it, else fp32), bf16, fp16 or fp32: "
            "sampling and scoring run in it; fine-tuning keeps float32 weights (bf16 autocast "
            "for bf16 and auto-bf16, plain fp32 for fp16)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed for sampling and fine-tuning."})


def keep_best(
    samples: list[dict], scores: list[float], k: int, keep_truncated: bool = False
) -> list[dict]:
    """The k best-scored finished samples of each prompt (samples carry their prompt's row
    index); a sample with ``finished`` False (cut off at the length limit) is kept only with
    ``keep_truncated``."""
    by_prompt: dict[int, list[tuple[float, dict]]] = {}
    for sample, score in zip(samples, scores, strict=True):
        if not sample.get("finished", True) and not keep_truncated:
            continue
        by_prompt.setdefault(sample["_row"], []).append((score, sample))
    kept = []
    for candidates in by_prompt.values():
        candidates.sort(key=lambda pair: pair[0], reverse=True)
        kept += [dict(sample, reward=score) for score, sample in candidates[:k]]
    return kept


def finished_iterations(output_dir: Path) -> list[Path]:
    done = [p for p in output_dir.glob(f"{ITERATION_PREFIX}*") if (p / ROUND_FILENAME).is_file()]
    return sorted(done, key=iteration_number)


def iteration_number(path: Path) -> int:
    return int(path.name[len(ITERATION_PREFIX) :])


def sample_round(
    config: RAFTConfig,
    policy_path: str,
    rows: list[dict],
    scorer: RewardScorer,
    iteration: int,
    on_samples=None,
) -> tuple[list[dict], dict]:
    """Sample and score one round; returns the kept rows and the round's reward metrics."""
    rng = random.Random(config.seed + iteration)
    if 0 < config.prompts_per_iteration < len(rows):
        rows = rng.sample(rows, config.prompts_per_iteration)
    prompts = [{"prompt": row["prompt"], "_row": i} for i, row in enumerate(rows)]
    prompts = distributed.shard(prompts)  # all of them in one process
    settings = GenerateConfig(
        model_name_or_path=policy_path,
        num_samples=config.num_samples,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        batch_size=config.generation_batch_size,
        seed=config.seed + iteration,
    )
    set_seed(settings.seed + distributed.rank())
    device = distributed.setup(resolve_device(config.device))
    if sampling_engine(config, device) == "vllm":
        samples = sample_in_child(
            settings, prompts, engine="vllm", device=device, dtype=frozen_dtype(config)
        )
    else:
        model, tokenizer = load_policy(policy_path, device=device, dtype=frozen_dtype(config))
        samples = generate_completions(model, tokenizer, prompts, settings)
        del model
    scores = scorer(
        [s["prompt"] for s in samples],
        [s["completion"] for s in samples],
        [s["finished"] for s in samples],
    )
    # Every process's samples and scores, so all fine-tune on the same kept set.
    scored = distributed.gather(list(zip(samples, scores, strict=True)))
    samples, scores = [s for s, _ in scored], [score for _, score in scored]
    kept = keep_best(samples, scores, config.keep_top_k, config.keep_truncated)
    if on_samples is not None:
        on_samples([s["prompt"] for s in samples], [s["completion"] for s in samples], scores)
    if not kept:
        raise TrainingError(
            f"Round {iteration + 1}: every sample hit max_new_tokens ({config.max_new_tokens}) "
            "before ending, and RAFT never fine-tunes on a truncated sample. Raise "
            "max_new_tokens, sample more per prompt, or set keep_truncated."
        )
    metrics = {
        "mean_reward_all": sum(scores) / len(scores),
        "mean_reward_kept": sum(s["reward"] for s in kept) / len(kept),
        "mean_tokens": sum(s["num_tokens"] for s in samples) / len(samples),
        "finished_fraction": sum(s["finished"] for s in samples) / len(samples),
    }
    return [{"prompt": s["prompt"], "completion": s["completion"]} for s in kept], metrics


def sampling_engine(config: RAFTConfig, device: str) -> str:
    """``"vllm"`` or ``"generate"`` for this job's sampling; a fall-back is printed."""
    engine = fast_generation.choose_engine(config.engine, device)
    if engine == "vllm" and distributed.world_size() > 1:
        print(
            f"Sampling with transformers' generate: vLLM samples in one process and this job "
            f"has {distributed.world_size()}.",
            flush=True,
        )
        return "generate"
    return engine


def sample_in_child(
    settings: GenerateConfig, prompts: list[dict], *, engine: str, device: str, dtype: str
) -> list[dict]:
    """The round's samples from ``python -m trainer.algorithms.generate`` in a child process
    (its GPU memory is freed when it exits). Its output lines go to this job's log."""
    from dataclasses import asdict

    with tempfile.TemporaryDirectory(prefix="raft-sampling-") as tmp:
        job = Path(tmp) / "generate.json"
        payload = {**asdict(settings), "engine": engine, "device": device, "dtype": dtype}
        payload.update(rows=prompts, output_dir=str(Path(tmp) / "out"))
        job.write_text(json.dumps(payload), encoding="utf-8")
        command = [sys.executable, "-m", "trainer.algorithms.generate", "--config", str(job)]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in done.stdout.splitlines():
            if not line.startswith("{"):  # progress lines are the child's, not this job's
                print(line, flush=True)
        if done.returncode != 0:
            raise TrainingError(
                f"Sampling in a child process ({engine}) failed with exit code "
                f"{done.returncode}: {done.stdout.strip().splitlines()[-1:] or ['no output']}"
            )
        path = Path(tmp) / "out" / COMPLETIONS_FILENAME
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


def frozen_dtype(config: RAFTConfig) -> str:
    """Weights dtype of the models that only sample and score."""
    return str(compute_dtype(config.dtype, resolve_device(config.device))).removeprefix("torch.")


def sft_config(config: RAFTConfig, policy_path: str, iteration: int) -> sft.SFTConfig:
    """The fine-tuning step: with use_lora it trains an adapter (the first round a fresh one,
    later rounds the previous round's, which ``policy_path`` then holds)."""
    import torch

    dtype = compute_dtype(config.dtype, resolve_device(config.device))
    # fp16: samples and scores in float16, fine-tunes in float32 (see the module docstring).
    dtype = "bf16" if dtype == torch.bfloat16 else "fp32"
    return sft.SFTConfig(
        model_name_or_path=policy_path,
        learning_rate=config.learning_rate,
        num_epochs=config.sft_epochs,
        batch_size=config.sft_batch_size,
        max_length=config.max_length,
        save_steps=0,
        device="cpu" if resolve_device(config.device) == "cpu" else "auto",
        dtype=dtype,
        seed=config.seed + iteration,
        **{name: getattr(config, name) for name in SCALE_FIELD_NAMES},
    )


def train(
    config: RAFTConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Run RAFT rounds on prompt rows; returns the last round's metrics."""
    if not config.reward_model_path:
        raise TrainingError("RAFT needs reward_model_path: a trained reward model.")
    if not rows:
        raise TrainingError("RAFT needs at least one prompt row.")
    check_scale(config, resolve_device(config.device))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    done = finished_iterations(output_dir) if config.resume_from_checkpoint else []
    policy = str(done[-1]) if done else config.model_name_or_path
    # Only the newest iteration directory is kept, so the count of them is not the count of
    # finished rounds: the newest one's number is.
    start = iteration_number(done[-1]) + 1 if done else 0
    scorer = RewardScorer(
        config.reward_model_path,
        device=distributed.setup(resolve_device(config.device)),
        dtype=frozen_dtype(config),
        batch_size=config.reward_batch_size,
    )
    metrics: dict = {"start_step": start, "stopped": False}
    log = SampleLog(progress, config.iterations)  # samples for the job page
    for iteration in range(start, config.iterations):
        kept, round_metrics = sample_round(
            config, policy, rows, scorer, iteration, functools.partial(log.add, iteration + 1)
        )
        target = output_dir / f"{ITERATION_PREFIX}{iteration}"
        tuned = sft.train(
            sft_config(config, policy, iteration), kept, target, should_stop=should_stop
        )
        metrics.update(round_metrics, sft_loss=tuned["train_loss"], step=iteration + 1)
        metrics["processes"] = distributed.world_size()  # that sampled and fine-tuned
        report(
            progress,
            iteration + 1,
            config.iterations,
            {k: v for k, v in metrics.items() if k not in ("stopped", "step")},
            samples=log.pop(),
        )
        distributed.barrier()  # the SFT step's files are written before anyone reads them
        if tuned["stopped"]:
            # An interrupted round is redone on resume; the last finished policy is the output.
            if distributed.is_main():
                shutil.rmtree(target, ignore_errors=True)
            metrics.update(stopped=True, step=iteration)
            break
        if distributed.is_main():
            (target / ROUND_FILENAME).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            _drop_previous(policy, output_dir)
        distributed.barrier()
        policy = str(target)
        if stop_requested(should_stop):
            # The round finished: keep it, so a resume starts with the next one.
            metrics["stopped"] = iteration + 1 < config.iterations
            break
    if distributed.is_main():
        _save_final(policy, output_dir, config)
    distributed.barrier()
    return metrics


def _drop_previous(policy: str, output_dir: Path) -> None:
    """Earlier rounds' weights are not needed once the next round is saved."""
    path = Path(policy)
    if path.parent == output_dir and path.name.startswith(ITERATION_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def _save_final(policy: str, output_dir: Path, config: RAFTConfig) -> None:
    model, tokenizer = load_policy(policy)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    save_config(config, output_dir, "raft")


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, RAFTConfig, argv, description="RAFT: reward-ranked fine-tuning.")


if __name__ == "__main__":
    main()
