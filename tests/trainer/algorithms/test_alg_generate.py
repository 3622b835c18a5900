import json

from tests.trainer.algorithms.helpers import chat_prompts
from trainer.algorithms.generate import COMPLETIONS_FILENAME, GenerateConfig, run


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
