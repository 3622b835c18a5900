"""PPO for language models on torch + transformers (TRL no longer ships one).

Each step samples one response per prompt from the policy, scores it with the reward model,
and builds per-token rewards ``r_t = -η·(log π - log π_ref)`` plus the whitened, clipped
reward-model score on the last token. GAE(γ, λ) turns them into advantages; then
``ppo_epochs`` passes over mini-batches optimise the clipped surrogate (minus an entropy
bonus) for the policy and a clipped value loss for the value model. η is fixed, or adaptive
(Ziegler et al., 2019) when ``target_kl`` is set. The maths lives in ppo_core.py.

Models. The policy and the frozen reference are causal LMs (the reference defaults to the
starting policy). The reward model is scored through reward_scoring, on text, exactly as in
reward training (a response cut off at max_new_tokens is scored without the end-of-text token,
and ``missing_eos_penalty`` is subtracted from its score). The value model is a separate
``AutoModelForSequenceClassification(num_labels=1)`` used per token: its backbone's hidden
states at every position go through its ``score`` head. That is the reward model's own
architecture, so it starts from the reward model's weights (InstructGPT does the same) when the
reward model reads the policy's token ids; a reward model with another vocabulary (allowed, as
scoring goes through text) cannot, and the value model then starts from the policy with a fresh
head. A separate model keeps value gradients out of the policy. ``device_map`` puts each of the
four on its own device.

Before the first step the reward model's scores on one batch of the starting policy's samples
give the mean and standard deviation that whiten the scores (Ziegler et al.'s reward
normalisation; OpenRLHF does the same), and a value model started from the reward model reads
its head through the same normalisation, so it starts out predicting the whitened score that
its targets are made of.

Precision. The policy and value model keep float32 weights (the optimizer's master copy);
``dtype`` bf16 runs their forward passes under bfloat16 autocast, and loads the frozen
reference and reward model in bfloat16. fp16 loads only the frozen models in float16: float16
training would need loss scaling, so the trained models then run in float32.

LoRA (``use_lora``): the policy is its base (frozen, in the compute dtype) plus a trainable
adapter, and the reference is that same model with the adapter switched off, so there is no
second copy of the policy's weights (an explicit ``ref_model_path`` is still loaded as its own
model). The value model is likewise a frozen backbone with an adapter and a float32 score head.
With a starting policy that is itself an adapter (the next round of a loop), the adapter goes on
training and the reference is the base under it, the chain's first model.

Optimisation (as in lm-human-preferences, TRL and OpenRLHF): AdamW (``weight_decay`` 0 by
default, not torch's 0.01), a linear warm-up then a linear decay of both learning rates to 0
over ``steps``, ``gradient_accumulation_steps`` micro-batches per mini-batch, and an early stop
of a batch's remaining updates once a mini-batch's approximate KL exceeds 1.5 × ``early_stop_kl``.

Rows are prompt rows: ``{"prompt": text or chat transcript, ...}``.

    python -m trainer.algorithms.ppo --config job.json
"""

from __future__ import annotations

import random
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
    restore_rng_state,
    run_main,
    save_config,
    save_training_state,
    set_seed,
    stop_requested,
)
from trainer.algorithms.lora import ScaleFields, check_scale
from trainer.algorithms.samples import SampleLog

ROLES = ("policy", "reference", "reward", "value")


@dataclass
class PPOConfig(ScaleFields):
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
        default=1.0,
        metadata={
            "help": "Subtracted from the score of responses cut off before they ended (None: off)."
        },
    )
    normalize_reward: bool = field(
        default=True,
        metadata={
            "help": "Before training, whiten scores with the mean and std of the reward model "
            "on one batch of the starting policy's samples (and read the value head likewise)."
        },
    )
    weight_decay: float = field(
        default=0.0, metadata={"help": "AdamW weight decay of the policy and value model."}
    )
    warmup_steps: int = field(
        default=0, metadata={"help": "Linear learning-rate warm-up, in PPO steps."}
    )
    lr_schedule: str = field(
        default="linear",
        metadata={"help": "'linear': decay both learning rates to 0 over steps; 'constant'."},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Micro-batches per mini-batch (mini_batch_size must divide by it)."},
    )
    early_stop_kl: float | None = field(
        default=None,
        metadata={
            "help": "Skip a batch's remaining updates once a mini-batch's approximate KL to "
            "the rollout policy exceeds 1.5 x this (None: never)."
        },
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
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on a GPU that supports it, else fp32), bf16, fp16 or fp32. The "
            "policy and value model keep float32 weights (bf16: autocast); the frozen "
            "reference and reward model are loaded in this dtype."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed for sampling and shuffling."})


