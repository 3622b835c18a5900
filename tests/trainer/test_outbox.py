"""Labeling and job launch never wait on the broker (trainer/outbox.py): what a request hands
to Celery is recorded in its transaction, sent after the commit if the broker answers at once,
and otherwise delivered by the sweep once the broker is back. A real Redis of the test's own
is stopped and started again (tests/brokers.py)."""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from annotator.models import Prompt
from tests import brokers
from tests.brokers import celery_broker, free_port
from tests.conftest import api_client_for
from tests.factories import make_task
from trainer import outbox, runner
from trainer.loop import services as loop
from trainer.models import LoopPolicy, LoopRound, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def looped(project, settings, tmp_path):
    """The project with an enabled loop that retrains after every usable comparison."""
    settings.PREFLOOP_MODELS_DIR = tmp_path
    Prompt.objects.create(project=project, text="train")
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    return loop.loop_configure(project=project, base_policy=base, enabled=True, reward_after=1)


@pytest.fixture
def own_redis():
    yield from brokers.own_redis()


def label(client, project) -> tuple[int, float]:
    """Take the next task and answer it; (status code, seconds the submit took)."""
    task = client.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
    started = time.monotonic()
    answered = client.post(
        f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json"
    )
    return answered.status_code, time.monotonic() - started


def test_a_submit_with_the_broker_down_answers_201_and_the_loop_advances_once_it_is_back(
    looped, project, bob, own_redis, django_capture_on_commit_callbacks
):
    make_task(project)
    own_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        status, took = label(api_client_for(bob), project)
    assert status == 201 and took < 1.0
    looped.refresh_from_db()
    assert looped.advance_due_since is not None  # recorded with the answer
    assert not LoopRound.objects.filter(project=project, status="reward").exists()

    own_redis.start()
    with django_capture_on_commit_callbacks(execute=True):
        swept = outbox.outbox_sweep()  # what beat runs every few seconds
    assert swept["advanced"] == [project.id]
    round_ = LoopRound.objects.get(project=project)
    assert round_.status == LoopRound.Status.REWARD
    # The reward job the loop started went to the broker and is noted as sent.
    assert own_redis.queue_length("gpu") == 1
    assert round_.reward_job.sent_at is not None
    looped.refresh_from_db()
    assert looped.advance_due_since is None


def test_many_labels_at_once_send_one_advance_message(
    looped, project, bob, django_capture_on_commit_callbacks
):
    looped.reward_after = 100
    looped.save()
    for _ in range(5):
        make_task(project)
    client = api_client_for(bob)
    with mock.patch("trainer.tasks.advance_loop.delay") as advance:
        with django_capture_on_commit_callbacks(execute=True):
            assert [label(client, project)[0] for _ in range(5)] == [201] * 5
    advance.assert_called_once_with(project.id)
    # The advance clears the mark; the next label marks it (and sends) again.
    from trainer.tasks import advance_loop

    advance_loop(project.id)
    make_task(project)
    with mock.patch("trainer.tasks.advance_loop.delay") as advance:
        with django_capture_on_commit_callbacks(execute=True):
            assert label(client, project)[0] == 201
    advance.assert_called_once_with(project.id)


def test_a_paused_loop_is_not_marked(looped, project, bob, django_capture_on_commit_callbacks):
    LoopPolicy.objects.filter(id=looped.id).update(paused=True)
    make_task(project)
    with mock.patch("trainer.tasks.advance_loop.delay") as advance:
        with django_capture_on_commit_callbacks(execute=True):
            assert label(api_client_for(bob), project)[0] == 201
    advance.assert_not_called()
    assert LoopPolicy.objects.get(id=looped.id).advance_due_since is None


def test_an_advance_message_after_the_sweep_is_a_no_op(looped, project):
    outbox.loop_advance_mark(project_id=project.id)
    from trainer.tasks import advance_loop

    with mock.patch("trainer.loop.services.loop_advance") as advance:
        outbox.outbox_sweep()
        assert advance_loop(project.id) is None  # the sweep took the mark first
    advance.assert_called_once_with(project_id=project.id)


