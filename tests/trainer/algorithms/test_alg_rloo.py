"""RLOO: a thin wrapper over TRL's RLOOTrainer with our reward model as the reward."""

import json
import math

import pytest

from tests.trainer.algorithms.helpers import chat_prompts, marker_rows, params_changed
from trainer.algorithms.common import CONFIG_FILENAME, TrainingError
from trainer.algorithms.reward_scoring import RewardScorer, reward_text
from trainer.algorithms.rloo import ModelReward, RLOOConfig, completion_text
from trainer.algorithms.rloo import train as train_rloo


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
    return RLOOConfig(**{**settings, **overrides})


def prompt_rows(n):
    return [{"prompt": row["prompt"], "other": "ignored"} for row in marker_rows(n)]


def test_rloo_trains_reports_and_changes_the_weights(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    config = tiny(tiny_model_dir, tiny_reward[0])

    metrics = train_rloo(config, prompt_rows(8), tmp_path, progress=progress)

    assert [step for step, _, m in progress.calls if "loss" in m] == [1, 2]
    assert progress.values("reward") and all(map(math.isfinite, progress.values("reward")))
    assert progress.values("rewards/reward_model/mean")
    assert metrics["step"] == 2 and not metrics["stopped"]
    assert params_changed(tiny_model_dir, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILENAME).read_text())["algorithm"] == "rloo"


def test_rloo_stops_when_asked(tiny_model_dir, tiny_reward, tmp_path):
    config = tiny(tiny_model_dir, tiny_reward[0], max_steps=5, beta=0.0, save_steps=10)

    metrics = train_rloo(config, prompt_rows(8), tmp_path, should_stop=lambda: True)

    assert metrics["stopped"] and metrics["step"] == 1
    assert (tmp_path / "checkpoint-1").is_dir() and (tmp_path / "model.safetensors").is_file()


def test_the_reward_scores_prompt_and_completion_as_reward_training_did(tiny_reward):
    scorer = RewardScorer(tiny_reward[0], device="cpu")
    chat = chat_prompts(1)[0]
    prompts = ["say hi:", chat]
    completions = [" hi.", [{"role": "assistant", "content": " the cat."}]]

    rewards = ModelReward(scorer)(prompts=prompts, completions=completions, trainer_state=None)

    # Scored through reward_text (prompt + completion + eos), one prompt at a time.
    expected = [
        scorer([p], [completion_text(c)])[0] for p, c in zip(prompts, completions, strict=True)
    ]
    assert rewards == pytest.approx(expected, abs=1e-4)
    eos = scorer.tokenizer.eos_token
    assert reward_text(scorer.tokenizer, "say hi:", " hi.") == "say hi: hi." + eos
    # TRL's own plain-text path would score "say hi: hi." without eos: a different reading.
    plain = scorer.tokenizer("say hi: hi.", return_tensors="pt")
    assert scorer.model(**plain).logits[0, 0].item() != pytest.approx(rewards[0], abs=1e-4)
    assert completion_text([{"role": "assistant", "content": "x"}]) == "x"


def test_rloo_refuses_a_batch_that_splits_prompt_groups(tiny_model_dir, tmp_path):
    config = tiny(tiny_model_dir, "rm", num_generations=3)

    with pytest.raises(TrainingError, match="multiple of num_generations"):
        train_rloo(config, prompt_rows(4), tmp_path)
