"""The runner with a real child process training a tiny reward model (slow: torch imports)."""

import threading
import time
from pathlib import Path

import pytest

from trainer import runner, snapshots
from trainer.configs import validate_config
from trainer.models import TrainingJob

Status = TrainingJob.Status


def marker_rows(n: int) -> list[dict]:
    words = ["the cat sat", "a dog ran", "birds sing", "rain falls", "fish swim"]
    return [
        {
            "prompt": f"Say something {i}.",
            "chosen": f"{words[i % 5]} banana",
            "rejected": words[(i + 1) % 5],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=0))


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model, tmp_path_factory):
    from trainer.algorithms.reward import RewardConfig, train

    out = tmp_path_factory.mktemp("rm") / "rm"
    config = RewardConfig(
        model_name_or_path=tiny_model, max_steps=2, batch_size=4, save_steps=0, device="cpu"
    )
    train(config, marker_rows(8), out, val_rows=[])
    return str(out)


@pytest.fixture
def rows(monkeypatch):
    import json

    lines = [(json.dumps(row) + "\n").encode() for row in marker_rows(24)]
    monkeypatch.setattr(snapshots, "snapshot_chunks", lambda job: iter(lines))


def reward_job(project, tiny_model, tmp_path, **config):
    return TrainingJob.objects.create(
        project=project,
        kind="reward",
        output_dir=str(tmp_path / "job"),
        config={
            "model_name_or_path": tiny_model,
            "batch_size": 4,
            "save_steps": 0,
            "device": "cpu",
            **config,
        },
    )


@pytest.mark.slow
@pytest.mark.django_db
def test_it_runs_a_job_to_a_registered_model(project, tiny_model, tmp_path, rows):
    job = reward_job(project, tiny_model, tmp_path, max_steps=3)
    assert runner.job_run(job_id=job.id, worker="test") == Status.SUCCEEDED
    job.refresh_from_db()
    assert (job.step, job.total_steps, job.snapshot_rows) == (3, 3, 24)
    assert len(job.snapshot_sha256) == 64
    assert [m["step"] for m in job.metrics if "train_loss" in m] == [1, 2, 3]
    timings = [m["elapsed_s"] for m in job.metrics]  # for the job page's ETA
    assert timings == sorted(timings) and timings[0] > 0
    model = job.output_model
    assert model.role == "reward" and model.job_id == job.id
    assert (Path(job.output_dir) / "model" / "prefloop_config.json").is_file()
    # A second delivery of the same message does nothing.
    assert runner.job_run(job_id=job.id, worker="test") is None


@pytest.mark.slow
@pytest.mark.django_db
def test_a_failing_job_records_the_error(project, tmp_path, rows):
    job = reward_job(project, str(tmp_path / "no-such-model"), tmp_path, max_steps=3)
    assert runner.job_run(job_id=job.id, worker="test") == Status.FAILED
    job.refresh_from_db()
    assert "no-such-model" in job.error and job.finished_at


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_cancelled_job_saves_and_ends_cancelled(project, tiny_model, tmp_path, rows):
    job = reward_job(project, tiny_model, tmp_path, max_steps=100000)
    result = {}

    def run():
        from django.db import connection

        result["status"] = runner.job_run(job_id=job.id, worker="test")
        connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while TrainingJob.objects.get(id=job.id).step < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    from trainer.services import job_cancel

    job_cancel(job=TrainingJob.objects.get(id=job.id))
    thread.join(timeout=120)
    assert result["status"] == Status.CANCELLED
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.step < 100000
    assert list((Path(job.output_dir) / "model").glob("checkpoint-*")), "no checkpoint saved"


@pytest.mark.slow
@pytest.mark.django_db
def test_it_runs_a_dpo_job_to_a_registered_policy(project, tiny_model, tmp_path, rows):
    job = TrainingJob.objects.create(
        project=project,
        kind="dpo",
        output_dir=str(tmp_path / "dpo"),
        config=validate_config(
            kind="dpo", config={"model_name_or_path": tiny_model, "max_steps": 2}, input_model=None
        ),
    )
    assert runner.job_run(job_id=job.id, worker="test") == Status.SUCCEEDED, (
        TrainingJob.objects.get(id=job.id).error
    )
    job.refresh_from_db()
    assert job.output_model.role == "policy" and job.step == 2


def run_job(project, kind, tmp_path, config, **fields):
    job = TrainingJob.objects.create(
        project=project,
        kind=kind,
        output_dir=str(tmp_path / kind),
        config=validate_config(kind=kind, config=config, input_model=None),
        **fields,
    )
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    assert status == Status.SUCCEEDED, job.error + job.log_tail
    return job


