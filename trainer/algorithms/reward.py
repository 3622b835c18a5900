"""Reward model training on torch + transformers, with ranking groups.

A reward model is ``AutoModelForSequenceClassification(num_labels=1)`` on any causal LM: the
score is read at the last non-pad token. It is trained with the ranking loss
``-log σ(r(x, y+) - r(x, y-) - margin)``. A row is either a comparison
``{"prompt", "chosen", "rejected", "margin"?}`` or a ranking ``{"prompt", "ranking": [best, ...]}``.
A ranking of K is one batch element: K forward passes give all K(K-1)/2 pairs, whose losses are
averaged so that a long ranking does not outweigh a single comparison (InstructGPT does this
to avoid overfitting on correlated pairs). Comparisons that share a ``group`` (the export's
``t<task id>``: the pairs of one ranked task) are put back together into one such element
(reward_data.py).

Training follows TRL's RewardTrainer where it matters for scores read later: dropout is off
(the model must give in training the score it gives when scoring), the weights stay float32
(``dtype="bf16"`` runs the forward passes under bfloat16 autocast; float16 is refused), and the
held-out rows are whole prompts, never a pair of a prompt whose other pairs are trained on.

The text the model sees is built by reward_scoring.reward_text, shared with
:func:`score_texts` (re-exported here) so training and scoring read the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import (
    CHECKPOINT_PREFIX,
    ProgressCallback,
    StopCheck,
    TrainingError,
    autocast,
    batch_for_step,
    check_finite,
    disable_dropout,
    find_resume_checkpoint,
    load_training_state,
    prune_checkpoints,
    report,
    resolve_device,
    run_main,
    save_config,
    save_training_state,
    set_seed,
    split_rows_by_prompt,
    stop_requested,
    training_autocast_dtype,
)
from trainer.algorithms.lora import ScaleFields, check_scale
from trainer.algorithms.reward_data import Group, rows_to_groups
from trainer.algorithms.reward_scoring import (
    RewardScorer,
    encode,
    load_reward_model,
    reward_text,
    score_texts,
)

__all__ = ["RewardConfig", "RewardScorer", "reward_text", "score_texts", "train"]


@dataclass
class RewardConfig(ScaleFields):
    model_name_or_path: str = field(
        metadata={"help": "Causal LM (or an earlier reward model) to start from: id or path."},
    )
    learning_rate: float = field(
        default=1e-5,
        metadata={"help": "Peak AdamW learning rate."},
    )
    num_epochs: float = field(
        default=1.0,
        metadata={"help": "Passes over the training rows (ignored when max_steps > 0)."},
    )
    max_steps: int = field(
        default=-1,
        metadata={"help": "Optimizer steps to run; -1 derives them from num_epochs."},
    )
    batch_size: int = field(
        default=8,
        metadata={"help": "Rows (comparisons or whole rankings) per optimizer step."},
    )
    eval_batch_size: int = field(
        default=16,
        metadata={"help": "Rows per forward pass during evaluation and scoring."},
    )
    max_length: int = field(
        default=512,
        metadata={
            "help": "Token limit per text; longer texts lose the start of the prompt, never "
            "the end of the completion."
        },
    )
    weight_decay: float = field(
        default=0.0,
        metadata={"help": "AdamW weight decay."},
    )
    warmup_steps: int = field(
        default=0,
        metadata={"help": "Linear warm-up steps before the linear decay to zero."},
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Gradient clipping norm; 0 disables clipping."},
    )
    lm_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of an imitation (next-token) loss on the preferred response; "
            "0 turns it off."
        },
    )
    val_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of the prompts whose rows are held out for validation when no "
            "val_rows are given."
        },
    )
    eval_steps: int = field(
        default=0,
        metadata={"help": "Evaluate every N steps (0: only at the end)."},
    )
    save_steps: int = field(
        default=100,
        metadata={"help": "Write a resumable checkpoint every N steps (0: never)."},
    )
    save_total_limit: int = field(
        default=1,
        metadata={"help": "How many checkpoints to keep in output_dir."},
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint directory, or 'latest' for the newest one in output_dir (starts "
            "fresh if there is none)."
        },
    )
    require_trained_head: bool = field(
        default=False,
        metadata={
            "help": "Refuse to start if model_name_or_path has no trained score head (i.e. it is "
            "not a reward model yet)."
        },
    )
    device: str = field(
        default="auto",
        metadata={"help": "'auto', 'cpu', 'cuda:0', ..."},
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Compute precision: auto (bf16 on a GPU that supports it, fp32 on CPU), fp32 "
            "or bf16 (float32 trained weights, bfloat16 autocast; with use_lora the frozen base "
            "is held in bfloat16). fp16 is refused: it would need loss scaling."
        },
    )
    seed: int = field(
        default=42,
        metadata={"help": "Seed for initialisation, shuffling and the validation split."},
    )
    ensemble_heads: int = field(
        default=1,
        metadata={
            "help": "Scalar reward heads on the one shared body (an ensemble at the cost of one "
            "model): the reward is their mean and their spread the model's uncertainty, which "
            "the loop's 'disagreement' routing asks humans about. 1: a plain reward model."
        },
    )
    ensemble_bootstrap: bool = field(
        default=True,
        metadata={
            "help": "With several heads, weight each head's loss on each row by its own "
            "Poisson(1) draw (an online bootstrap), so the heads learn from different samples "
            "of the labels and disagree where the labels are thin."
        },
    )

    def __post_init__(self) -> None:
        if self.ensemble_heads < 1:
            raise ValueError("ensemble_heads must be at least 1.")


# --- losses ---------------------------------------------------------------------------------


class ImitationHead:
    """Next-token logits for the preferred responses, sharing the reward model's backbone.

    A forward hook keeps the backbone's last hidden states from the reward forward pass, so
    the imitation loss costs one extra matmul, not a second forward. Tied embeddings reuse the
    input embedding matrix; otherwise the LM head is loaded from the causal LM checkpoint and
    trained alongside.
    """

    def __init__(self, model, model_path: str | Path, device: str):
        import torch
        from transformers import AutoModelForCausalLM

        self.model, self.hidden = model, None
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA
        getattr(inner, inner.base_model_prefix).register_forward_hook(self._capture)
        self.head: torch.nn.Module | None = None
        if not model.config.get_text_config().tie_word_embeddings:
            lm, info = AutoModelForCausalLM.from_pretrained(
                str(model_path), output_loading_info=True
            )
            if any("lm_head" in key for key in info.get("missing_keys", ())):
                raise TrainingError(
                    f"lm_loss_weight > 0 needs a causal LM with its LM head, and "
                    f"{model_path} has none (is it already a reward model?)."
                )
            self.head = lm.get_output_embeddings().to(device=device, dtype=model.dtype)
            del lm

    def _capture(self, module, args, output) -> None:
        self.hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state

    def parameters(self) -> list:
        return list(self.head.parameters()) if self.head is not None else []

    def loss(self, rows, input_ids, completion_lengths):
        import torch.nn.functional as F

        hidden = self.hidden[rows]
        if self.head is not None:
            logits = self.head(hidden)
        else:
            logits = F.linear(hidden, self.model.get_input_embeddings().weight)
        ids = input_ids[rows]
        labels = ids.new_full(ids.shape, -100)
        length = ids.shape[1]
        for i, n in enumerate(completion_lengths):
            # A completion longer than the window keeps only what survived left truncation.
            start = max(0, length - n)
            labels[i, start:] = ids[i, start:]
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
        )


def ranking_loss(rewards, groups: list[Group], offsets: list[int], head_weights=None):
    """Mean over groups (and heads) of the mean pair loss, weighted by each group's ``weight``
    (all 1: the plain mean); returns (loss, correct pairs, pairs).

    ``rewards`` is one score per completion, or ``(completions, heads)`` for an ensemble, whose
    heads each get the loss; ``head_weights`` ``(groups, heads)`` weights each group's loss per
    head (the bootstrap). A pair is correct when the heads' mean margin is positive."""
    import torch
    import torch.nn.functional as F

    better, worse, margin, weight, owner = [], [], [], [], []
    for g, (group, offset) in enumerate(zip(groups, offsets, strict=True)):
        for i, j, m in group.pairs:
            better.append(offset + i)
            worse.append(offset + j)
            margin.append(m)
            weight.append(group.weight / len(group.pairs))
            owner.append(g)
    if rewards.dim() == 1:
        rewards = rewards[:, None]
    diff = rewards[better] - rewards[worse]
    margins = torch.tensor(margin, device=rewards.device, dtype=rewards.dtype)
    weights = torch.tensor(weight, device=rewards.device, dtype=rewards.dtype)
    per_pair = -F.logsigmoid(diff - margins[:, None]) * weights[:, None]
    if head_weights is not None:
        per_pair = per_pair * head_weights.to(per_pair)[owner]
    loss = per_pair.sum() / (sum(group.weight for group in groups) * rewards.shape[1])
    return loss, int((diff.mean(dim=1) > 0).sum()), len(better)


