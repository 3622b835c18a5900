"""DPO and SFT: thin wrappers over TRL, so the checks are about the wrapping."""

import json
import math
from types import SimpleNamespace

import pytest

from tests.trainer.algorithms.helpers import chat_prompts, marker_rows, params_changed
from trainer.algorithms.common import CONFIG_FILENAME, NonFiniteLossError, make_trainer_callback
from trainer.algorithms.dpo import DPOConfig, preference_pairs
from trainer.algorithms.dpo import train as train_dpo
from trainer.algorithms.sft import SFTConfig, demonstration_rows
from trainer.algorithms.sft import train as train_sft

TINY = {
    "learning_rate": 1e-3,
    "max_steps": 2,
    "batch_size": 4,
    "max_length": 64,
    "save_steps": 0,
    "seed": 0,
}


def test_dpo_trains_reports_and_changes_the_weights(tiny_model_dir, tmp_path, progress):
    config = DPOConfig(model_name_or_path=tiny_model_dir, val_fraction=0.25, **TINY)

    metrics = train_dpo(config, marker_rows(12), tmp_path, progress=progress)

    assert [step for step, _, m in progress.calls if "loss" in m] == [1, 2]
    assert all(math.isfinite(value) for value in progress.values("rewards/margins"))
    assert metrics["step"] == 2 and "eval_loss" in metrics and not metrics["stopped"]
    assert params_changed(tiny_model_dir, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILENAME).read_text())["algorithm"] == "dpo"


def test_dpo_expands_rankings_and_wraps_chat_responses():
    rows = [
        {"prompt": "p", "ranking": ["a", "b", "c"]},
        {"prompt": chat_prompts(1)[0], "chosen": "x", "rejected": "y", "margin": 1.0},
    ]

    pairs = preference_pairs(rows)

    assert [(p["chosen"], p["rejected"]) for p in pairs[:3]] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert (
        pairs[3]["chosen"] == [{"role": "assistant", "content": "x"}] and "margin" not in pairs[3]
    )


def test_dpo_stops_when_asked_and_resumes_at_the_saved_step(tiny_model_dir, tmp_path):
    config = DPOConfig(model_name_or_path=tiny_model_dir, **{**TINY, "max_steps": 3})
    rows = marker_rows(12)

    first = train_dpo(config, rows, tmp_path, should_stop=lambda: True)
    assert first["stopped"] and first["step"] == 1 and (tmp_path / "checkpoint-1").is_dir()

    steps = []
    config.resume_from_checkpoint = "latest"
    resumed = train_dpo(config, rows, tmp_path, progress=lambda s, t, m: steps.append(s))
    assert resumed["start_step"] == 1 and resumed["step"] == 3
    assert steps[0] == 2


def test_sft_trains_on_chat_prompts_with_text_completions(tiny_model_dir, tmp_path, progress):
    rows = [{"prompt": p, "completion": "the cat is calm."} for p in chat_prompts(8)]
    config = SFTConfig(model_name_or_path=tiny_model_dir, **TINY)

    metrics = train_sft(config, rows, tmp_path, progress=progress)

    assert progress.values("loss") and all(map(math.isfinite, progress.values("loss")))
    assert metrics["step"] == 2
    assert params_changed(tiny_model_dir, tmp_path)


def test_sft_refuses_rows_of_mixed_formats():
    with pytest.raises(ValueError, match="all rows must share one format"):
        demonstration_rows([{"prompt": "p", "completion": "c"}, {"text": "t"}])


def test_the_trainer_bridge_raises_on_a_nan_loss_and_requests_a_save_on_stop():
    bridge = make_trainer_callback(None, should_stop=lambda: True)
    state = SimpleNamespace(global_step=5, max_steps=10)
    control = SimpleNamespace(should_save=False, should_training_stop=False)

    with pytest.raises(NonFiniteLossError, match="at step 5"):
        bridge.on_log(None, state, control, logs={"loss": math.nan})
    bridge.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop and bridge.stopped
