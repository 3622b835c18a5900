"""Sample generations for the job page: a few (prompt, response, score) rows, about ten times a
run, through the progress callback (samples.SampleLog) from PPO, RAFT, generate, RLOO, GRPO."""

import pytest

from tests.trainer.algorithms.helpers import chat_prompts
from tests.trainer.algorithms.test_alg_ppo import ppo_config, prompt_rows
from tests.trainer.algorithms.test_alg_raft import raft_config
from tests.trainer.algorithms.test_alg_rloo import tiny as rloo_config
from trainer.algorithms.common import report
from trainer.algorithms.samples import SampleLog


def test_it_keeps_a_few_samples_about_ten_times_a_run():
    sent = []
    log = SampleLog(lambda s, t, m: sent.append((s, m)), total=100, shown=2)
    for step in range(1, 101):
        log.add(step, ["p1", "p2", "p3"], ["r1", "r2", "r3"], [0.5, 1, 2])
        report(lambda s, t, m: sent.append((s, m)), step, 100, {"loss": 1}, samples=log.pop())
    with_samples = [(s, m["samples"]) for s, m in sent if "samples" in m]
    assert [s for s, _ in with_samples] == list(range(1, 101, 10))
    assert with_samples[0][1] == [
        {"prompt": "p1", "response": "r1", "score": 0.5},
        {"prompt": "p2", "response": "r2", "score": 1.0},
    ]
    assert all(m["loss"] == 1.0 for _, m in sent)


def test_it_writes_chats_as_lines_cuts_long_text_and_sends_at_once_when_called():
    sent = []
    log = SampleLog(lambda s, t, m: sent.append((s, t, m)), total=3)
    chat = [{"role": "user", "content": "Hi?"}]
    log(1, [chat], ["x" * 5000])
    log(1, [chat], ["again"])  # not due yet: nothing sent
    ((step, total, metrics),) = sent
    assert (step, total) == (1, 3)
    assert metrics["samples"] == [{"prompt": "user: Hi?", "response": "x" * 2000}]


def test_it_sends_nothing_without_a_callback():
    log = SampleLog(None, total=10)
    log.add(1, ["p"], ["r"])
    assert log.pop() is None


def samples_of(progress) -> list:
    return [row for _, _, m in progress.calls for row in m.get("samples", [])]


@pytest.mark.slow
def test_ppo_and_raft_report_scored_samples(tiny_model_dir, tiny_reward, tmp_path, progress):
    from trainer.algorithms import ppo, raft

    ppo.train(
        ppo_config(tiny_model_dir, tiny_reward[0]),
        prompt_rows(8),
        tmp_path / "p",
        progress=progress,
    )
    rows = samples_of(progress)
    assert rows and all({"prompt", "response", "score"} <= set(r) for r in rows)
    progress.calls.clear()
    rows = [{"prompt": p} for p in chat_prompts(8)]
    raft.train(raft_config(tiny_model_dir, tiny_reward[0]), rows, tmp_path / "r", progress=progress)
    assert samples_of(progress) and isinstance(samples_of(progress)[0]["score"], float)


@pytest.mark.slow
def test_generate_and_rloo_report_samples(tiny_model_dir, tiny_reward, tmp_path, progress):
    from trainer.algorithms.generate import GenerateConfig, run
    from trainer.algorithms.rloo import train

    config = GenerateConfig(model_name_or_path=tiny_model_dir, max_new_tokens=8, device="cpu")
    run(config, [{"prompt": "the cat", "prompt_id": 1}], tmp_path / "g", progress=progress)
    assert samples_of(progress)[0]["prompt"] == "the cat"
    progress.calls.clear()
    train(
        rloo_config(tiny_model_dir, tiny_reward[0]),
        prompt_rows(8),
        tmp_path / "l",
        progress=progress,
    )
    assert samples_of(progress) and "score" in samples_of(progress)[0]


@pytest.mark.slow
def test_grpo_reports_scored_samples(tiny_model_dir, tiny_reward, tmp_path, progress):
    from tests.trainer.algorithms.test_alg_grpo import tiny as grpo_config
    from trainer.algorithms.grpo import train

    train(grpo_config(tiny_model_dir, tiny_reward[0]), prompt_rows(8), tmp_path, progress=progress)
    rows = samples_of(progress)
    assert rows and all(isinstance(r["score"], float) and r["response"] is not None for r in rows)
    steps = [step for step, _, m in progress.calls if "samples" in m]
    assert steps == sorted(steps) and all(0 <= s <= 2 for s in steps)