def bootstrap_weights(config: RewardConfig, groups: int, step: int):
    """Each head's Poisson(1) weight on each group of this step's batch (None: no bootstrap).
    Seeded by (seed, step), so a resumed job draws what it would have drawn."""
    import torch

    if config.ensemble_heads < 2 or not config.ensemble_bootstrap:
        return None
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    return torch.poisson(torch.ones(groups, config.ensemble_heads), generator=generator)


def forward_groups(
    model,
    tokenizer,
    groups: list[Group],
    config: RewardConfig,
    device: str,
    imitation: ImitationHead | None = None,
    head_weights=None,
) -> dict:
    """One forward pass over every completion of every group in the batch."""
    prompts, completions, offsets = [], [], []
    for group in groups:
        offsets.append(len(prompts))
        prompts += [group.prompt] * len(group.completions)
        completions += group.completions
    batch = encode(tokenizer, prompts, completions, config.max_length, device)
    with autocast(device, training_autocast_dtype(config.dtype, device, "A reward model")):
        rewards = model(**batch).logits.float()  # (completions, heads)
    loss, correct, pairs = ranking_loss(rewards, groups, offsets, head_weights)
    out = {"loss": loss, "ranking_loss": loss, "correct": correct, "pairs": pairs}
    if imitation is not None:
        best = [offset + group.best for group, offset in zip(groups, offsets, strict=True)]
        lengths = [
            len(
                tokenizer(
                    group.completions[group.best] + tokenizer.eos_token, add_special_tokens=False
                )["input_ids"]
            )
            for group in groups
        ]
        with autocast(device, training_autocast_dtype(config.dtype, device, "A reward model")):
            lm_loss = imitation.loss(best, batch["input_ids"], lengths)
        out["lm_loss"] = lm_loss
        out["loss"] = loss + config.lm_loss_weight * lm_loss
    return out


