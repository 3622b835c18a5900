"""LoRA adapters (trainer/algorithms/lora.py) through reward, DPO, PPO and generation, on the
tiny models on CPU: only the adapter (and head) train, the base files are untouched, an adapter
generates and starts the next round unmerged, and each kind still raises its objective."""

import hashlib
import json
import math
from pathlib import Path

import pytest

from tests.trainer.algorithms.helpers import chat_prompts, marker_rows
from trainer.algorithms.common import TrainingError
from trainer.algorithms.lora import adapter_base, is_adapter, merge_adapter

LORA = {"use_lora": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


def file_hashes(directory) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in Path(directory).iterdir()
        if p.is_file()
    }


def reward_config(base, **overrides):
    from trainer.algorithms.reward import RewardConfig

    settings = dict(
        model_name_or_path=str(base), learning_rate=3e-3, max_steps=30, batch_size=8,
        save_steps=0, seed=0, device="cpu", **LORA,
    )  # fmt: skip
    return RewardConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def lora_reward(tiny_model_dir, tmp_path_factory):
    """(adapter dir, metrics, base file hashes before training) of a LoRA reward model."""
    from trainer.algorithms.reward import train

    before = file_hashes(tiny_model_dir)
    out = tmp_path_factory.mktemp("lora-reward") / "rm"
    metrics = train(
        reward_config(tiny_model_dir), marker_rows(160, seed=1), out,
        val_rows=marker_rows(40, seed=2),
    )  # fmt: skip
    return out, metrics, before


def test_a_lora_reward_job_trains_only_the_adapter_and_head_and_leaves_the_base(
    tiny_model_dir, lora_reward
):
    import torch

    from trainer.algorithms.reward_scoring import load_reward_model

    out, metrics, before = lora_reward
    assert file_hashes(tiny_model_dir) == before  # the base's files, byte for byte
    assert is_adapter(out) and not (out / "model.safetensors").exists()
    assert adapter_base(out) == tiny_model_dir
    # It learned the preference (as the full reward model does, conftest's tiny_reward).
    assert metrics["val_accuracy"] >= 0.9, metrics

    trained, _ = load_reward_model(out)
    base, _ = load_reward_model(tiny_model_dir)
    base_weights = dict(base.named_parameters())
    changed, same = [], []
    for name, param in trained.get_base_model().named_parameters():
        if "lora_" in name:
            if "lora_B" in name:  # initialised to zero: any change is training
                changed.append(bool(param.abs().sum() > 0))
            continue
        if "score" in name:
            # The plain LM has no head: each load draws a new one; the trained one is saved
            # with the adapter (and scores well: the next test).
            continue
        key = name.replace(".base_layer", "").replace(".original_module", "")
        same.append(torch.equal(param, base_weights[key]))
    assert changed and all(changed)
    assert same and all(same)


def test_a_lora_reward_model_scores_like_the_trained_one(lora_reward):
    from trainer.algorithms.reward_scoring import score_texts

    out, _, _ = lora_reward
    prompt = [{"role": "user", "content": "say something nice:"}]
    rows = marker_rows(20, seed=5)
    better = score_texts(
        out, [r["prompt"] for r in rows], [r["chosen"] for r in rows], device="cpu"
    )
    worse = score_texts(
        out, [r["prompt"] for r in rows], [r["rejected"] for r in rows], device="cpu"
    )
    assert sum(b > w for b, w in zip(better, worse, strict=True)) >= 18
    assert score_texts(out, [prompt], [" hello."], device="cpu")  # loads without a merge


def test_bf16_on_cpu_trains_a_lora_reward_model(tiny_model_dir, tmp_path, progress):
    from trainer.algorithms.reward import train

    config = reward_config(tiny_model_dir, dtype="bf16", max_steps=3, gradient_checkpointing=True)
    metrics = train(config, marker_rows(24, seed=1), tmp_path, progress=progress)

    assert metrics["step"] == 3
    assert all(math.isfinite(v) for v in progress.values("train_loss"))


