"""The prompt_reward job kind: its snapshot is the project's outcome table, and a real worker
trains it and registers a prompt selector with its metrics."""

import json
import uuid
from pathlib import Path

import pytest
from django.db import connection

from annotator.strategies.log_import import strategy_log_import
from tests.factories import ProjectFactory
from tests.trainer.test_worker import start_worker, stop_worker, wait_for
from trainer import services
from trainer.algorithms.oirl_synthetic import synthetic_log
from trainer.algorithms.prompt_oirl import choose_strategy
from trainer.exceptions import JobError
from trainer.models import ModelVersion, TrainingJob
from trainer.snapshots import snapshot_freeze
from trainer.tasks import run_training_job


def logged_project(queries: int = 120, seed: int = 0):
    project = ProjectFactory()
    rows = [
        {"query": r["query"], "strategy": r["strategy"], "outcome": r["outcome"]}
        for r in synthetic_log(queries, seed=seed)
    ]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    strategy_log_import(project=project, data=data, fmt="jsonl")
    return project


@pytest.mark.django_db
def test_its_snapshot_is_the_outcome_table_of_train_queries(tmp_path):
    project = logged_project(queries=10)
    project.prompts.filter(id=project.prompts.order_by("id").first().id).update(split="eval")
    job = services.job_create(
        project=project, kind="prompt_reward", config={}, dataset={"source": "imported"}
    )
    path = snapshot_freeze(job=job, directory=tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 9 * 6  # the eval-split query is held out of training
    assert set(rows[0]) == {"query_id", "query", "strategy", "outcome"}
    job.refresh_from_db()
    assert job.snapshot_rows == 54


@pytest.mark.django_db
def test_it_refuses_a_bad_dataset_or_config():
    project = ProjectFactory()
    with pytest.raises(JobError, match="dataset.source must be one of"):
        services.job_create(
            project=project, kind="prompt_reward", config={}, dataset={"source": "x"}
        )
    with pytest.raises(JobError, match="encoder must be one of"):
        services.job_create(project=project, kind="prompt_reward", config={"encoder": "bert"})


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_trains_it_and_registers_a_prompt_selector(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs to share the test database (PostgreSQL)")
    project = logged_project()
    job = TrainingJob.objects.create(
        project=project,
        kind="prompt_reward",
        output_dir=str(tmp_path / f"job-{uuid.uuid4().hex}"),
        config={"max_epochs": 20, "seed": 0},
    )
    queue = f"gpu-test-{uuid.uuid4().hex[:10]}"
    worker = start_worker(tmp_path, queue)
    try:
        run_training_job.apply_async(args=[job.id], queue=queue)
        wait_for(lambda: TrainingJob.objects.get(id=job.id).is_finished, 240, "the job to end")
    finally:
        stop_worker(worker)
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error + job.log_tail
    assert job.snapshot_rows == 120 * 6
    model = job.output_model
    assert model.role == ModelVersion.Role.PROMPT_SELECTOR and model.project == project
    assert model.metrics["eval_queries"] == 24 and "gap_closed" in model.metrics
    assert model.metrics["accuracy_selector"] >= model.metrics["accuracy_random"]
    assert any("train_loss" in m for m in job.metrics)
    answer = choose_strategy("Hey! thanks friend hobby #1?", model.path)
    assert len(answer["scores"]) == 6 and Path(model.path, "choices.jsonl").is_file()


@pytest.mark.django_db
def test_the_launch_form_offers_the_outcome_settings_and_launches(client, alice, project):
    from django.urls import reverse

    client.force_login(alice)
    url = reverse("training_job_new", args=[project.id, "prompt_reward"])
    page = client.get(url).content.decode()
    assert 'name="dataset__source"' in page and 'name="dataset__likert_threshold"' in page
    assert 'name="config__classifier"' in page and 'name="config__encoder"' in page
    response = client.post(url, {"dataset__source": "imported", "config__classifier": "gbdt"})
    assert response.status_code == 302, response.content.decode()[-6000:]
    job = TrainingJob.objects.get(project=project, kind="prompt_reward")
    assert job.dataset == {"source": "imported"} and job.config["classifier"] == "gbdt"