def test_a_job_launched_with_the_broker_down_answers_201_and_is_sent_by_the_sweep(
    alice, project, own_redis, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.PREFLOOP_MODELS_DIR = tmp_path
    own_redis.stop()
    client = api_client_for(alice)
    body = {"kind": "reward", "project": project.id, "config": {"model_name_or_path": "/m"}}
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/api/v1/jobs/", body, format="json")
    assert resp.status_code == 201 and time.monotonic() - started < 1.0
    job = TrainingJob.objects.get(id=resp.json()["id"])
    assert job.status == "queued" and job.sent_at is None

    own_redis.start()
    assert outbox.outbox_sweep()["resent"] == []  # too fresh: its launch may still send it
    TrainingJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox.outbox_sweep()["resent"] == [job.id]
    assert own_redis.queue_length("gpu") == 1
    job.refresh_from_db()
    assert job.sent_at is not None
    assert outbox.outbox_sweep()["resent"] == []  # sent: not again until it looks lost


def test_a_job_queued_too_long_is_sent_again_and_still_runs_once(project, settings):
    job = TrainingJob.objects.create(project=project, kind="reward", output_dir="/x")
    TrainingJob.objects.filter(id=job.id).update(
        sent_at=timezone.now() - timedelta(seconds=settings.PREFLOOP_JOB_RESEND_AFTER + 1)
    )
    with mock.patch("trainer.tasks.run_training_job.delay") as send:
        assert outbox.outbox_sweep()["resent"] == [job.id]
    send.assert_called_once_with(job.id)
    # Both messages reach a worker: the first claims the job, the second finds it taken.
    from trainer.tasks import run_training_job

    with mock.patch.object(runner, "_supervise", return_value="succeeded") as supervise:
        with mock.patch.object(runner, "snapshot_freeze", return_value="/x/rows.jsonl"):
            with mock.patch("pathlib.Path.mkdir"), mock.patch("pathlib.Path.write_text"):
                run_training_job(job.id)
                run_training_job(job.id)
    supervise.assert_called_once()
    job.refresh_from_db()
    assert job.attempts == 1 and job.status == "running"


def test_publishing_to_a_closed_port_gives_up_at_once():
    from trainer.tasks import advance_loop

    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
        started = time.monotonic()
        assert outbox.send(advance_loop, 1) is False
    assert time.monotonic() - started < 1.0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_job_launched_with_the_broker_down_runs_once_on_a_real_worker(tmp_path, settings):
    """Launch with the broker stopped; start it and a worker; the sweep sends the job, and a
    duplicate message (a re-send) finds it already claimed: it runs exactly once."""
    from django.db import connection

    from tests.trainer import test_worker as w

    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs to share the test database (PostgreSQL)")
    from trainer.algorithms.tiny import build_tiny_policy

    settings.PREFLOOP_MODELS_DIR = tmp_path / "models"
    tiny = str(build_tiny_policy(tmp_path / "policy", pretrain_steps=0))
    project = w.labeled_project(8)
    redis_server = brokers.RedisServer()
    redis_server.start()
    redis_server.stop()
    worker = None
    with celery_broker(redis_server.url):
        started = time.monotonic()
        job = services_job_create(project, tiny)
        assert time.monotonic() - started < 1.0
        assert job.sent_at is None and job.status == "queued"
        try:
            redis_server.start()
            worker = w.start_worker(tmp_path, "gpu", broker=redis_server.url)
            TrainingJob.objects.filter(id=job.id).update(
                created_at=timezone.now() - timedelta(minutes=1)
            )
            assert outbox.outbox_sweep()["resent"] == [job.id]
            from trainer.tasks import run_training_job

            run_training_job.delay(job.id)  # a duplicate, as a re-send of a lost message makes
            w.wait_for(lambda: TrainingJob.objects.get(id=job.id).is_finished, 240, "the job")
            time.sleep(3)  # the duplicate is consumed too
        finally:
            if worker is not None:
                w.stop_worker(worker)
            redis_server.stop()
    job.refresh_from_db()
    assert job.status == "succeeded", job.error + job.log_tail
    assert job.attempts == 1


def services_job_create(project, tiny):
    from trainer import services

    config = {"model_name_or_path": tiny, "batch_size": 4, "max_steps": 2, "device": "cpu"}
    return services.job_create(project=project, kind="reward", config=config)


def test_publishing_to_a_hung_broker_gives_up_within_seconds():
    import os
    import signal

    from trainer.tasks import advance_loop

    server = brokers.RedisServer()
    server.start()
    try:
        with celery_broker(server.url):
            assert outbox.send(advance_loop, 1) is True
            os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
            started = time.monotonic()
            assert outbox.send(advance_loop, 1) is False
            assert time.monotonic() - started < 3.5
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        server.stop()


def test_a_submit_with_a_loop_stays_within_the_hot_path_budget(
    looped, project, bob, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    from tests.annotator.test_api_hot_path import SUBMIT_MAX_QUERIES

    make_task(project)
    make_task(project)
    client = api_client_for(bob)
    for sends in (1, 0):  # the first label marks the loop and sends; the next finds it marked
        task = client.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        with mock.patch("trainer.tasks.advance_loop.delay") as advance:
            with django_assert_max_num_queries(SUBMIT_MAX_QUERIES):
                with django_capture_on_commit_callbacks(execute=True) as callbacks:
                    answered = client.post(
                        f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json"
                    )
        assert answered.status_code == 201
        assert len(callbacks) == advance.call_count == sends


def test_a_loop_that_fails_to_advance_stays_due_and_the_sweep_goes_on(looped, project):
    other = TrainingJob.objects.create(project=project, kind="reward", output_dir="/x")
    TrainingJob.objects.filter(id=other.id).update(created_at=timezone.now() - timedelta(minutes=1))
    outbox.loop_advance_mark(project_id=project.id)
    with (
        mock.patch("trainer.loop.services.loop_advance", side_effect=RuntimeError("boom")),
        mock.patch("trainer.tasks.run_training_job.delay"),
    ):
        swept = outbox.outbox_sweep()
    assert swept == {"advanced": [], "resent": [other.id]}
    assert LoopPolicy.objects.get(id=looped.id).advance_due_since is not None  # next tick