def evaluate(model, tokenizer, groups: list[Group], config: RewardConfig, device: str) -> dict:
    import torch

    if not groups:
        return {}
    model.eval()
    total, correct, pairs = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(groups), config.eval_batch_size):
            chunk = groups[i : i + config.eval_batch_size]
            out = forward_groups(model, tokenizer, chunk, config, device)
            total += float(out["ranking_loss"]) * len(chunk)
            correct, pairs = correct + out["correct"], pairs + out["pairs"]
    model.train()
    return {"val_loss": total / len(groups), "val_accuracy": correct / max(pairs, 1)}


def init_ensemble_heads(model, seed: int) -> None:
    """Draw each head of a new ensemble at the scale of a plain linear layer (std
    1/sqrt(hidden)) rather than the model's tiny initializer_range: a head's random part is its
    prior (Osband et al. 2018's randomized priors), kept in the directions no label trained, so
    the heads agree where the labels taught them and disagree where they did not."""
    import torch

    head = getattr(model, "score", None)
    if head is None or not hasattr(head, "weight"):
        return
    generator = torch.Generator().manual_seed(seed + 7)
    std = head.weight.shape[1] ** -0.5
    with torch.no_grad():
        weight = torch.randn(head.weight.shape, generator=generator) * std
        head.weight.copy_(weight.to(head.weight))


# --- training loop --------------------------------------------------------------------------


def build_optimizer(params: list, config: RewardConfig, total_steps: int):
    import torch

    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - config.warmup_steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def save_checkpoint(
    output_dir: Path,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    config: RewardConfig,
    imitation: ImitationHead | None,
) -> Path:
    checkpoint = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    head = imitation.head if imitation is not None else None
    head = head.state_dict() if head is not None else None
    save_training_state(checkpoint, step, optimizer, scheduler, {"lm_head": head})
    save_config(config, checkpoint, "reward")
    prune_checkpoints(output_dir, config.save_total_limit)
    return checkpoint


