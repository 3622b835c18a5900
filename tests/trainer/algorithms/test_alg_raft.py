import json

import pytest

from tests.trainer.algorithms.helpers import chat_prompts, params_changed
from trainer.algorithms.common import CONFIG_FILENAME
from trainer.algorithms.raft import RAFTConfig, keep_best, train


def raft_config(tiny_model_dir, reward_dir, **overrides) -> RAFTConfig:
    settings = {
        "model_name_or_path": tiny_model_dir,
        "reward_model_path": reward_dir,
        "iterations": 1,
        "num_samples": 4,
        "max_new_tokens": 24,
        "learning_rate": 1e-3,
        "sft_batch_size": 8,
        "device": "cpu",
        "seed": 0,
    }
    return RAFTConfig(**{**settings, **overrides})


def test_keep_best_keeps_the_top_k_of_each_prompt():
    samples = [{"_row": 0, "completion": c} for c in "abc"] + [{"_row": 1, "completion": "d"}]
    kept = keep_best(samples, [0.1, 0.9, 0.5, -1.0], k=2)
    assert [(s["completion"], s["reward"]) for s in kept] == [("b", 0.9), ("c", 0.5), ("d", -1.0)]


def test_it_samples_scores_finetunes_and_reports(tiny_model_dir, tiny_reward, tmp_path, progress):
    rows = [{"prompt": p} for p in chat_prompts(8)]

    metrics = train(raft_config(tiny_model_dir, tiny_reward[0]), rows, tmp_path, progress=progress)

    ((step, total, reported),) = progress.calls
    assert (step, total) == (1, 1)
    assert reported["mean_reward_kept"] >= reported["mean_reward_all"]
    assert metrics["step"] == 1 and not metrics["stopped"]
    assert params_changed(tiny_model_dir, tmp_path)
    assert json.loads((tmp_path / CONFIG_FILENAME).read_text())["algorithm"] == "raft"


@pytest.mark.slow
def test_it_raises_the_mean_reward_over_iterations(tiny_model_dir, tiny_reward, tmp_path, progress):
    rows = [{"prompt": p} for p in chat_prompts(16)]

    # Best of 8 at 5e-4: the rise held for seeds 0-2 with transformers 5.25 (1.58-2.32). The
    # rise depends on the package versions: at 3e-4 it was 0.57-0.85 in an earlier set and
    # 0.27 for seed 0 in this one; best of 4 at 1e-3 did not rise at all with some.
    config = raft_config(
        tiny_model_dir, tiny_reward[0], iterations=4, num_samples=8, learning_rate=5e-4
    )
    train(config, rows, tmp_path, progress=progress)

    rewards = progress.values("mean_reward_all")
    assert len(rewards) == 4 and rewards[-1] > rewards[0] + 0.3, rewards


def test_it_stops_mid_round_and_resumes_that_round(tiny_model_dir, tiny_reward, tmp_path):
    rows = [{"prompt": p} for p in chat_prompts(4)]
    config = raft_config(tiny_model_dir, tiny_reward[0], iterations=2, num_samples=2)

    stopped = train(config, rows, tmp_path, should_stop=lambda: True)
    assert stopped["stopped"] and stopped["step"] == 0
    assert not list(tmp_path.glob("iteration-*")) and (tmp_path / "model.safetensors").is_file()

    config.resume_from_checkpoint = "latest"
    resumed = train(config, rows, tmp_path)
    assert resumed["start_step"] == 0 and resumed["step"] == 2 and not resumed["stopped"]


def test_it_resumes_after_the_last_finished_round_not_from_round_two(
    tiny_model_dir, tiny_reward, tmp_path
):
    rows = [{"prompt": p} for p in chat_prompts(2)]
    config = raft_config(tiny_model_dir, tiny_reward[0], iterations=3, num_samples=2)
    rounds: list[int] = []

    def record(step, total, metrics):
        rounds.append(step)

    stopped = train(
        config, rows, tmp_path / "run", progress=record, should_stop=lambda: 2 in rounds
    )
    assert stopped["stopped"] and stopped["step"] == 2 and rounds == [1, 2]
    assert [p.name for p in (tmp_path / "run").glob("iteration-*")] == ["iteration-1"]

    config.resume_from_checkpoint = "latest"
    resumed = train(config, rows, tmp_path / "run", progress=record)
    assert resumed["start_step"] == 2 and resumed["step"] == 3 and not resumed["stopped"]
    assert rounds == [1, 2, 3]  # three rounds in all, as in an uninterrupted run

    config.resume_from_checkpoint = None
    whole: list[int] = []
    train(config, rows, tmp_path / "whole", progress=lambda s, t, m: whole.append(s))
    assert whole == [1, 2, 3]
    assert not params_changed(tmp_path / "whole", tmp_path / "run")  # the same policy


