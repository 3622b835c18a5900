"""A local tiny model as a transformers judge, end to end through a real Celery worker: the
worker's runner starts the judging child, which loads the model, reads the log-probabilities
of " A" and " B", and sends its batches back to be stored (slow: torch, a worker process)."""

import pytest
from django.db import connection

from annotator.models import Annotation, JudgeVerdict
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from tests.trainer.test_worker import start_worker, stop_worker, wait_for
from trainer.judging import services as judging
from trainer.models import TrainingJob
from trainer.tasks import run_training_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "judge", pretrain_steps=0))


def test_a_transformers_judge_runs_on_a_worker(tiny_model, tmp_path, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs to share the test database (PostgreSQL)")
    settings.PREFLOOP_MODELS_DIR = str(tmp_path / "models")
    project = ProjectFactory()
    MembershipFactory(project=project, user=UserFactory(), role="admin")
    tasks = [make_task(project, texts=[f"the cat sat {i}", f"a dog ran far {i}"]) for i in range(5)]
    judge = judging.judge_create(
        project=project, name="tiny", backend="transformers", model_path=tiny_model,
        min_calibration_tasks=0, audit_share=0.0,
    )  # fmt: skip
    job = judging.judge_run(judge=judge, config={"batch_size": 2, "device": "cpu"})
    queue = "gpu-judge-test"
    worker = start_worker(tmp_path, queue)
    try:
        run_training_job.apply_async(args=[job.id], queue=queue)
        wait_for(
            lambda: TrainingJob.objects.get(id=job.id).is_finished, timeout=240, what="the job"
        )
    finally:
        stop_worker(worker)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error or job.log_tail
    verdicts = JudgeVerdict.objects.filter(job_id=job.id)
    assert verdicts.count() == len(tasks)
    # A log-prob judge answers A or B with a confidence from the two tokens' probabilities.
    assert {v.first for v in verdicts} <= {"a", "b"} and {v.second for v in verdicts} <= {"a", "b"}
    assert all(0.5 <= v.confidence <= 1 for v in verdicts)
    made = Annotation.objects.filter(labeler=judge.user, labeler_kind="ai").count()
    assert made == verdicts.filter(consistent=True).count()
    assert job.metrics[-1]["judged"] == len(tasks)