def test_4bit_loading_is_refused_with_the_reason(tiny_model_dir, tmp_path):
    from trainer.algorithms.reward import train

    with pytest.raises(TrainingError, match="bitsandbytes|CUDA"):
        train(reward_config(tiny_model_dir, load_in_bits=4), marker_rows(4), tmp_path)
    with pytest.raises(TrainingError, match="needs use_lora"):
        train(
            reward_config(tiny_model_dir, load_in_bits=8, use_lora=False), marker_rows(4), tmp_path
        )


@pytest.fixture(scope="module")
def dpo_adapter(tiny_model_dir, tmp_path_factory):
    """(adapter dir, progress) of a LoRA DPO run."""
    from tests.trainer.algorithms.helpers import ProgressLog
    from trainer.algorithms.dpo import DPOConfig, train

    progress = ProgressLog()
    out = tmp_path_factory.mktemp("lora-dpo") / "policy"
    config = DPOConfig(
        model_name_or_path=tiny_model_dir, learning_rate=5e-3, max_steps=12, batch_size=8,
        max_length=64, save_steps=0, seed=0, device="cpu", beta=0.1, **LORA,
    )  # fmt: skip
    train(config, marker_rows(96, seed=3), out, progress=progress)
    return out, progress


def test_lora_dpo_raises_its_objective_and_saves_an_adapter(tiny_model_dir, dpo_adapter):
    out, progress = dpo_adapter
    assert is_adapter(out) and adapter_base(out) == tiny_model_dir
    losses = progress.values("loss")
    margins = progress.values("rewards/margins")
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    assert sum(margins[-3:]) / 3 > 0, margins


def test_an_adapter_generates_and_starts_the_next_round_unmerged(
    tiny_model_dir, dpo_adapter, tmp_path
):
    from trainer.algorithms.common import read_jsonl
    from trainer.algorithms.dpo import DPOConfig
    from trainer.algorithms.dpo import train as train_dpo
    from trainer.algorithms.generate import COMPLETIONS_FILENAME, GenerateConfig, run

    adapter, _ = dpo_adapter
    before = file_hashes(adapter)
    rows = [{"prompt": p, "prompt_id": i} for i, p in enumerate(chat_prompts(3))]
    config = GenerateConfig(
        model_name_or_path=str(adapter), num_samples=2, max_new_tokens=8, device="cpu"
    )
    metrics = run(config, rows, tmp_path / "gen")
    assert metrics["completions"] == 6 and not metrics["used_vllm"]
    assert len(read_jsonl(tmp_path / "gen" / COMPLETIONS_FILENAME)) == 6

    # Round two starts from the adapter: it trains on, and stays an adapter of the same base.
    nxt = tmp_path / "round-2"
    config = DPOConfig(
        model_name_or_path=str(adapter), learning_rate=5e-3, max_steps=2, batch_size=4,
        max_length=64, save_steps=0, seed=1, device="cpu", **LORA,
    )  # fmt: skip
    train_dpo(config, marker_rows(8, seed=4), nxt)
    assert is_adapter(nxt) and adapter_base(nxt) == tiny_model_dir
    assert file_hashes(adapter) == before
    assert file_hashes(nxt)["adapter_model.safetensors"] != before["adapter_model.safetensors"]

    # Merging is a separate, explicit step that writes full weights elsewhere.
    merged = merge_adapter(nxt, tmp_path / "merged")
    assert (merged / "model.safetensors").is_file() and not is_adapter(merged)
    assert json.loads((nxt / "adapter_config.json").read_text())["r"] == 8