def check_config(config: PPOConfig) -> None:
    if not config.reward_model_path:
        raise TrainingError("PPO needs reward_model_path: a trained reward model.")
    if config.temperature <= 0:
        raise TrainingError(
            "PPO needs temperature > 0: it samples from the policy and computes probability "
            "ratios of those samples; greedy decoding has no distribution to compute them in."
        )
    if config.mini_batch_size % config.gradient_accumulation_steps:
        raise TrainingError(
            f"mini_batch_size ({config.mini_batch_size}) must be a multiple of "
            f"gradient_accumulation_steps ({config.gradient_accumulation_steps})."
        )
    if config.lr_schedule not in ("linear", "constant"):
        raise TrainingError("lr_schedule must be 'linear' or 'constant'.")


# Where the four roles go when device is "auto", device_map is empty and the machine has
# several GPUs (docs/training.md, "Several GPUs"): the policy keeps a GPU of its own where it
# can (it trains and samples); the frozen models share; the value model trains beside the reward
# model, its usual twin. Under LoRA the reference is the policy (its adapter off).
PLACEMENT = {
    2: {"policy": 0, "reference": 0, "value": 1, "reward": 1},
    3: {"policy": 0, "reference": 1, "value": 2, "reward": 1},
    4: {"policy": 0, "reference": 1, "value": 2, "reward": 3},
}


def role_devices(config: PPOConfig, gpus: int | None = None) -> dict[str, str]:
    unknown = set(config.device_map) - set(ROLES)
    if unknown:
        raise TrainingError(f"device_map has unknown roles {sorted(unknown)}; use {ROLES}.")
    if gpus is None and config.device == "auto" and not config.device_map:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if config.device == "auto" and not config.device_map and gpus and gpus >= 2:
        placement = PLACEMENT[min(gpus, 4)]
        return {role: f"cuda:{placement[role]}" for role in ROLES}
    return {role: resolve_device(config.device_map.get(role, config.device)) for role in ROLES}


# Stored in the value model's config, so a saved value model reads its head the same way.
VALUE_NORM_KEY = "prefloop_value_normalisation"


@dataclass
class Models:
    policy: object
    reference: object
    value: object
    scorer: object
    tokenizer: object
    devices: dict
    # Autocast dtype of the trained models' forward passes (None: plain float32).
    autocast: object = None
    # Where the value model came from: "reward", "policy" (fresh head) or "checkpoint".
    value_source: str = "reward"

    def run(self, role: str):
        """Autocast context for a forward pass of the policy or value model."""
        from trainer.algorithms.common import autocast

        return autocast(self.devices[role], self.autocast)


def same_vocabulary(path: str | Path, tokenizer) -> bool:
    """Whether the model at ``path`` reads the same token ids as ``tokenizer``."""
    from transformers import AutoTokenizer

    try:
        other = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError):
        return False
    return other.get_vocab() == tokenizer.get_vocab()


