"""Fixtures for the Django-free training code: one tiny pretrained policy (and one reward
model built on it) per test session, so each test only pays for its own few steps."""

import os

import pytest

from tests.trainer.algorithms.helpers import ProgressLog, marker_rows

# Nothing here may reach a model hub; tiny models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the threads'
# spinning made the suite 3-4x slower. Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    import transformers

    from trainer.algorithms.tiny import build_tiny_policy

    transformers.logging.set_verbosity_error()
    path = build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=150)
    return str(path)


@pytest.fixture(scope="session")
def tiny_reward(tiny_model_dir, tmp_path_factory):
    """(directory, metrics) of a reward model that prefers responses with the marker word."""
    from trainer.algorithms.reward import RewardConfig, train

    out = tmp_path_factory.mktemp("reward") / "rm"
    config = RewardConfig(
        model_name_or_path=tiny_model_dir,
        learning_rate=1e-3,
        max_steps=40,
        batch_size=8,
        save_steps=0,
        seed=0,
    )
    metrics = train(config, marker_rows(160, seed=1), out, val_rows=marker_rows(40, seed=2))
    return str(out), metrics


@pytest.fixture
def progress():
    return ProgressLog()
