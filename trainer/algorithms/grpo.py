"""GRPO (Group Relative Policy Optimization): online RL against our reward model (TRL's
GRPOTrainer).

Like RLOO (rloo.py, which this shares its plumbing with), each step samples
``num_generations`` completions per prompt and scores them with the reward model; GRPO's
advantage is each reward minus its group's mean, divided by the group's standard deviation
(``scale_rewards``), and the update is PPO's clipped surrogate (``epsilon``) without a value
model. ``beta`` > 0 adds a KL penalty towards the starting policy (TRL's default is 0: no
reference model in memory). The reward model scores the text it was trained on (see rloo.py).

Rows are prompt rows: ``{"prompt": text or chat transcript, ...}``; ``batch_size`` counts
completions, so ``batch_size * gradient_accumulation_steps`` must be a multiple of
``num_generations``.

    python -m trainer.algorithms.grpo --config job.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import ProgressCallback, StopCheck, TrainingError, run_main
from trainer.algorithms.rloo import OnlineConfig, train_online

LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")
SCALE_REWARDS = ("group", "batch", "none")


@dataclass
class GRPOConfig(OnlineConfig):
    beta: float = field(
        default=0.0,
        metadata={
            "help": "KL penalty towards the starting policy; 0 (TRL's default) skips the "
            "reference model (less memory, faster)."
        },
    )
    epsilon: float = field(
        default=0.2, metadata={"help": "Clipping range of the probability ratio."}
    )
    loss_type: str = field(
        default="dapo",
        metadata={
            "help": "How token losses are averaged: dapo (over all tokens of the batch), grpo "
            "(per sequence, length-biased), dr_grpo (by a constant), bnpo."
        },
    )
    scale_rewards: str = field(
        default="group",
        metadata={
            "help": "Divide advantages by the reward std of the group, of the batch, or none "
            "(Dr. GRPO)."
        },
    )


def train(
    config: GRPOConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Run GRPO on prompt rows; returns final metrics (see common for the contract)."""
    from trl import GRPOConfig as TrlGRPOConfig
    from trl import GRPOTrainer

    if config.loss_type not in LOSS_TYPES:
        raise TrainingError(f"loss_type must be one of {', '.join(LOSS_TYPES)}.")
    if config.scale_rewards not in SCALE_REWARDS:
        raise TrainingError(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}.")
    extra = {
        "epsilon": config.epsilon,
        "loss_type": config.loss_type,
        "scale_rewards": config.scale_rewards,
    }
    return train_online(
        config, rows, output_dir, algorithm="grpo", trl_config=TrlGRPOConfig,
        trainer_class=GRPOTrainer, extra_arguments=extra, progress=progress,
        should_stop=should_stop,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    return run_main(
        train, GRPOConfig, argv, description="GRPO: group-relative policy optimization (TRL)."
    )


if __name__ == "__main__":
    main()
