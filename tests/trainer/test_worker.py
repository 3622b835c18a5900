"""A real Celery worker over Redis runs training jobs; kill -9 leaves no job stuck running.

PostgreSQL only: the worker is another process and must see the test database.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.db import connection

from annotator.models import Annotation, Kind
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from trainer import services
from trainer.models import TrainingJob
from trainer.tasks import run_training_job

Status = TrainingJob.Status
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs to share the test database (PostgreSQL)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=0))


def start_worker(tmp_path, queue: str, broker: str | None = None) -> subprocess.Popen:
    """A solo-pool worker on `queue`, sharing the test database."""
    db = connection.settings_dict
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "webapp.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker or settings.CELERY_BROKER_URL,
        "PREFLOOP_VAR_DIR": str(tmp_path),
    }
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "webapp",
            "worker",
            "-Q",
            queue,
            "--pool=solo",
            "--concurrency=1",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"{queue}-{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def worker(tmp_path):
    """A solo-pool worker on a queue of its own; yields (queue, process)."""
    queue = f"gpu-test-{uuid.uuid4().hex[:10]}"
    process = start_worker(tmp_path, queue)
    yield queue, process
    stop_worker(process)


def labeled_project(n: int = 24):
    project = ProjectFactory(kind=Kind.PAIRWISE)
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler)
    for i in range(n):
        task = make_task(project, texts=[f"the cat sat {i} banana", f"a dog ran {i}"])
        first, second = task.completions.order_by("id")
        Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict="preferred",
            chosen=first,
            rejected=second,
        )
    return project


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def reward_job(project, tiny_model, tmp_path, **config):
    return TrainingJob.objects.create(
        project=project,
        kind="reward",
        output_dir=str(tmp_path / f"job-{uuid.uuid4().hex}"),
        config={
            "model_name_or_path": tiny_model,
            "batch_size": 4,
            "save_steps": 0,
            "device": "cpu",
            **config,
        },
    )


def test_it_trains_a_reward_model_on_the_worker(worker, tiny_model, tmp_path):
    queue, _ = worker
    job = reward_job(labeled_project(), tiny_model, tmp_path, max_steps=3)
    run_training_job.apply_async(args=[job.id], queue=queue)
    wait_for(lambda: TrainingJob.objects.get(id=job.id).is_finished, 240, "the job to end")
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error + job.log_tail
    assert job.snapshot_rows == 24 and job.output_model.role == "reward"
    assert any("train_loss" in m for m in job.metrics)


def test_a_killed_worker_leaves_no_job_running(worker, tiny_model, tmp_path):
    queue, process = worker
    job = reward_job(labeled_project(), tiny_model, tmp_path, max_steps=100000)
    run_training_job.apply_async(args=[job.id], queue=queue)
    wait_for(lambda: TrainingJob.objects.get(id=job.id).step >= 1, 240, "training to start")
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the job should run in a child process"

    os.kill(process.pid, signal.SIGKILL)
    # The orphaned training process notices and exits: no second copy keeps running.
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"training processes outlived their worker: {alive}"
    time.sleep(1.5)
    assert services.jobs_reap(stale_after=timedelta(seconds=1)) == [job.id]
    job.refresh_from_db()
    assert job.status == Status.FAILED and "heartbeat" in job.error


def test_a_job_cancelled_on_the_worker_saves_and_ends_cancelled(worker, tiny_model, tmp_path):
    queue, _ = worker
    job = reward_job(labeled_project(), tiny_model, tmp_path, max_steps=100000)
    run_training_job.apply_async(args=[job.id], queue=queue)
    wait_for(lambda: TrainingJob.objects.get(id=job.id).step >= 1, 240, "training to start")
    services.job_cancel(job=TrainingJob.objects.get(id=job.id))
    wait_for(lambda: TrainingJob.objects.get(id=job.id).is_finished, 120, "the job to stop")
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.step < 100000
    assert list((Path(job.output_dir) / "model").glob("checkpoint-*")), "no checkpoint saved"
