"""PPO for language models on torch + transformers (TRL no longer ships one).

Each step samples one response per prompt from the policy, scores it with the reward model,
and builds per-token rewards ``r_t = -η·(log π - log π_ref)`` plus the whitened, clipped
reward-model score on the last token. GAE(γ, λ) turns them into advantages; then
``ppo_epochs`` passes over mini-batches optimise the clipped surrogate (minus an entropy
bonus) for the policy and a clipped value loss for the value model. η is fixed, or adaptive
(Ziegler et al., 2019) when ``target_kl`` is set. The maths lives in ppo_core.py.

Models. The policy and the frozen reference are causal LMs (the reference defaults to the
starting policy). The reward model is scored through reward_scoring, on text, exactly as in
reward training. The value model is a separate ``AutoModelForSequenceClassification(num_labels=1)``
used per token: its backbone's hidden states at every position go through its ``score`` head.
That is the reward model's own architecture, so it starts from the reward model's weights
(InstructGPT does the same) and saves and reloads as an ordinary checkpoint; a separate model
keeps value gradients out of the policy. ``device_map`` puts each of the four on its own device.

Rows are prompt rows: ``{"prompt": text or chat transcript, ...}``.

    python -m trainer.algorithms.ppo --config job.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import (
    CHECKPOINT_PREFIX,
    ProgressCallback,
    StopCheck,
    TrainingError,
    batch_for_step,
    find_resume_checkpoint,
    load_training_state,
    prune_checkpoints,
    report,
    resolve_device,
    run_main,
    save_config,
    save_training_state,
    set_seed,
    stop_requested,
)
from trainer.algorithms.samples import SampleLog

ROLES = ("policy", "reference", "reward", "value")


@dataclass
class PPOConfig:
    model_name_or_path: str = field(metadata={"help": "Policy to start from: model id or path."})
    reward_model_path: str = field(default="", metadata={"help": "Trained reward model."})
    ref_model_path: str | None = field(
        default=None, metadata={"help": "Frozen reference policy (default: model_name_or_path)."}
    )
    value_model_path: str | None = field(
        default=None, metadata={"help": "Value model initialisation (default: the reward model)."}
    )
    steps: int = field(default=100, metadata={"help": "PPO steps (one rollout batch each)."})
    batch_size: int = field(default=16, metadata={"help": "Prompts (and responses) per rollout."})
    mini_batch_size: int = field(default=4, metadata={"help": "Responses per gradient step."})
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each rollout batch."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Policy learning rate (AdamW)."})
    value_learning_rate: float = field(
        default=1e-5, metadata={"help": "Value model learning rate."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Length limit of a response."})
    max_prompt_length: int = field(default=512, metadata={"help": "Prompt token limit."})
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature; log-probs use the same one."}
    )
    kl_coef: float = field(
        default=0.05, metadata={"help": "η: weight of the per-token KL penalty."}
    )
    target_kl: float | None = field(
        default=None, metadata={"help": "Adapt η so the KL per response tracks this (None: fixed)."}
    )
    kl_horizon: int = field(default=10000, metadata={"help": "Adaptive-KL horizon in responses."})
    gamma: float = field(default=1.0, metadata={"help": "GAE discount γ."})
    lam: float = field(default=0.95, metadata={"help": "GAE λ."})
    cliprange: float = field(default=0.2, metadata={"help": "Ratio clip ε of the surrogate."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Clip of the value update."})
    entropy_coef: float = field(default=0.0, metadata={"help": "Entropy bonus weight."})
    whiten_rewards: bool = field(
        default=True, metadata={"help": "Normalise scores with their running mean and std."}
    )
    reward_clip: float = field(default=5.0, metadata={"help": "Clip scores to ±this (0: off)."})
    missing_eos_penalty: float | None = field(
        default=None, metadata={"help": "Subtracted from the score of responses cut off unended."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    save_steps: int = field(default=50, metadata={"help": "Resumable checkpoint every N steps."})
    save_total_limit: int = field(default=1, metadata={"help": "Checkpoints kept in output_dir."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A checkpoint directory, or 'latest' in output_dir."}
    )
    device: str = field(default="auto", metadata={"help": "Device of any role not in device_map."})
    device_map: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Per-role devices, roles policy/reference/reward/value: {'reward': 'cuda:1'}."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed for sampling and shuffling."})


def role_devices(config: PPOConfig) -> dict[str, str]:
    unknown = set(config.device_map) - set(ROLES)
    if unknown:
        raise TrainingError(f"device_map has unknown roles {sorted(unknown)}; use {ROLES}.")
    return {role: resolve_device(config.device_map.get(role, config.device)) for role in ROLES}


@dataclass
class Models:
    policy: object
    reference: object
    value: object
    scorer: object
    tokenizer: object
    devices: dict


def load_models(config: PPOConfig, resume: Path | None) -> Models:
    from transformers import AutoModelForSequenceClassification

    from trainer.algorithms.generate import load_policy
    from trainer.algorithms.reward_scoring import RewardScorer

    if not config.reward_model_path:
        raise TrainingError("PPO needs reward_model_path: a trained reward model.")
    devices = role_devices(config)
    policy_path = resume / "policy" if resume else config.model_name_or_path
    policy, tokenizer = load_policy(policy_path, device=devices["policy"])
    reference, _ = load_policy(
        config.ref_model_path or config.model_name_or_path, device=devices["reference"]
    )
    reference.requires_grad_(False)
    value_path = resume / "value" if resume else config.value_model_path or config.reward_model_path
    value = AutoModelForSequenceClassification.from_pretrained(str(value_path), num_labels=1)
    if not hasattr(value, "score"):
        raise TrainingError(f"{type(value).__name__} has no 'score' head to read values from.")
    value.config.pad_token_id = tokenizer.pad_token_id
    scorer = RewardScorer(
        config.reward_model_path, device=devices["reward"], batch_size=config.batch_size
    )
    # Dropout would make the probability ratio differ from 1 before any update.
    for model in (policy, reference, value):
        model.eval()
    return Models(policy, reference, value.to(devices["value"]), scorer, tokenizer, devices)


def token_values(value_model, input_ids, attention_mask, response_length: int):
    """V(s_t) for each response token: the score head applied to every hidden state."""
    from trainer.algorithms.ppo_core import position_ids

    device = value_model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
    )
    values = value_model.score(hidden.last_hidden_state).squeeze(-1).float()
    return values[:, -response_length - 1 : -1]


def response_mask(response, models: Models):
    """1 for response tokens up to and including the first stop token, 0 after it."""
    import torch

    from trainer.algorithms.generate import stop_token_ids

    stops = torch.tensor(stop_token_ids(models.policy, models.tokenizer), device=response.device)
    is_stop = torch.isin(response, stops).long()
    return ((is_stop.cumsum(1) - is_stop) == 0).float(), is_stop.any(1)


def rollout(models: Models, prompts: list, config: PPOConfig, kl_coef: float, moments) -> dict:
    """Sample, score and turn the scores into advantages and returns (no gradients)."""
    import torch

    from trainer.algorithms import ppo_core as core
    from trainer.algorithms.generate import GenerateConfig, sample_tokens

    settings = GenerateConfig(
        model_name_or_path="",
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        max_prompt_length=config.max_prompt_length,
    )
    with torch.no_grad():
        prompt_ids, prompt_mask, response = sample_tokens(
            models.policy, models.tokenizer, prompts, settings
        )
        mask, finished = response_mask(response, models)
        input_ids = torch.cat([prompt_ids, response], 1)
        attention = torch.cat([prompt_mask, mask.long()], 1)
        length, dev = response.shape[1], models.devices["policy"]
        logits = core.response_logits(
            models.policy, input_ids, attention, length, config.temperature
        )
        logprobs = core.token_logprobs(logits, response)
        ref_logits = core.response_logits(
            models.reference,
            input_ids.to(models.reference.device),
            attention.to(models.reference.device),
            length,
            config.temperature,
        )
        ref_logprobs = core.token_logprobs(ref_logits, response.to(ref_logits.device)).to(dev)
        values = token_values(models.value, input_ids, attention, length).to(dev)
        entropy = core.masked_mean(core.entropy_from_logits(logits), mask)
    texts = models.tokenizer.batch_decode(response, skip_special_tokens=True)
    raw = torch.tensor(models.scorer(prompts, texts), device=dev)
    if config.missing_eos_penalty is not None:
        raw = torch.where(finished.to(dev), raw, raw - config.missing_eos_penalty)
    scores = shape_scores(raw, config, moments)
    rewards, kl = core.kl_penalised_rewards(scores, logprobs, ref_logprobs, mask, kl_coef)
    advantages, returns = core.gae(rewards, values, mask, config.gamma, config.lam)
    advantages = core.masked_whiten(advantages, mask) * mask
    stats = {
        "reward": raw.mean().item(),
        "kl": kl.sum(1).mean().item(),
        "entropy": entropy.item(),
        "response_length": mask.sum(1).mean().item(),
        "finished_fraction": finished.float().mean().item(),
    }
    return {
        "samples": (prompts, texts, raw.tolist()),
        "input_ids": input_ids,
        "attention_mask": attention,
        "response": response,
        "mask": mask,
        "logprobs": logprobs,
        "values": values,
        "advantages": advantages,
        "returns": returns,
        "stats": stats,
    }


def shape_scores(raw, config: PPOConfig, moments):
    scores = raw
    if config.whiten_rewards:
        moments.update(raw)
        scores = (raw - moments.mean) / moments.std
    if config.reward_clip > 0:
        scores = scores.clamp(-config.reward_clip, config.reward_clip)
    return scores


def ppo_update(
    models: Models, optimizers: tuple, batch: dict, config: PPOConfig, step: int
) -> dict:
    """``ppo_epochs`` passes of clipped-surrogate and value updates over mini-batches."""
    import torch

    from trainer.algorithms import ppo_core as core
    from trainer.algorithms.common import check_finite

    policy_opt, value_opt = optimizers
    length, n = batch["response"].shape[1], batch["response"].shape[0]
    sums = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
    updates = 0
    for _ in range(config.ppo_epochs):
        for idx in torch.randperm(n).split(config.mini_batch_size):
            mb = {k: v[idx.to(v.device)] for k, v in batch.items() if k not in ("stats", "samples")}
            logits = core.response_logits(
                models.policy, mb["input_ids"], mb["attention_mask"], length, config.temperature
            )
            logprobs = core.token_logprobs(logits, mb["response"])
            pg_loss, clip_fraction, approx_kl = core.policy_loss(
                logprobs, mb["logprobs"], mb["advantages"], mb["mask"], config.cliprange
            )
            entropy = core.masked_mean(core.entropy_from_logits(logits), mb["mask"])
            loss = pg_loss - config.entropy_coef * entropy
            check_finite(loss, step, "policy loss")
            _optimise(loss, models.policy, policy_opt, config.max_grad_norm)

            vdev = models.value.device
            values = token_values(models.value, mb["input_ids"], mb["attention_mask"], length)
            v_loss = core.value_loss(
                values,
                mb["values"].to(vdev),
                mb["returns"].to(vdev),
                mb["mask"].to(vdev),
                config.cliprange_value,
            )
            check_finite(v_loss, step, "value loss")
            _optimise(v_loss, models.value, value_opt, config.max_grad_norm)
            for key, value in (
                ("policy_loss", pg_loss),
                ("value_loss", v_loss),
                ("clip_fraction", clip_fraction),
                ("approx_kl", approx_kl),
            ):
                sums[key] += value.item()
            updates += 1
    return {key: total / max(updates, 1) for key, total in sums.items()}


def _optimise(loss, model, optimizer, max_grad_norm: float) -> None:
    import torch

    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def save_checkpoint(
    output_dir: Path,
    step: int,
    models: Models,
    optimizers: tuple,
    kl_ctl,
    moments,
    config: PPOConfig,
) -> None:
    checkpoint = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    models.policy.save_pretrained(checkpoint / "policy")
    models.tokenizer.save_pretrained(checkpoint / "policy")
    models.value.save_pretrained(checkpoint / "value")
    extra = {
        "value_optimizer": optimizers[1].state_dict(),
        "kl_coef": kl_ctl.value,
        "moments": moments.state_dict(),
    }
    save_training_state(checkpoint, step, optimizers[0], None, extra)
    save_config(config, checkpoint, "ppo")
    prune_checkpoints(output_dir, config.save_total_limit)


def train(
    config: PPOConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Optimise the policy against the reward model on prompt rows; returns final metrics."""
    import torch

    from trainer.algorithms.ppo_core import AdaptiveKLController, RunningMoments

    if not rows:
        raise TrainingError("PPO needs at least one prompt row.")
    set_seed(config.seed)
    output_dir = Path(output_dir)
    resume = find_resume_checkpoint(output_dir, config.resume_from_checkpoint)
    models = load_models(config, resume)
    optimizers = (
        torch.optim.AdamW(models.policy.parameters(), lr=config.learning_rate),
        torch.optim.AdamW(models.value.parameters(), lr=config.value_learning_rate),
    )
    kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
    moments, start = RunningMoments(), 0
    if resume is not None:
        state = load_training_state(resume)
        optimizers[0].load_state_dict(state["optimizer"])
        optimizers[1].load_state_dict(state["extra"]["value_optimizer"])
        kl_ctl.value = state["extra"]["kl_coef"]
        moments = RunningMoments(**state["extra"]["moments"])
        torch.set_rng_state(state["torch_rng"])
        start = state["step"]
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir, "ppo")
    metrics: dict = {"start_step": start, "stopped": False, "step": start}
    samples = SampleLog(progress, config.steps)
    for step in range(start, config.steps):
        prompts = [
            rows[i]["prompt"]
            for i in batch_for_step(len(rows), config.batch_size, step, config.seed)
        ]
        batch = rollout(models, prompts, config, kl_ctl.value, moments)
        samples.add(step + 1, *batch["samples"])
        update = ppo_update(models, optimizers, batch, config, step + 1)
        kl_ctl.update(batch["stats"]["kl"], len(prompts))
        metrics.update(batch["stats"], **update, kl_coef=kl_ctl.value, step=step + 1)
        report(
            progress,
            step + 1,
            config.steps,
            {k: v for k, v in metrics.items() if k not in ("start_step", "stopped", "step")},
            samples=samples.pop(),
        )
        metrics["stopped"] = stop_requested(should_stop)
        if metrics["stopped"] or (config.save_steps > 0 and (step + 1) % config.save_steps == 0):
            save_checkpoint(output_dir, step + 1, models, optimizers, kl_ctl, moments, config)
        if metrics["stopped"]:
            break
    models.policy.save_pretrained(output_dir)
    models.tokenizer.save_pretrained(output_dir)
    models.value.save_pretrained(output_dir / "value_model")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, PPOConfig, argv, description="PPO against a reward model.")


if __name__ == "__main__":
    main()
