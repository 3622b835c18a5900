import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.algorithms.helpers import MARKER, marker_rows, params_changed
from trainer.algorithms.common import CONFIG_FILENAME, NonFiniteLossError, TrainingError
from trainer.algorithms.reward import RewardConfig, RewardScorer, score_texts, train


def config_for(model_dir, **overrides) -> RewardConfig:
    settings = {
        "model_name_or_path": model_dir,
        "learning_rate": 1e-3,
        "max_steps": 3,
        "batch_size": 4,
        "save_steps": 0,
        "val_fraction": 0.2,
        "seed": 0,
    }
    return RewardConfig(**{**settings, **overrides})


def test_it_trains_reports_and_changes_the_weights(tiny_model_dir, tmp_path, progress):
    rows = marker_rows(20, chat=False)
    metrics = train(config_for(tiny_model_dir), rows, tmp_path, progress=progress)

    assert [step for step, _, m in progress.calls if "train_loss" in m] == [1, 2, 3]
    assert progress.values("train_loss") and all(map(math.isfinite, progress.values("train_loss")))
    assert {"val_loss", "val_accuracy"} <= set(metrics) and metrics["step"] == 3
    assert params_changed(tiny_model_dir, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILENAME).read_text())["config"]["max_steps"] == 3


def test_it_learns_a_marker_preference_on_held_out_rows(tiny_reward):
    reward_dir, metrics = tiny_reward
    assert metrics["val_accuracy"] >= 0.9

    rows = marker_rows(20, seed=99)
    prompts = [row["prompt"] for row in rows]
    chosen = score_texts(reward_dir, prompts, [row["chosen"] for row in rows], device="cpu")
    rejected = score_texts(reward_dir, prompts, [row["rejected"] for row in rows], device="cpu")
    assert sum(c > r for c, r in zip(chosen, rejected, strict=True)) >= 18


def test_it_trains_on_rankings_with_an_imitation_loss(tiny_model_dir, tmp_path, progress):
    rows = [{"prompt": "say:", "ranking": [f" a cat {MARKER}", " a dog", " a bird sees"]}] * 6
    config = config_for(tiny_model_dir, lm_loss_weight=0.5, val_fraction=0.0, max_steps=2)

    metrics = train(config, rows, tmp_path, progress=progress)

    assert progress.values("lm_loss") and all(map(math.isfinite, progress.values("lm_loss")))
    assert metrics["step"] == 2


def test_it_scores_chat_prompts(tiny_reward):
    scorer = RewardScorer(tiny_reward[0], device="cpu")
    chat = [{"role": "user", "content": "hello"}]
    assert len(scorer([chat, "plain"], [" a cat", " a dog"])) == 2


def test_it_raises_a_clear_error_on_a_nan_loss(tiny_model_dir, tmp_path):
    rows = [dict(row, margin=math.nan) for row in marker_rows(8)]
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 1"):
        train(config_for(tiny_model_dir, val_fraction=0.0), rows, tmp_path)


def test_it_refuses_a_model_without_a_trained_score_head(tiny_model_dir, tmp_path):
    config = config_for(tiny_model_dir, require_trained_head=True)
    with pytest.raises(TrainingError, match="no trained score head"):
        train(config, marker_rows(8), tmp_path)


def test_it_stops_when_asked_and_resumes_at_the_saved_step(tiny_model_dir, tmp_path, progress):
    config = config_for(tiny_model_dir, max_steps=4, save_steps=1, val_fraction=0.0)
    rows = marker_rows(16)

    first = train(
        config, rows, tmp_path, should_stop=lambda: len(progress.calls) >= 2, progress=progress
    )
    assert first["stopped"] and first["step"] == 2
    assert (tmp_path / "checkpoint-2").is_dir() and not (tmp_path / "checkpoint-1").exists()

    resumed_log = []
    resumed = train(
        RewardConfig(**{**vars(config), "resume_from_checkpoint": "latest"}),
        rows,
        tmp_path,
        progress=lambda step, total, m: resumed_log.append(step),
    )
    assert resumed["start_step"] == 2 and resumed["step"] == 4 and not resumed["stopped"]
    assert resumed_log[0] == 3


def test_it_runs_from_the_command_line(tiny_model_dir, tmp_path):
    payload = {
        "model_name_or_path": tiny_model_dir,
        "max_steps": 1,
        "batch_size": 2,
        "save_steps": 0,
        "rows": marker_rows(4),
        "output_dir": str(tmp_path / "out"),
    }
    (tmp_path / "job.json").write_text(json.dumps(payload))

    result = subprocess.run(
        [sys.executable, "-m", "trainer.algorithms.reward", "--config", str(tmp_path / "job.json")],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["final"]["step"] == 1