def test_keep_best_never_keeps_a_truncated_sample():
    samples = [
        {"_row": 0, "completion": "cut off", "finished": False},
        {"_row": 0, "completion": "ended", "finished": True},
        {"_row": 1, "completion": "cut off too", "finished": False},
    ]
    kept = keep_best(samples, [2.0, 0.5, 9.0], k=1)
    assert [(s["completion"], s["reward"]) for s in kept] == [("ended", 0.5)]
    # Asked for, cut-off samples compete like the others.
    kept = keep_best(samples, [2.0, 0.5, 9.0], k=1, keep_truncated=True)
    expected = [("cut off", 2.0), ("cut off too", 9.0)]
    assert [(s["completion"], s["reward"]) for s in kept] == expected


def test_it_scores_truncated_samples_as_truncated(
    tiny_model_dir, tiny_reward, tmp_path, monkeypatch
):
    from trainer.algorithms import raft

    calls = []
    real = raft.RewardScorer.__call__

    def spy(self, prompts, completions, finished=None):
        calls.append(finished)
        return real(self, prompts, completions, finished)

    monkeypatch.setattr(raft.RewardScorer, "__call__", spy)
    rows = [{"prompt": p} for p in chat_prompts(4)]

    metrics = train(raft_config(tiny_model_dir, tiny_reward[0], max_new_tokens=12), rows, tmp_path)

    (finished,) = calls
    assert finished is not None and len(finished) == 16
    assert metrics["finished_fraction"] == sum(finished) / 16


def test_the_dtype_sets_sampling_precision_and_bf16_autocast_for_the_sft_step():
    from trainer.algorithms.raft import frozen_dtype, sft_config

    cpu_auto = RAFTConfig(model_name_or_path="m", device="cpu")
    assert frozen_dtype(cpu_auto) == "float32" and sft_config(cpu_auto, "m", 0).dtype == "fp32"

    bf16 = RAFTConfig(model_name_or_path="m", device="cpu", dtype="bf16")
    assert frozen_dtype(bf16) == "bfloat16" and sft_config(bf16, "m", 0).dtype == "bf16"

    fp16 = RAFTConfig(model_name_or_path="m", device="cpu", dtype="fp16")
    # Sampling and scoring in float16; fine-tuning in float32 (no loss scaling here).
    assert frozen_dtype(fp16) == "float16" and sft_config(fp16, "m", 0).dtype == "fp32"


def test_sampling_in_a_child_process_gives_the_same_samples_as_in_process(tiny_model_dir):
    """The child-process path vLLM sampling takes (here with generate, no GPU): same rows,
    same texts, row keys kept."""
    from trainer.algorithms.generate import GenerateConfig, generate_completions, load_policy
    from trainer.algorithms.raft import sample_in_child

    settings = GenerateConfig(
        model_name_or_path=tiny_model_dir, num_samples=2, max_new_tokens=8, seed=3, device="cpu"
    )
    prompts = [{"prompt": p, "_row": i} for i, p in enumerate(chat_prompts(3))]
    from trainer.algorithms.common import set_seed

    set_seed(settings.seed)
    model, tokenizer = load_policy(tiny_model_dir, device="cpu", dtype="float32")
    here = generate_completions(model, tokenizer, prompts, settings)

    there = sample_in_child(settings, prompts, engine="generate", device="cpu", dtype="float32")

    assert [(s["_row"], s["completion"]) for s in there] == [
        (s["_row"], s["completion"]) for s in here
    ]


def test_a_failed_sampling_child_is_a_clear_error(tmp_path):
    from trainer.algorithms.common import TrainingError
    from trainer.algorithms.generate import GenerateConfig
    from trainer.algorithms.raft import sample_in_child

    settings = GenerateConfig(model_name_or_path=str(tmp_path / "no-model"), device="cpu")
    with pytest.raises(TrainingError, match="Sampling in a child process \\(generate\\) failed"):
        sample_in_child(settings, [{"prompt": "hi"}], engine="generate", device="cpu", dtype="fp32")


def test_vllm_asked_for_on_cpu_falls_back_to_generate_and_says_so(
    tiny_model_dir, tiny_reward, tmp_path, capsys
):
    rows = [{"prompt": p} for p in chat_prompts(4)]
    config = raft_config(tiny_model_dir, tiny_reward[0], engine="vllm", num_samples=2)

    train(config, rows, tmp_path)

    assert "WARNING: Generating with transformers' generate" in capsys.readouterr().out