def load_value_model(config: PPOConfig, tokenizer, resume: Path | None, frozen=None):
    """``(value model, source)``: the reward model's weights when it shares the policy's
    vocabulary, else the policy's backbone with a fresh head. Under LoRA the backbone is
    frozen in ``frozen`` and an adapter and the score head train."""
    import torch

    from trainer.algorithms.lora import load_sequence_classifier

    if resume is not None:
        path, source = resume / "value", "checkpoint"
    else:
        path, source = config.value_model_path or config.reward_model_path, "reward"
        if not same_vocabulary(path, tokenizer):
            # Fed the policy's token ids, a model of another vocabulary reads other words.
            path, source = config.model_name_or_path, "policy"
    dtype = frozen if config.use_lora and frozen is not None else torch.float32
    value, _ = load_sequence_classifier(
        path, dtype=dtype, device=role_devices(config)["value"], config=config, trainable=True
    )
    if not hasattr(unwrap(value), "score"):
        raise TrainingError(f"{type(value).__name__} has no 'score' head to read values from.")
    if source == "policy":
        for name, param in value.named_parameters():
            if "score" in name and param.requires_grad:
                torch.nn.init.zeros_(param)
        setattr(value.config, VALUE_NORM_KEY, None)
    value.config.pad_token_id = tokenizer.pad_token_id
    return value, source


def unwrap(model):
    """The transformers model under a PEFT wrapper (LoRA layers in place), or the model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def load_models(config: PPOConfig, resume: Path | None) -> Models:
    import torch

    from trainer.algorithms.common import compute_dtype, disable_dropout
    from trainer.algorithms.generate import load_policy, load_tokenizer
    from trainer.algorithms.lora import load_causal_lm
    from trainer.algorithms.reward_scoring import RewardScorer

    check_config(config)
    devices = role_devices(config)
    check_scale(config, devices["policy"])
    precision = compute_dtype(config.dtype, devices["policy"])
    frozen = str(precision).removeprefix("torch.")
    policy_path = resume / "policy" if resume else config.model_name_or_path
    policy = load_causal_lm(
        policy_path,
        dtype=precision if config.use_lora else torch.float32,
        device=devices["policy"],
        config=config,
        trainable=True,
        dropout=False,  # PPO turns dropout off: a zero-rate dropout would still copy inputs
    )
    tokenizer = load_tokenizer(policy_path)
    reference = None  # LoRA: the policy with its adapter switched off
    if not config.use_lora or config.ref_model_path:
        reference, _ = load_policy(
            config.ref_model_path or config.model_name_or_path,
            device=devices["reference"],
            dtype=frozen,
        )
        reference.requires_grad_(False)
    value, source = load_value_model(config, tokenizer, resume, precision)
    scorer = RewardScorer(
        config.reward_model_path,
        device=devices["reward"],
        dtype=frozen,
        batch_size=config.batch_size,
    )
    # Dropout would make the probability ratio differ from 1 before any update.
    for model in (m for m in (policy, reference, value) if m is not None):
        disable_dropout(model)
        model.eval()
    autocast = precision if precision == torch.bfloat16 else None
    return Models(
        policy, reference, value.to(devices["value"]), scorer, tokenizer, devices, autocast, source
    )


def token_values(value_model, input_ids, attention_mask, response_length: int):
    """V(s_t) for each response token: the score head applied to every hidden state."""
    from trainer.algorithms.ppo_core import position_ids

    inner = unwrap(value_model)
    device = inner.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    backbone = getattr(inner, inner.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
    )
    values = inner.score(hidden.last_hidden_state).squeeze(-1).float()
    norm = getattr(value_model.config, VALUE_NORM_KEY, None)
    if norm:
        values = (values - norm["mean"]) / norm["std"]
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

    with torch.no_grad():
        prompt_ids, prompt_mask, response = sample(models, prompts, config)
        mask, finished = response_mask(response, models)
        input_ids = torch.cat([prompt_ids, response], 1)
        attention = torch.cat([prompt_mask, mask.long()], 1)
        logprobs, ref_logprobs, values, entropy = forward_in_chunks(
            models, input_ids, attention, response, mask, config
        )
    texts = models.tokenizer.batch_decode(response, skip_special_tokens=True)
    dev = models.devices["policy"]
    raw = torch.tensor(models.scorer(prompts, texts, finished.tolist()), device=dev)
    penalised = core.penalise_unfinished(raw, finished.to(dev), config.missing_eos_penalty)
    scores = shape_scores(penalised, config, moments)
    rewards, kl = core.kl_penalised_rewards(scores, logprobs, ref_logprobs, mask, kl_coef)
    advantages, returns = core.gae(rewards, values, mask, config.gamma, config.lam)
    advantages = core.masked_whiten(advantages, mask) * mask
    stats = {
        # The reward model's own score, before any penalty, so runs compare on one scale.
        "reward": raw.mean().item(),
        "eos_penalty": (raw - penalised).mean().item(),
        "kl": kl.sum(1).mean().item(),
        "entropy": entropy,
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


def sample(models: Models, prompts: list, config: PPOConfig):
    """One response per prompt from the policy's own distribution at ``temperature``."""
    from trainer.algorithms.generate import GenerateConfig, sample_tokens

    settings = GenerateConfig(
        model_name_or_path="",
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        max_prompt_length=config.max_prompt_length,
    )
    with models.run("policy"):
        return sample_tokens(models.policy, models.tokenizer, prompts, settings)


