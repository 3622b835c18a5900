"""People wait for the judge: the tasks a judging job is about to judge are held from the
queue until the judge has answered them, its job has ended, or the judge's hold_s has passed,
whichever comes first. Labeling never waits on a worker for longer than that."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.models import Task
from annotator.services import task_claim_next
from tests.factories import make_task
from trainer import services
from trainer.judging import services as judging
from trainer.models import TrainingJob

pytestmark = pytest.mark.django_db
GOOD, BAD = "a happy garden with music", "a plain reply here now"


def make_judge(project, **fields):
    fields = {"base_url": "http://127.0.0.1:9/v1", "model": "rule=target-words",
              "min_calibration_tasks": 0, "audit_share": 0.0, **fields}  # fmt: skip
    return judging.judge_create(project=project, name="j1", **fields)


def result(task, first, second):
    order = list(task.task_completions.values_list("completion_id", flat=True))
    return {"task_id": task.id, "shown_order": order, "first": first, "second": second}


def test_people_get_the_tasks_the_judge_sends_them_once_it_has_answered(project, bob):
    tasks = [make_task(project, texts=[GOOD, BAD]) for _ in range(2)]
    judge = make_judge(project)
    job = judging.judge_run(judge=judge)
    assert Task.objects.filter(held_until__isnull=False).count() == 2
    assert task_claim_next(project=project, labeler=bob) is None  # the judge answers first
    # The judge settles the first and contradicts itself on the second: that one is for people.
    judging.judge_batch_store(job_id=job.id, results=[result(tasks[0], "a", "b"),
                                                      result(tasks[1], "a", "a")])  # fmt: skip
    lease = task_claim_next(project=project, labeler=bob)
    assert lease is not None and lease.task_id == tasks[1].id
    assert not Task.objects.filter(held_until__isnull=False).exists()


def test_a_hold_lasts_at_most_hold_s(project, bob):
    task = make_task(project, texts=[GOOD, BAD])
    judging.judge_run(judge=make_judge(project, hold_s=60))
    held = Task.objects.get(id=task.id).held_until
    assert timedelta(seconds=55) < held - timezone.now() <= timedelta(seconds=60)
    Task.objects.filter(id=task.id).update(held_until=timezone.now() - timedelta(seconds=1))
    assert task_claim_next(project=project, labeler=bob).task_id == task.id


def test_a_judging_job_that_ends_gives_back_what_it_did_not_answer(project, bob):
    task = make_task(project, texts=[GOOD, BAD])
    judge = make_judge(project)
    job = judging.judge_run(judge=judge)
    assert services.job_claim(job_id=job.id, worker="w")
    services.job_finish(job_id=job.id, worker="w", status=TrainingJob.Status.FAILED, error="boom")
    assert task_claim_next(project=project, labeler=bob).task_id == task.id
    judge.refresh_from_db()
    assert judge.paused


def test_no_hold_with_hold_s_zero_nor_on_a_task_a_person_is_labeling(project, bob):
    first, second = make_task(project, texts=[GOOD, BAD]), make_task(project, texts=[GOOD, BAD])
    lease = task_claim_next(project=project, labeler=bob)
    assert lease.task_id == first.id
    judging.judge_run(judge=make_judge(project))
    held = set(Task.objects.filter(held_until__isnull=False).values_list("id", flat=True))
    assert held == {second.id}  # bob keeps labeling the one he holds
    Task.objects.update(held_until=None)
    judge2 = judging.judge_create(project=project, name="j2", base_url="http://127.0.0.1:9/v1",
                                  model="m", hold_s=0)  # fmt: skip
    judging.judge_run(judge=judge2)
    assert not Task.objects.filter(held_until__isnull=False).exists()
