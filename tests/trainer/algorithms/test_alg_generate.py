import json

import torch

from tests.trainer.algorithms.helpers import chat_prompts
from trainer.algorithms.generate import (
    COMPLETIONS_FILENAME,
    GenerateConfig,
    load_policy,
    run,
    sample_tokens,
    stop_token_ids,
)


def test_it_samples_n_completions_per_prompt_and_keeps_row_keys(tiny_model_dir, tmp_path, progress):
    rows = [{"prompt": p, "prompt_id": i} for i, p in enumerate(chat_prompts(2))]
    rows.append({"prompt": "the cat", "prompt_id": 2})
    config = GenerateConfig(
        model_name_or_path=tiny_model_dir,
        num_samples=3,
        max_new_tokens=16,
        batch_size=4,
        device="cpu",
        seed=1,
    )

    metrics = run(config, rows, tmp_path, progress=progress)

    lines = (tmp_path / COMPLETIONS_FILENAME).read_text().splitlines()
    out = [json.loads(line) for line in lines]
    assert metrics["completions"] == 9 and len(out) == 9
    assert [(r["prompt_id"], r["sample_index"]) for r in out[:3]] == [(0, 0), (0, 1), (0, 2)]
    assert all(isinstance(r["completion"], str) and r["num_tokens"] > 0 for r in out)
    assert "<|" not in "".join(r["completion"] for r in out)
    assert [step for step, _, _ in progress.calls] == [1, 2, 3]


def test_it_is_reproducible_with_a_seed_and_greedy_without_temperature(tiny_model_dir, tmp_path):
    rows = [{"prompt": p} for p in chat_prompts(2)]
    config = GenerateConfig(
        model_name_or_path=tiny_model_dir, num_samples=2, max_new_tokens=12, device="cpu", seed=3
    )
    first = run(config, rows, tmp_path / "a")
    second = run(config, rows, tmp_path / "b")
    assert first == second
    assert (tmp_path / "a" / COMPLETIONS_FILENAME).read_text() == (
        tmp_path / "b" / COMPLETIONS_FILENAME
    ).read_text()

    config.temperature = 0
    run(config, rows, tmp_path / "greedy")
    out = [json.loads(line) for line in (tmp_path / "greedy" / COMPLETIONS_FILENAME).open()]
    assert out[0]["completion"] == out[1]["completion"]


def _spy_on_scores(model, seen: list):
    """Make ``model.generate`` also keep the (processed) scores each token was drawn from."""
    original = model.generate

    def generate(*args, **kwargs):
        out = original(*args, **kwargs, output_scores=True, return_dict_in_generate=True)
        seen.append(torch.stack(out.scores, dim=1))
        return out.sequences

    model.generate = generate


def test_rollouts_sample_the_policy_itself_not_the_checkpoints_generation_settings(
    tiny_model_dir,
):
    from trainer.algorithms import ppo_core as core

    model, tokenizer = load_policy(tiny_model_dir)
    # What an instruct checkpoint's generation_config.json often ships.
    model.generation_config.repetition_penalty = 5.0
    scores: list = []
    _spy_on_scores(model, scores)
    settings = GenerateConfig(model_name_or_path="", max_new_tokens=12, temperature=1.0)
    torch.manual_seed(0)

    prompt_ids, prompt_mask, response = sample_tokens(model, tokenizer, chat_prompts(4), settings)

    stops = torch.tensor(stop_token_ids(model, tokenizer))
    is_stop = torch.isin(response, stops).long()
    mask = (is_stop.cumsum(1) - is_stop) == 0
    sampled = torch.log_softmax(scores[0].float(), -1).gather(2, response.unsqueeze(-1))[..., 0]
    attention = torch.cat([prompt_mask, mask.long()], 1)
    with torch.no_grad():
        logits = core.response_logits(
            model, torch.cat([prompt_ids, response], 1), attention, response.shape[1], 1.0
        )
    recomputed = core.token_logprobs(logits, response)
    assert torch.allclose(sampled[mask], recomputed[mask], atol=1e-4)


def test_the_generate_job_can_keep_the_checkpoints_generation_settings(tiny_model_dir):
    model, tokenizer = load_policy(tiny_model_dir)
    model.generation_config.no_repeat_ngram_size = 1
    settings = GenerateConfig(
        model_name_or_path="", max_new_tokens=16, use_model_generation_config=True
    )
    torch.manual_seed(0)

    prompt_ids, _, response = sample_tokens(model, tokenizer, chat_prompts(4), settings)

    for prompt, row in zip(prompt_ids.tolist(), response.tolist(), strict=True):
        tokens = [t for t in row if t != tokenizer.pad_token_id]
        # no_repeat_ngram_size=1 bans any token already in the sequence, prompt included.
        assert len(set(tokens)) == len(tokens) and not set(tokens) & set(prompt)


def test_a_batch_of_chat_and_plain_prompts_keeps_the_plain_prompts_bos(tiny_model_dir):
    from tokenizers.processors import TemplateProcessing

    from trainer.algorithms.tiny import BOS

    model, tokenizer = load_policy(tiny_model_dir)
    # A tokenizer that adds BOS to plain text, as Llama's does.
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, bos)]
    )
    settings = GenerateConfig(model_name_or_path="", max_new_tokens=2)

    prompt_ids, prompt_mask, _ = sample_tokens(
        model, tokenizer, [chat_prompts(1)[0], "write a sentence:"], settings
    )

    first = [row[m.bool()][0].item() for row, m in zip(prompt_ids, prompt_mask, strict=True)]
    assert first[1] == bos
    assert first[0] != bos  # the chat template decides the chat prompt's special tokens
