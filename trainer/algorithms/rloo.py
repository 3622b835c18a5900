"""RLOO (REINFORCE leave-one-out): online RL against our reward model (TRL's RLOOTrainer).

Each step samples ``num_generations`` (k) completions per prompt from the current policy, scores
them with the reward model and uses, as each completion's baseline, the mean reward of the
other k-1 completions of the same prompt; ``beta`` adds a KL penalty towards the starting policy.

The reward model sees exactly the text it was trained on: TRL would score ``prompt +
completion`` without the end-of-text token that reward training appends, so the reward is
computed by :class:`ModelReward`, which goes through :mod:`reward_scoring` (``reward_text``)
like PPO and RAFT do; a completion cut off at max_completion_length is scored without the
end-of-text token. ``mask_truncated_completions`` (TRL's) also leaves such completions out of
the loss.

Rows are prompt rows: ``{"prompt": text or chat transcript, ...}`` (other keys are ignored).
``batch_size`` counts completions, so ``batch_size * gradient_accumulation_steps`` must be a
multiple of ``num_generations``. Resuming (``resume_from_checkpoint``) works as for DPO/SFT.

    python -m trainer.algorithms.rloo --config job.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import (
    ProgressCallback,
    StopCheck,
    TrainingError,
    resolve_device,
    run_main,
    set_seed,
)
from trainer.algorithms.lora import ScaleFields
from trainer.algorithms.reward_scoring import RewardScorer
from trainer.algorithms.samples import SampleLog
from trainer.algorithms.trl_bridge import (
    DTYPE_HELP,
    policy_model,
    precision_arguments,
    run_trainer,
)


@dataclass
class OnlineConfig(ScaleFields):
    """What RLOO and GRPO share (TRL's online trainers against our reward model)."""

    model_name_or_path: str = field(
        metadata={"help": "Policy to start from: a Hugging Face model id or a local path."},
    )
    reward_model_path: str = field(
        default="", metadata={"help": "Trained reward model that scores the completions."}
    )
    num_generations: int = field(
        default=4,
        metadata={
            "help": "Completions sampled per prompt (k, at least 2): the group each one is "
            "compared with."
        },
    )
    max_completion_length: int = field(
        default=128, metadata={"help": "Token limit of a sampled completion."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1: off)."})
    beta: float = field(
        default=0.05,
        metadata={
            "help": "KL penalty towards the reference policy; 0 skips the reference model "
            "(less memory, faster)."
        },
    )
    ref_model_path: str | None = field(
        default=None,
        metadata={
            "help": "Frozen reference policy of the KL penalty (default: the starting "
            "policy, model_name_or_path)."
        },
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate (AdamW)."})
    num_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the prompts (ignored when max_steps > 0)."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to run; -1 derives them from num_epochs."}
    )
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Completions per device per forward pass (batch_size * "
            "gradient_accumulation_steps must be a multiple of num_generations)."
        },
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    reward_batch_size: int = field(default=16, metadata={"help": "Texts per reward forward."})
    reward_max_length: int = field(
        default=512, metadata={"help": "Token limit of a scored prompt + completion."}
    )
    lr_scheduler_type: str = field(
        default="linear", metadata={"help": "transformers scheduler name: linear, cosine, ..."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    save_steps: int = field(
        default=100, metadata={"help": "Write a resumable checkpoint every N steps (0: never)."}
    )
    save_total_limit: int = field(default=1, metadata={"help": "Checkpoints kept in output_dir."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint directory, or 'latest' for the newest one in output_dir "
            "(starts fresh if there is none)."
        },
    )
    device: str = field(
        default="auto",
        metadata={"help": "'auto' (GPU when present, through accelerate) or 'cpu'."},
    )
    dtype: str = field(default="auto", metadata={"help": DTYPE_HELP})
    mask_truncated_completions: bool = field(
        default=False,
        metadata={
            "help": "Leave completions cut off at max_completion_length out of the loss "
            "(TRL's option; DAPO recommends it)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed for initialisation and sampling."})


@dataclass
class RLOOConfig(OnlineConfig):
    normalize_advantages: bool = field(
        default=False,
        metadata={"help": "Whiten the leave-one-out advantages over the batch (TRL's option)."},
    )


class ModelReward:
    """TRL reward function: our reward model on ``reward_text(prompt, completion)``."""

    __name__ = "reward_model"  # the name TRL logs the reward under (rewards/reward_model/...)

    def __init__(self, scorer: RewardScorer, stop_ids: list[int] | None = None):
        self.scorer, self.stop_ids = scorer, set(stop_ids or ())
        self.on_scores = None  # (prompts, texts, scores) -> None: the job page's samples

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        ids = kwargs.get("completion_ids")
        finished = None
        if ids is not None and self.stop_ids:
            # TRL cuts a completion after its stop token; one without it hit the length limit.
            finished = [bool(row) and row[-1] in self.stop_ids for row in ids]
        texts = [completion_text(c) for c in completions]
        scores = self.scorer(list(prompts), texts, finished)
        if self.on_scores is not None:
            self.on_scores(list(prompts), texts, scores)
        return scores


def policy_stop_ids(path: str, tokenizer) -> list[int]:
    """The ids that end a completion: the tokenizer's eos and the generation config's."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:
        ids = None
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def completion_text(completion) -> str:
    """A completion as text: TRL hands chat completions over as a list of assistant messages."""
    if isinstance(completion, list):
        return "".join(message["content"] for message in completion)
    return completion


def prompt_rows(rows: list[dict]) -> list[dict]:
    prompts = []
    for index, row in enumerate(rows):
        if "prompt" not in row:
            raise ValueError(f"Row {index} needs a 'prompt' (text or chat transcript).")
        prompts.append({"prompt": row["prompt"]})
    return prompts


def training_arguments(config: OnlineConfig, output_dir: Path) -> dict:
    """TRL RLOOConfig keywords; CPU-friendly defaults as in trl_bridge."""
    return {
        "output_dir": str(output_dir),
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "num_generations": config.num_generations,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "beta": config.beta,
        "mask_truncated_completions": config.mask_truncated_completions,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_steps,
        "max_grad_norm": config.max_grad_norm,
        "save_strategy": "steps" if config.save_steps > 0 else "no",
        "save_steps": config.save_steps if config.save_steps > 0 else 500,
        "save_total_limit": config.save_total_limit,
        "use_cpu": resolve_device(config.device) == "cpu",
        **precision_arguments(config),
        "seed": config.seed,
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def check_config(config: OnlineConfig, name: str = "RLOO") -> None:
    if not config.reward_model_path:
        raise TrainingError(f"{name} needs reward_model_path: a trained reward model.")
    if config.num_generations < 2:
        raise TrainingError(f"{name} needs num_generations >= 2 (a group to compare with).")
    per_step = config.batch_size * config.gradient_accumulation_steps
    if per_step % config.num_generations:
        raise TrainingError(
            f"batch_size * gradient_accumulation_steps ({per_step}) must be a multiple of "
            f"num_generations ({config.num_generations}): each prompt's completions are "
            "compared with each other within one step."
        )


def train(
    config: RLOOConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Run RLOO on prompt rows; returns final metrics (see common for the contract)."""
    from trl import RLOOConfig as TrlRLOOConfig
    from trl import RLOOTrainer

    extra = {"normalize_advantages": config.normalize_advantages}
    return train_online(
        config, rows, output_dir, algorithm="rloo", trl_config=TrlRLOOConfig,
        trainer_class=RLOOTrainer, extra_arguments=extra, progress=progress,
        should_stop=should_stop,
    )  # fmt: skip


def train_online(
    config: OnlineConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    algorithm: str,
    trl_config: type,
    trainer_class: type,
    extra_arguments: dict,
    progress: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> dict:
    """A TRL online trainer (RLOOTrainer, GRPOTrainer) on prompt rows, rewarded by our model."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    name = algorithm.upper()
    check_config(config, name)
    if not rows:
        raise TrainingError(f"{name} needs at least one prompt row.")
    set_seed(config.seed)
    output_dir = Path(output_dir)
    train_set = Dataset.from_list(prompt_rows(rows))
    args = trl_config(**training_arguments(config, output_dir), **extra_arguments)
    tokenizer = AutoTokenizer.from_pretrained(config.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    scorer = RewardScorer(
        config.reward_model_path,
        # The Trainer's device for this process (its own GPU under accelerate launch).
        device=str(args.device),
        batch_size=config.reward_batch_size,
        max_length=config.reward_max_length,
    )
    reward = ModelReward(scorer, policy_stop_ids(config.model_name_or_path, tokenizer))
    model, _ = policy_model(config)

    def build(callback):
        trainer = trainer_class(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=train_set,
            processing_class=tokenizer,
            callbacks=[callback],
        )
        if config.ref_model_path and trainer.ref_model is not None:
            trainer.ref_model = reference_model(trainer, config.ref_model_path)
        log = SampleLog(progress, config.max_steps)

        def on_scores(*samples) -> None:  # the Trainer makes its state anew in train()
            log.total = trainer.state.max_steps or log.total
            log(trainer.state.global_step, *samples)

        reward.on_scores = on_scores
        return trainer

    return run_trainer(build, config, output_dir, algorithm, False, progress, should_stop)


def reference_model(trainer, path: str):
    """TRL's reference (built from the starting policy, and wrapped and cast as TRL wants it)
    with the weights of the policy at `path`: the same architecture, as in the loop, where the
    reference is an ancestor of the starting policy."""
    from transformers import AutoModelForCausalLM

    weights = AutoModelForCausalLM.from_pretrained(path).state_dict()
    trainer.accelerator.unwrap_model(trainer.ref_model).load_state_dict(weights)
    return trainer.ref_model


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, RLOOConfig, argv, description="RLOO: REINFORCE leave-one-out (TRL).")


if __name__ == "__main__":
    main()