@pytest.mark.slow
@pytest.mark.django_db
def test_a_generate_job_adds_generated_completions(project, tiny_model, tmp_path):
    from annotator.models import Completion, Prompt
    from trainer.models import ModelVersion

    policy = ModelVersion.objects.create(project=project, name="p", role="policy", path=tiny_model)
    prompts = [
        Prompt.objects.create(project=project, text=f"Tell me about cats {i}.") for i in range(3)
    ]
    Prompt.objects.create(project=project, text="held out", split="eval")
    job = run_job(
        project,
        "generate",
        tmp_path,
        {"model_name_or_path": tiny_model, "max_new_tokens": 6, "num_samples": 2, "device": "cpu"},
        input_model=policy,
        dataset={"split": "train"},
    )
    assert job.snapshot_rows == 3 and job.output_model is None
    generated = Completion.objects.filter(source="generated")
    assert generated.count() == 6
    assert set(generated.values_list("prompt_id", flat=True)) == {p.id for p in prompts}
    assert set(generated.values_list("model_version_id", flat=True)) == {policy.id}


@pytest.mark.slow
@pytest.mark.django_db
def test_a_raft_job_trains_a_policy_on_prompts(project, tiny_model, tiny_reward_model, tmp_path):
    from annotator.models import Prompt

    for i in range(4):
        Prompt.objects.create(project=project, text=f"Say something about dogs {i}.")
    job = run_job(
        project,
        "raft",
        tmp_path,
        {
            "model_name_or_path": tiny_model,
            "reward_model_path": tiny_reward_model,
            "iterations": 1,
            "num_samples": 2,
            "max_new_tokens": 6,
            "keep_truncated": True,  # the tiny policy rarely ends a reply in 6 tokens
            "device": "cpu",
        },
    )
    assert job.output_model.role == "policy"
    assert any(
        "reward_kept_mean" in m or "mean_reward_kept" in m or len(m) > 1 for m in job.metrics
    )


@pytest.mark.slow
@pytest.mark.django_db
def test_an_sft_job_trains_on_preferred_responses(project, tiny_model, tmp_path, rows):
    job = run_job(
        project,
        "sft",
        tmp_path,
        {"model_name_or_path": tiny_model, "max_steps": 2, "batch_size": 4, "device": "cpu"},
    )
    assert job.output_model.role == "policy" and job.step == 2


@pytest.mark.slow
@pytest.mark.django_db
def test_a_ppo_job_trains_a_policy_on_prompts(project, tiny_model, tiny_reward_model, tmp_path):
    from annotator.models import Prompt

    for i in range(4):
        Prompt.objects.create(project=project, text=f"Say something about birds {i}.")
    job = run_job(
        project,
        "ppo",
        tmp_path,
        {
            "model_name_or_path": tiny_model,
            "reward_model_path": tiny_reward_model,
            "steps": 2,
            "batch_size": 2,
            "mini_batch_size": 2,
            "max_new_tokens": 6,
            "device": "cpu",
        },
    )
    assert job.output_model.role == "policy" and job.step == 2
    assert {"kl", "entropy"} <= set().union(*job.metrics)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_job_past_its_time_limit_stops_and_fails(project, tiny_model, tmp_path, rows, settings):
    settings.PREFLOOP_JOB_TIME_LIMITS = {"reward": 1}
    job = reward_job(project, tiny_model, tmp_path, max_steps=100000)
    assert runner.job_run(job_id=job.id, worker="test") == Status.FAILED
    job.refresh_from_db()
    assert "time limit of 1 s" in job.error and job.step < 100000
    assert list((Path(job.output_dir) / "model").glob("checkpoint-*")), "no checkpoint saved"


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_an_rloo_or_grpo_job_trains_a_policy_on_prompts(
    project, tiny_model, tiny_reward_model, tmp_path, kind
):
    from annotator.models import Prompt

    for i in range(4):
        Prompt.objects.create(project=project, text=f"Say something about fish {i}.")
    job = run_job(
        project,
        kind,
        tmp_path,
        {
            "model_name_or_path": tiny_model,
            "reward_model_path": tiny_reward_model,
            "max_steps": 2,
            "num_generations": 2,
            "batch_size": 4,
            "max_completion_length": 6,
            "device": "cpu",
        },
    )
    assert job.output_model.role == "policy" and job.step == 2


def test_the_job_process_returns_large_freed_blocks_unless_the_worker_says_otherwise(
    monkeypatch,
):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "webapp.settings")
    env = runner.child_env()
    assert env["MALLOC_MMAP_THRESHOLD_"] == "131072"
    assert "DJANGO_SETTINGS_MODULE" not in env and env["PYTHONUNBUFFERED"] == "1"

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4194304")
    assert runner.child_env()["MALLOC_MMAP_THRESHOLD_"] == "4194304"