@pytest.mark.slow
def test_lora_ppo_raises_the_mean_reward(tiny_model_dir, tiny_reward, tmp_path, progress):
    from trainer.algorithms.ppo import PPOConfig, train

    config = PPOConfig(
        model_name_or_path=tiny_model_dir, reward_model_path=tiny_reward[0], steps=16,
        batch_size=16, mini_batch_size=8, ppo_epochs=2, learning_rate=2e-3,
        value_learning_rate=2e-3, max_new_tokens=24, kl_coef=0.02, save_steps=0, device="cpu",
        seed=0, **LORA,
    )  # fmt: skip
    train(config, [{"prompt": p} for p in chat_prompts(32)], tmp_path, progress=progress)

    rewards = progress.values("reward")
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.5, rewards
    assert is_adapter(tmp_path) and is_adapter(tmp_path / "value_model")


def test_lora_ppo_runs_with_the_reference_as_the_disabled_adapter(
    tiny_model_dir, tiny_reward, tmp_path, progress
):
    from trainer.algorithms.ppo import PPOConfig, load_models, train

    config = PPOConfig(
        model_name_or_path=tiny_model_dir, reward_model_path=tiny_reward[0], steps=2,
        batch_size=4, mini_batch_size=4, ppo_epochs=1, learning_rate=1e-3, max_new_tokens=8,
        save_steps=1, save_total_limit=1, device="cpu", seed=0, **LORA,
    )  # fmt: skip
    models = load_models(config, None)
    assert models.reference is None  # no second copy of the policy
    trainable = sum(p.numel() for p in models.policy.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in models.policy.parameters()) / 5
    del models

    train(config, [{"prompt": p} for p in chat_prompts(8)], tmp_path, progress=progress)
    kl = progress.values("kl")
    assert kl[0] == pytest.approx(0.0, abs=1e-4)  # before any update, policy == reference
    assert all(math.isfinite(v) for v in progress.values("value_loss"))
    # Resuming loads the checkpoint's adapters.
    config.steps, config.resume_from_checkpoint = 3, "latest"
    assert train(config, [{"prompt": p} for p in chat_prompts(8)], tmp_path)["step"] == 3


def test_ppo_places_its_roles_on_several_gpus_by_the_documented_rule():
    from trainer.algorithms.ppo import PPOConfig, role_devices

    auto = PPOConfig(model_name_or_path="m", reward_model_path="r")
    assert role_devices(auto, gpus=2) == {
        "policy": "cuda:0", "reference": "cuda:0", "value": "cuda:1", "reward": "cuda:1",
    }  # fmt: skip
    assert set(role_devices(auto, gpus=8).values()) == {"cuda:0", "cuda:1", "cuda:2", "cuda:3"}
    given = PPOConfig(model_name_or_path="m", reward_model_path="r", device_map={"reward": "cpu"})
    assert role_devices(given, gpus=2)["reward"] == "cpu"
    assert role_devices(PPOConfig(model_name_or_path="m", device="cpu"), gpus=4)["value"] == "cpu"


@pytest.mark.parametrize("kind", ["grpo", "rloo", "raft"])
def test_the_other_policy_kinds_train_an_adapter(kind, tiny_model_dir, tiny_reward, tmp_path):
    from trainer.algorithms import grpo, raft, rloo

    rows = [{"prompt": p} for p in chat_prompts(4)]
    common = {"model_name_or_path": tiny_model_dir, "reward_model_path": tiny_reward[0],
              "learning_rate": 1e-3, "device": "cpu", "seed": 0, **LORA}  # fmt: skip
    if kind == "raft":
        config = raft.RAFTConfig(
            **common, iterations=2, num_samples=2, max_new_tokens=8, keep_truncated=True,
            sft_batch_size=2,
        )  # fmt: skip
        raft.train(config, rows, tmp_path)
    else:
        module = grpo if kind == "grpo" else rloo
        cls = grpo.GRPOConfig if kind == "grpo" else rloo.RLOOConfig
        config = cls(
            **common, num_generations=2, max_completion_length=8, max_steps=1, batch_size=4,
            save_steps=0, beta=0.05,
        )  # fmt: skip
        module.train(config, rows, tmp_path)
    assert is_adapter(tmp_path) and adapter_base(tmp_path) == tiny_model_dir
