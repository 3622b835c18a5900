"""Shared fixtures for the Django-free training code: one tiny pretrained policy per session."""

import os
import random

import pytest

# Nothing here may reach a model hub; tiny models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MARKER = "please"
_WORDS = (
    "the cat sees a red ball my friend likes the green tree a bird finds "
    "the blue river our neighbour helps a child"
).split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    import transformers

    from trainer.algorithms.tiny import build_tiny_policy

    transformers.logging.set_verbosity_error()
    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=150))


def sentence(rng: random.Random, n: int = 5) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def marker_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable preference: the chosen response ends with the marker word."""
    rng = random.Random(seed)
    return [
        {
            "prompt": f"{sentence(rng, 3)}:",
            "chosen": f" {sentence(rng)} {MARKER}",
            "rejected": f" {sentence(rng)}",
        }
        for _ in range(n)
    ]


class ProgressLog:
    """A progress callback that remembers every report."""

    def __init__(self):
        self.calls: list[tuple[int, int, dict]] = []

    def __call__(self, step: int, total: int, metrics: dict) -> None:
        self.calls.append((step, total, dict(metrics)))

    def values(self, key: str) -> list[float]:
        return [m[key] for _, _, m in self.calls if key in m]


@pytest.fixture
def progress():
    return ProgressLog()


@pytest.fixture(scope="session")
def tiny_reward(tiny_model_dir, tmp_path_factory):
    """A reward model that prefers responses containing the marker word."""
    from trainer.algorithms.reward import RewardConfig, train

    out = tmp_path_factory.mktemp("reward") / "rm"
    config = RewardConfig(
        model_name_or_path=tiny_model_dir,
        learning_rate=1e-3,
        max_steps=40,
        batch_size=8,
        save_steps=0,
        val_fraction=0.0,
        seed=0,
    )
    metrics = train(config, marker_rows(160, seed=1), out, val_rows=marker_rows(40, seed=2))
    return str(out), metrics


def weights(model_dir) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))


def params_changed(before_dir, after_dir) -> bool:
    """True when any weight the two checkpoints share differs (prefix-insensitive)."""
    import torch

    before, after = weights(before_dir), weights(after_dir)
    shared = set(before) & set(after)
    assert shared, "the two checkpoints share no weight names"
    return any(not torch.equal(before[k], after[k]) for k in shared)
