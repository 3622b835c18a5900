"""How a reward model reads text, and how to load one and score with it.

The model sees ``prompt + completion + eos`` for a finished completion, and ``prompt +
completion`` without the eos for one cut off at its length limit (so a truncated response is
not scored as if the policy had ended it); a chat prompt (a list of messages) is rendered with
the tokenizer's chat template and a generation prompt first. Forward passes take their
position ids from the attention mask, so a score does not depend on how much left padding its
batch needed. :func:`reward_text`
is the one place that builds this text, used by training (reward.py) and by scoring
(:class:`RewardScorer`, :func:`score_texts`, which PPO and RAFT use), so the two cannot drift.
"""

from __future__ import annotations

from pathlib import Path

from trainer.algorithms.common import TrainingError, resolve_device, resolve_dtype


def reward_text(tokenizer, prompt: str | list[dict], completion: str, finished: bool = True) -> str:
    """``prompt + completion + eos`` (no eos when the completion was cut off unfinished); a
    chat prompt goes through the chat template first."""
    if isinstance(prompt, list):
        prompt = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return prompt + completion + (tokenizer.eos_token if finished else "")


def load_reward_model(
    path: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    require_trained_head: bool = False,
    config=None,
    trainable: bool = False,
    num_labels: int | None = None,
):
    """Load ``(model, tokenizer)``; refuses an untrained score head when asked to. ``path`` may
    hold full weights or a LoRA adapter (loaded on its base, unmerged; lora.py); ``config``
    and ``trainable`` say whether to put a fresh trainable adapter on it (its ``use_lora``).

    ``num_labels`` is the number of reward heads (an ensemble has several, reward.py); None
    takes a reward model's own and gives a plain language model one."""
    from transformers import AutoTokenizer

    from trainer.algorithms.lora import load_sequence_classifier

    if num_labels is None:
        num_labels = reward_heads(path)
    model, info = load_sequence_classifier(
        path,
        dtype=resolve_dtype(dtype),
        device=device,
        config=config,
        trainable=trainable,
        num_labels=num_labels,
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
    return model, tokenizer


def reward_heads(path: str | Path) -> int:
    """How many reward heads the checkpoint at ``path`` has: its own number for a reward model
    (a sequence classifier, or an adapter saved with its score head), 1 for anything else."""
    from transformers import AutoConfig

    from trainer.algorithms.lora import adapter_head_outputs, is_adapter

    if is_adapter(path):
        return adapter_head_outputs(path) or 1

    config = AutoConfig.from_pretrained(str(path))
    classifier = any(a.endswith("ForSequenceClassification") for a in config.architectures or ())
    return int(config.num_labels) if classifier else 1


def encode(
    tokenizer,
    prompts: list,
    completions: list[str],
    max_length: int,
    device: str,
    finished: list[bool] | None = None,
):
    from trainer.algorithms.common import tokenize_prompts
    from trainer.algorithms.ppo_core import position_ids

    finished = [True] * len(prompts) if finished is None else finished
    texts = [
        reward_text(tokenizer, p, c, f)
        for p, c, f in zip(prompts, completions, finished, strict=True)
    ]
    # Chat templates already add their special tokens; plain text gets the tokenizer's own.
    chat = [isinstance(p, list) for p in prompts]
    batch = dict(tokenize_prompts(tokenizer, texts, chat, max_length))
    # Left padding must not shift the positions of absolute-position models (GPT-2, OPT).
    batch["position_ids"] = position_ids(batch["attention_mask"])
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

    def __call__(
        self, prompts: list, completions: list[str], finished: list[bool] | None = None
    ) -> list[float]:
        """Scores (an ensemble's: the mean of its heads); ``finished[i]`` False marks a
        completion cut off at the length limit."""
        return [sum(h) / len(h) for h in self.heads(prompts, completions, finished)]

    @property
    def num_heads(self) -> int:
        return int(self.model.config.num_labels)

    def heads(
        self, prompts: list, completions: list[str], finished: list[bool] | None = None
    ) -> list[list[float]]:
        """Each completion's score under each reward head (one for a plain reward model)."""
        import torch

        finished = [True] * len(prompts) if finished is None else list(finished)
        scores: list[list[float]] = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                batch = encode(
                    self.tokenizer,
                    prompts[i : i + self.batch_size],
                    completions[i : i + self.batch_size],
                    self.max_length,
                    self.device,
                    finished[i : i + self.batch_size],
                )
                scores += self.model(**batch).logits.float().tolist()
        return scores


def score_texts(
    model_dir: str | Path | RewardScorer, prompts: list, completions: list[str], **scorer_kwargs
) -> list[float]:
    """Reward of each (prompt, completion) pair, built exactly as in training."""
    if not isinstance(model_dir, RewardScorer):
        model_dir = RewardScorer(model_dir, **scorer_kwargs)
    return model_dir(prompts, completions)