def forward_in_chunks(models: Models, input_ids, attention, response, mask, config: PPOConfig):
    """Log-probs under the policy and the reference, values and mean entropy, computed
    ``mini_batch_size`` rows at a time: full-vocabulary float32 logits of a whole rollout batch
    would not fit next to a real model."""
    import torch

    from trainer.algorithms import ppo_core as core

    length, dev = response.shape[1], models.devices["policy"]
    ref_dev = models.devices["reference"]
    logprobs, ref_logprobs, values, entropy = [], [], [], 0.0
    for rows in torch.arange(len(response)).split(config.mini_batch_size):
        ids, att, resp = input_ids[rows], attention[rows], response[rows]
        with models.run("policy"):
            logits = core.response_logits(models.policy, ids, att, length, config.temperature)
        logprobs.append(core.token_logprobs(logits, resp))
        entropy += (core.entropy_from_logits(logits) * mask[rows]).sum().item()
        del logits
        ref_logits = reference_logits(models, ids.to(ref_dev), att.to(ref_dev), length, config)
        ref_logprobs.append(core.token_logprobs(ref_logits, resp.to(ref_dev)).to(dev))
        del ref_logits
        with models.run("value"):
            values.append(token_values(models.value, ids, att, length).to(dev))
    entropy /= max(mask.sum().item(), 1)
    return torch.cat(logprobs), torch.cat(ref_logprobs), torch.cat(values), entropy


def reference_logits(models: Models, ids, att, length: int, config: PPOConfig):
    """The reference's response logits: its own model, or (LoRA) the policy without its
    adapter, in the same autocast as the policy's frozen base."""
    from trainer.algorithms import ppo_core as core

    if models.reference is not None:
        return core.response_logits(models.reference, ids, att, length, config.temperature)
    with models.policy.disable_adapter(), models.run("policy"):
        return core.response_logits(models.policy, ids, att, length, config.temperature)


def shape_scores(raw, config: PPOConfig, moments):
    scores = raw
    if config.whiten_rewards:
        moments.update(raw)
        scores = (raw - moments.mean) / moments.std
    if config.reward_clip > 0:
        scores = scores.clamp(-config.reward_clip, config.reward_clip)
    return scores


def normalise_rewards(models: Models, prompts: list, config: PPOConfig):
    """Reward normalisation before RL (Ziegler et al. 2019; InstructGPT and OpenRLHF normalise
    the reward model too): the scores of one batch of the starting policy's samples give the
    mean and std that whiten every later score, and a value model started from the reward
    model reads its head through them, so its first predictions are on the scale of its
    targets. Returns the running moments to whiten with."""
    import torch

    from trainer.algorithms.ppo_core import RunningMoments

    with torch.no_grad():
        _, _, response = sample(models, prompts, config)
        _, finished = response_mask(response, models)
    texts = models.tokenizer.batch_decode(response, skip_special_tokens=True)
    scores = torch.tensor(models.scorer(prompts, texts, finished.tolist()), dtype=torch.float64)
    mean = scores.mean().item()
    var = scores.var(unbiased=False).item() if len(scores) > 1 else 1.0
    moments = RunningMoments(mean, var, float(len(scores)))
    if models.value_source == "reward":
        setattr(models.value.config, VALUE_NORM_KEY, {"mean": mean, "std": moments.std})
    return moments


