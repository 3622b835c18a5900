"""A tiny offline causal LM for tests and the demo: no model hub is reachable.

The tokenizer is a byte-level BPE trained on a small templated English corpus that lives in
this module, wrapped in ``PreTrainedTokenizerFast`` with separate pad / bos / eos tokens and a
ChatML chat template. The model is a ~1.5M-parameter ``LlamaForCausalLM``. A short optional
pretraining run (a few hundred CPU steps) makes its samples read like sentences, which gives
reward models and policies something to tell apart.

    python -m trainer.algorithms.tiny --out /tmp/tiny-policy
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<|pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, IM_END]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SUBJECTS = [
    "the cat",
    "the dog",
    "a bird",
    "my friend",
    "the teacher",
    "a child",
    "the farmer",
    "our neighbour",
    "the robot",
    "a small fox",
    "the old man",
    "the girl",
]
_VERBS = [
    "sees",
    "likes",
    "finds",
    "carries",
    "paints",
    "wants",
    "helps",
    "follows",
    "reads",
    "builds",
    "cleans",
    "watches",
]
_OBJECTS = [
    "a red ball",
    "the green tree",
    "a warm cup of tea",
    "the big house",
    "a good book",
    "the blue river",
    "a happy song",
    "the quiet garden",
    "a bright star",
    "the new car",
    "a sweet apple",
    "the long road",
]
_PLACES = [
    "in the park",
    "at home",
    "by the sea",
    "on the hill",
    "near the school",
    "in the morning",
    "after lunch",
    "under the sun",
]
_ADJECTIVES = ["happy", "kind", "tired", "helpful", "curious", "calm", "brave", "polite"]
_TOPICS = [
    "the weather",
    "a cat",
    "the garden",
    "your day",
    "a good book",
    "the sea",
    "music",
    "the market",
    "a friend",
    "the river",
]


def tiny_corpus(seed: int = 0) -> list[str]:
    """Templated sentences, plus short ChatML dialogues so chat prompts get sentence answers."""
    sentences = [f"{s} {v} {o}." for s, v, o in itertools.product(_SUBJECTS, _VERBS, _OBJECTS)]
    sentences += [
        f"{s} is {a} {p}." for s, a, p in itertools.product(_SUBJECTS, _ADJECTIVES, _PLACES)
    ]
    rng = random.Random(seed)
    rng.shuffle(sentences)
    lines = [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]
    dialogues = []
    for topic in _TOPICS:
        for _ in range(12):
            question = rng.choice(["tell me about", "write a sentence about", "what about"])
            answer = " ".join(rng.sample(sentences, 2))
            dialogues.append(
                f"{IM_START}user\n{question} {topic}.{IM_END}\n"
                f"{IM_START}assistant\n{answer}{IM_END}\n"
            )
    return lines + dialogues


def build_tokenizer(corpus: list[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=256,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_model(tokenizer, *, hidden_size: int = 128, layers: int = 4, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def pretrain(
    model,
    tokenizer,
    corpus: list[str],
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 3e-3,
) -> float:
    """Plain next-token training on the corpus; returns the last loss."""
    import torch

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / max(steps, 1))
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        texts = [text + EOS for text in rng.sample(corpus, batch_size)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=96)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return float(loss.detach())


def build_tiny_policy(
    output_dir: str | Path,
    *,
    pretrain_steps: int = 300,
    seed: int = 0,
    hidden_size: int = 128,
    layers: int = 4,
) -> Path:
    """Build, optionally pretrain, and save a tiny Llama + tokenizer; returns the directory."""
    import torch

    output_dir = Path(output_dir)
    corpus = tiny_corpus(seed)
    tokenizer = build_tokenizer(corpus)
    # Left padding is what batched generation needs; training code pads either way.
    tokenizer.padding_side = "left"
    with torch.random.fork_rng():
        model = build_model(tokenizer, hidden_size=hidden_size, layers=layers, seed=seed)
        if pretrain_steps > 0:
            pretrain(model, tokenizer, corpus, steps=pretrain_steps, seed=seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids(IM_END),
    ]
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to save the model into")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_policy(args.out, pretrain_steps=args.pretrain_steps, seed=args.seed)
    print(path)


if __name__ == "__main__":
    main()
