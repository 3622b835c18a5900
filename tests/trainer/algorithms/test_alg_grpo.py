"""GRPO: TRL's GRPOTrainer through the same plumbing as RLOO, with our reward model."""

import json
import math

import pytest

from tests.trainer.algorithms.helpers import marker_rows, params_changed
from trainer.algorithms.common import CONFIG_FILENAME, TrainingError
from trainer.algorithms.grpo import GRPOConfig
from trainer.algorithms.grpo import train as train_grpo


def tiny(model_dir, reward_dir, **overrides):
    settings = {
        "model_name_or_path": model_dir,
        "reward_model_path": reward_dir,
        "num_generations": 2,
        "max_completion_length": 8,
        "learning_rate": 1e-3,
        "max_steps": 2,
        "batch_size": 4,
        "save_steps": 0,
        "device": "cpu",
        "seed": 0,
    }
    return GRPOConfig(**{**settings, **overrides})


def prompt_rows(n):
    return [{"prompt": row["prompt"]} for row in marker_rows(n)]


def test_grpo_trains_reports_and_changes_the_weights(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    config = tiny(tiny_model_dir, tiny_reward[0], loss_type="dr_grpo", beta=0.05)

    metrics = train_grpo(config, prompt_rows(8), tmp_path, progress=progress)

    assert [step for step, _, m in progress.calls if "loss" in m] == [1, 2]
    assert progress.values("reward") and all(map(math.isfinite, progress.values("reward")))
    assert progress.values("rewards/reward_model/mean")
    assert progress.values("kl")  # beta > 0: the KL to the starting policy is tracked
    assert metrics["step"] == 2 and not metrics["stopped"]
    assert params_changed(tiny_model_dir, tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILENAME).read_text())
    assert saved["algorithm"] == "grpo" and saved["config"]["loss_type"] == "dr_grpo"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"scale_rewards": "sometimes"}, "scale_rewards must be one of"),
        ({"num_generations": 3}, "multiple of num_generations"),
        ({"reward_model_path": ""}, "GRPO needs reward_model_path"),
    ],
)
def test_grpo_refuses_a_bad_config(tiny_model_dir, tmp_path, overrides, message):
    config = tiny(tiny_model_dir, "rm", **overrides)

    with pytest.raises(TrainingError, match=message):
        train_grpo(config, prompt_rows(4), tmp_path)