NOT_TENSORS = ("stats", "samples")  # what a rollout batch carries beside its tensors


def ppo_update(
    models: Models, optimizers: tuple, batch: dict, config: PPOConfig, step: int
) -> dict:
    """``ppo_epochs`` passes of clipped-surrogate and value updates over mini-batches, each
    mini-batch in ``gradient_accumulation_steps`` micro-batches; stops early when a
    mini-batch's approximate KL passes 1.5 x ``early_stop_kl``."""
    import torch

    policy_opt, value_opt = optimizers
    if config.gradient_checkpointing:
        # Checkpointing acts in train mode only; dropout is off, so outputs do not change.
        models.policy.train()
        models.value.train()
    n = batch["response"].shape[0]
    micro = config.mini_batch_size // config.gradient_accumulation_steps
    sums = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "approx_kl": 0.0}
    updates, stopped_early = 0, False
    for _ in range(config.ppo_epochs):
        for idx in torch.randperm(n).split(config.mini_batch_size):
            found = dict.fromkeys(sums, 0.0)
            for part in idx.split(micro):
                weight = len(part) / len(idx)
                mb = {k: v[part.to(v.device)] for k, v in batch.items() if k not in NOT_TENSORS}
                for key, value in micro_step(models, mb, config, step, weight).items():
                    found[key] += value * weight
            for model, optimizer in ((models.policy, policy_opt), (models.value, value_opt)):
                _step(model, optimizer, config.max_grad_norm)
            for key in sums:
                sums[key] += found[key]
            updates += 1
            if config.early_stop_kl and found["approx_kl"] > 1.5 * config.early_stop_kl:
                stopped_early = True
                break
        if stopped_early:
            break
    models.policy.eval()
    models.value.eval()
    metrics = {key: total / max(updates, 1) for key, total in sums.items()}
    return {**metrics, "updates": float(updates), "early_stopped": float(stopped_early)}


def micro_step(models: Models, mb: dict, config: PPOConfig, step: int, weight: float) -> dict:
    """Backward of one micro-batch's policy and value losses, scaled by its share."""
    from trainer.algorithms import ppo_core as core
    from trainer.algorithms.common import check_finite

    length = mb["response"].shape[1]
    with models.run("policy"):
        logits = core.response_logits(
            models.policy, mb["input_ids"], mb["attention_mask"], length, config.temperature
        )
    logprobs = core.token_logprobs(logits, mb["response"])
    pg_loss, clip_fraction, approx_kl = core.policy_loss(
        logprobs, mb["logprobs"], mb["advantages"], mb["mask"], config.cliprange
    )
    loss = pg_loss
    if config.entropy_coef:
        loss = loss - config.entropy_coef * core.masked_mean(
            core.entropy_from_logits(logits), mb["mask"]
        )
    check_finite(loss, step, "policy loss")
    (loss * weight).backward()
    del logits

    vdev = unwrap(models.value).device
    with models.run("value"):
        values = token_values(models.value, mb["input_ids"], mb["attention_mask"], length)
    v_loss = core.value_loss(
        values,
        mb["values"].to(vdev),
        mb["returns"].to(vdev),
        mb["mask"].to(vdev),
        config.cliprange_value,
    )
    check_finite(v_loss, step, "value loss")
    (v_loss * weight).backward()
    return {
        "policy_loss": pg_loss.item(),
        "value_loss": v_loss.item(),
        "clip_fraction": clip_fraction.item(),
        "approx_kl": approx_kl.item(),
    }


