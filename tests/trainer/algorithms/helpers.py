"""Data and checks shared by the training-code tests (fixtures live in conftest.py)."""

import os
import random

MARKER = "cat"
_PROMPTS = [
    "tell me about the garden:",
    "write a sentence:",
    "what happened today?",
    "say something nice:",
    "describe the park:",
]


def _sentences() -> tuple[list[str], list[str]]:
    from trainer.algorithms.tiny import tiny_corpus

    sentences = {
        s.strip() + "."
        for line in tiny_corpus()
        if "<|" not in line
        for s in line.split(".")
        if s.strip()
    }
    with_marker = sorted(s for s in sentences if MARKER in s.split())
    without = sorted(s for s in sentences if MARKER not in s.split())
    return with_marker, without


def marker_rows(n: int, seed: int = 0, chat: bool = True) -> list[dict]:
    """A learnable preference: the chosen response mentions the marker word, the other not.

    The marker is a word the tiny policy already uses now and then, so PPO and RAFT can
    find it by sampling and raise its frequency. Chat prompts are the ones the tiny policy
    answers with sentences."""
    rng = random.Random(seed)
    with_marker, without = _sentences()

    def prompt():
        text = rng.choice(_PROMPTS)
        return [{"role": "user", "content": text}] if chat else text

    return [
        {
            "prompt": prompt(),
            "chosen": " " + rng.choice(with_marker),
            "rejected": " " + rng.choice(without),
        }
        for _ in range(n)
    ]


def chat_prompts(n: int) -> list[list[dict]]:
    topics = ["the weather", "a cat", "the garden", "your day", "the sea", "music"]
    return [
        [{"role": "user", "content": f"tell me about {topics[i % len(topics)]}."}] for i in range(n)
    ]


class ProgressLog:
    """A progress callback that remembers every report."""

    def __init__(self):
        self.calls: list[tuple[int, int, dict]] = []

    def __call__(self, step: int, total: int, metrics: dict) -> None:
        self.calls.append((step, total, dict(metrics)))

    def values(self, key: str) -> list[float]:
        return [m[key] for _, _, m in self.calls if key in m]


def weights(model_dir) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(model_dir, "model.safetensors"))


def params_changed(before_dir, after_dir) -> bool:
    """True when any weight that both checkpoints hold differs."""
    import torch

    before, after = weights(before_dir), weights(after_dir)
    shared = set(before) & set(after)
    assert shared, "the two checkpoints share no weight names"
    return any(not torch.equal(before[k], after[k]) for k in shared)