def train(
    config: RewardConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    val_rows: list[dict] | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Train a reward model on comparison/ranking rows; returns final metrics."""
    set_seed(config.seed)
    output_dir = Path(output_dir)
    device = resolve_device(config.device)
    autocast_dtype = training_autocast_dtype(config.dtype, device, "A reward model")  # no fp16
    check_scale(config, device)
    if val_rows is None:
        rows, val_rows = split_rows_by_prompt(list(rows), config.val_fraction, config.seed)
    train_groups, val_groups = rows_to_groups(rows), rows_to_groups(val_rows)
    if not train_groups:
        raise TrainingError("No training rows: a reward model needs at least one comparison.")
    resume = find_resume_checkpoint(output_dir, config.resume_from_checkpoint)
    model, tokenizer = load_reward_model(
        resume or config.model_name_or_path,
        device=device,
        # Full training: float32, the master weights the optimizer updates. LoRA: the frozen
        # base in the compute dtype; the adapter and score head are float32 (lora.py).
        dtype=str(autocast_dtype).removeprefix("torch.")
        if config.use_lora and autocast_dtype
        else "float32",
        require_trained_head=config.require_trained_head,
        config=config,
        trainable=True,
        num_labels=None if resume else config.ensemble_heads,
    )
    if model.config.num_labels != config.ensemble_heads:
        raise TrainingError(
            f"The checkpoint has {model.config.num_labels} reward head(s) and the config asks "
            f"for ensemble_heads={config.ensemble_heads}: set the same number."
        )
    if resume is None and config.ensemble_heads > 1:
        init_ensemble_heads(model, config.seed)
    disable_dropout(model)
    imitation = None
    if config.lm_loss_weight > 0:
        imitation = ImitationHead(model, config.model_name_or_path, device)
    per_epoch = math.ceil(len(train_groups) / config.batch_size)
    total = config.max_steps if config.max_steps > 0 else math.ceil(config.num_epochs * per_epoch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    params = trainable + (imitation.parameters() if imitation else [])
    optimizer, scheduler = build_optimizer(params, config, total)
    start = 0
    if resume is not None:
        state = load_training_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if imitation is not None and imitation.head is not None and state["extra"].get("lm_head"):
            imitation.head.load_state_dict(state["extra"]["lm_head"])
        start = state["step"]
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir, "reward")
    return _loop(
        model,
        tokenizer,
        imitation,
        optimizer,
        scheduler,
        train_groups,
        val_groups,
        config,
        output_dir,
        device,
        start,
        total,
        progress,
        should_stop,
    )


def _loop(
    model,
    tokenizer,
    imitation,
    optimizer,
    scheduler,
    train_groups,
    val_groups,
    config,
    output_dir,
    device,
    start,
    total,
    progress,
    should_stop,
) -> dict:
    import torch

    model.train()
    metrics: dict = {"start_step": start}
    stopped, done = False, start
    for step in range(start, total):
        batch = [
            train_groups[i]
            for i in batch_for_step(len(train_groups), config.batch_size, step, config.seed)
        ]
        heads = bootstrap_weights(config, len(batch), step)
        out = forward_groups(model, tokenizer, batch, config, device, imitation, heads)
        loss = check_finite(out["loss"], step + 1)
        out["loss"].backward()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], config.max_grad_norm
            )
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        metrics.update(train_loss=loss, train_accuracy=out["correct"] / out["pairs"])
        if "lm_loss" in out:
            metrics["lm_loss"] = float(out["lm_loss"].detach())
        report(progress, step + 1, total, {**metrics, "learning_rate": scheduler.get_last_lr()[0]})
        stopped = stop_requested(should_stop)
        if config.eval_steps > 0 and (step + 1) % config.eval_steps == 0 and not stopped:
            evaluation = evaluate(model, tokenizer, val_groups, config, device)
            report(progress, step + 1, total, evaluation)
        if stopped or (config.save_steps > 0 and (step + 1) % config.save_steps == 0):
            save_checkpoint(
                output_dir, step + 1, model, tokenizer, optimizer, scheduler, config, imitation
            )
        if stopped:
            break
    metrics["step"] = done
    final = evaluate(model, tokenizer, val_groups, config, device)
    metrics.update(final, stopped=stopped)
    if final:
        report(progress, metrics["step"], total, final)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, RewardConfig, argv, description="Train a reward model.")


if __name__ == "__main__":
    main()