def _step(model, optimizer, max_grad_norm: float) -> None:
    import torch

    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def build_optimizers(models: Models, config: PPOConfig):
    """AdamW for the policy and the value model, each with warm-up then linear decay."""
    import torch

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        if config.lr_schedule == "constant":
            return 1.0
        return max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))

    optimizers, schedulers = [], []
    for model, lr in (
        (models.policy, config.learning_rate),
        (models.value, config.value_learning_rate),
    ):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
        optimizers.append(optimizer)
        schedulers.append(torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
    return tuple(optimizers), tuple(schedulers)


def save_checkpoint(
    output_dir: Path,
    step: int,
    models: Models,
    optimizers: tuple,
    schedulers: tuple,
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
        "value_scheduler": schedulers[1].state_dict(),
        "kl_coef": kl_ctl.value,
        "moments": moments.state_dict(),
        # An adapter's directory keeps no model config, so the value head's reading goes here.
        "value_norm": getattr(models.value.config, VALUE_NORM_KEY, None),
    }
    save_training_state(checkpoint, step, optimizers[0], schedulers[0], extra)
    save_config(config, checkpoint, "ppo")
    prune_checkpoints(output_dir, config.save_total_limit)


def prompts_for_step(rows: list[dict], config: PPOConfig, step: int) -> list:
    return [
        rows[i]["prompt"] for i in batch_for_step(len(rows), config.batch_size, step, config.seed)
    ]


def train(
    config: PPOConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Optimise the policy against the reward model on prompt rows; returns final metrics."""
    from trainer.algorithms.ppo_core import AdaptiveKLController, RunningMoments

    if not rows:
        raise TrainingError("PPO needs at least one prompt row.")
    check_config(config)
    set_seed(config.seed)
    output_dir = Path(output_dir)
    resume = find_resume_checkpoint(output_dir, config.resume_from_checkpoint)
    models = load_models(config, resume)
    optimizers, schedulers = build_optimizers(models, config)
    kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
    moments, start = RunningMoments(), 0
    if resume is not None:
        state = load_training_state(resume)
        optimizers[0].load_state_dict(state["optimizer"])
        optimizers[1].load_state_dict(state["extra"]["value_optimizer"])
        if state.get("scheduler") is not None:
            schedulers[0].load_state_dict(state["scheduler"])
            schedulers[1].load_state_dict(state["extra"]["value_scheduler"])
        kl_ctl.value = state["extra"]["kl_coef"]
        moments = RunningMoments(**state["extra"]["moments"])
        if state["extra"].get("value_norm") is not None:
            setattr(models.value.config, VALUE_NORM_KEY, state["extra"]["value_norm"])
        restore_rng_state(state)
        start = state["step"]
    elif config.normalize_reward and config.whiten_rewards:
        # A full batch of its own (another draw), so step 1 is not whitened by itself alone.
        sample_rows = random.Random(config.seed - 1).sample(rows, min(config.batch_size, len(rows)))
        moments = normalise_rewards(models, [row["prompt"] for row in sample_rows], config)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir, "ppo")
    metrics: dict = {"start_step": start, "stopped": False, "step": start}
    samples = SampleLog(progress, config.steps)
    for step in range(start, config.steps):
        prompts = prompts_for_step(rows, config, step)
        batch = rollout(models, prompts, config, kl_ctl.value, moments)
        samples.add(step + 1, *batch["samples"])
        update = ppo_update(models, optimizers, batch, config, step + 1)
        learning_rate = schedulers[0].get_last_lr()[0]
        for scheduler in schedulers:
            scheduler.step()
        kl_ctl.update(batch["stats"]["kl"], len(prompts))
        metrics.update(batch["stats"], **update, kl_coef=kl_ctl.value, step=step + 1)
        metrics.update(
            learning_rate=learning_rate, value_from_policy=float(models.value_source == "policy")
        )
        report(
            progress,
            step + 1,
            config.steps,
            {k: v for k, v in metrics.items() if k not in ("start_step", "stopped", "step")},
            samples=samples.pop(),
        )
        metrics["stopped"] = stop_requested(should_stop)
        if metrics["stopped"] or (config.save_steps > 0 and (step + 1) % config.save_steps == 0):
            save_checkpoint(
                output_dir, step + 1, models, optimizers, schedulers, kl_ctl, moments, config
            )
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
