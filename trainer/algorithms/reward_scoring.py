"""How a reward model reads text, and how to load one and score with it.

The model always sees ``prompt + completion + eos``; a chat prompt (a list of messages) is
rendered with the tokenizer's chat template and a generation prompt first. :func:`reward_text`
is the one place that builds this text, used by training (reward.py) and by scoring
(:class:`RewardScorer`, :func:`score_texts`, which PPO and RAFT use), so the two cannot drift.
"""

from __future__ import annotations

from pathlib import Path

from trainer.algorithms.common import TrainingError, resolve_device, resolve_dtype


def reward_text(tokenizer, prompt: str | list[dict], completion: str) -> str:
    """``prompt + completion + eos``; a chat prompt goes through the chat template first."""
    if isinstance(prompt, list):
        prompt = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return prompt + completion + tokenizer.eos_token


def load_reward_model(
    path: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    require_trained_head: bool = False,
):
    """Load ``(model, tokenizer)``; refuses an untrained score head when asked to."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=1, dtype=resolve_dtype(dtype), output_loading_info=True
    )
    missing = [key for key in info.get("missing_keys", ()) if "score" in key]
    if missing and require_trained_head:
        raise TrainingError(
            f"{path} has no trained score head (missing weights: {', '.join(sorted(missing))}): it "
            "is a plain language model, not a reward model, so its scores would be random. Pass a "
            "trained reward model, or set require_trained_head=False to train a new head."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        # Pooling takes the last non-pad token, so eos-as-pad reads the last completion token:
        # consistent between training and scoring, which is what matters.
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding and left truncation keep the end of every completion at the last position.
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device), tokenizer


def encode(tokenizer, prompts: list, completions: list[str], max_length: int, device: str):
    texts = [reward_text(tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)]
    # Chat templates already add their special tokens; plain text gets the tokenizer's own.
    add_special = not any(isinstance(p, list) for p in prompts)
    batch = tokenizer(
        texts,
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_length,
        add_special_tokens=add_special,
    )
    return {k: v.to(device) for k, v in batch.items()}


class RewardScorer:
    """A reward model loaded once; call it with prompts and completions to get floats."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 16,
        max_length: int = 512,
    ):
        self.device = resolve_device(device)
        self.model, self.tokenizer = load_reward_model(
            model_dir, device=self.device, dtype=dtype, require_trained_head=True
        )
        self.model.eval().requires_grad_(False)
        self.batch_size, self.max_length = batch_size, max_length

    def __call__(self, prompts: list, completions: list[str]) -> list[float]:
        import torch

        scores: list[float] = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                batch = encode(
                    self.tokenizer,
                    prompts[i : i + self.batch_size],
                    completions[i : i + self.batch_size],
                    self.max_length,
                    self.device,
                )
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


def score_texts(
    model_dir: str | Path | RewardScorer, prompts: list, completions: list[str], **scorer_kwargs
) -> list[float]:
    """Reward of each (prompt, completion) pair, built exactly as in training."""
    if not isinstance(model_dir, RewardScorer):
        model_dir = RewardScorer(model_dir, **scorer_kwargs)
    return model_dir(prompts, completions)
