"""The whole loop, end to end: two rounds run by themselves, from imported prompts to round-2
tasks in the queue (issue #5).

Nothing is finished by hand. The app is served over HTTP (pytest-django's live_server), a real
Celery worker (another process, queues default and gpu, solo pool) runs the loop's transitions
and its jobs on a tiny local policy, and simulated labelers answer over the public API. The
test only waits, then checks every link: rounds, jobs, model versions and their parents,
tasks tagged with their round and both models, completions that name their model, and a
round-2 task that a labeler is actually served.

PostgreSQL only: the worker is another process and must see the test database.
"""

import io
import json
import threading
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from annotator.models import Annotation, Completion, Kind, Membership, Prompt, Task
from tests.factories import MembershipFactory, UserFactory
from tests.trainer.loop.e2e import assert_succeeded, imported_project, wait_for_round
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("needs_postgres"),
]

TRAIN, EVAL = 4, 2  # prompts; each imported with two completions, so one task each
IMPORTED = TRAIN + EVAL
# Round 1 trains on the imported train-prompt tasks' labels (eval-prompt labels are held out).
REWARD_AFTER = TRAIN
ROUND_TASKS = TRAIN + EVAL  # train_prompts=TRAIN plus every eval prompt
LABELS = IMPORTED + ROUND_TASKS  # then round 2 trains on round 1's tasks; labelers stop
# Two rounds of jobs plus the measurements the loop makes by itself (round 1's samples scored,
# its reward model's fresh accuracy), each a child process that loads torch.
ROUND_TIMEOUT_S = 420


@pytest.fixture
def project(tiny_base):
    # No ties: every simulated answer is a usable comparison, so the label counts are exact.
    return imported_project(
        name="Loop e2e", admin="loop-admin", train=TRAIN, eval=EVAL,
        completions=lambda i: [f"the garden is bright {i}.", f"a cat sits on the mat {i}."],
        kind=Kind.PAIRWISE, overlap=1, allow_tie=False, allow_both_bad=False,
    )  # fmt: skip


def configure_loop(project, tiny_base):
    base = ModelVersion.objects.create(
        project=project, name="tiny-base", role=ModelVersion.Role.POLICY, path=tiny_base
    )
    return loop.loop_configure(
        project=project,
        base_policy=base,
        enabled=True,
        algorithm="raft",
        reward_after=REWARD_AFTER,
        train_prompts=TRAIN,
        compare_with_base=True,
        reward_config={"max_steps": 2, "batch_size": 4, "save_steps": 0, "device": "cpu"},
        policy_config={
            "iterations": 1,
            "num_samples": 2,
            "max_new_tokens": 8,
            "keep_truncated": True,  # the tiny policy rarely ends a reply in 8 tokens
            "sft_batch_size": 4,
            "max_length": 64,
            "device": "cpu",
        },
        generate_config={"max_new_tokens": 8, "device": "cpu"},
    )


def start_labelers(project, url: str) -> tuple[threading.Thread, io.StringIO]:
    """Two simulated labelers over HTTP that poll for new tasks and stop after LABELS."""
    out = io.StringIO()
    args = ["--project", str(project.id), "--url", url, "--count", "2", "--seed", "1"]
    args += ["--oracle", "words-and-length", "--target-words", "garden,bright", "--noise", "0"]
    args += ["--max-annotations", str(LABELS), "--poll", "0.3"]
    thread = threading.Thread(
        target=call_command, args=("simulate_labelers", *args), kwargs={"stdout": out}
    )
    thread.start()
    return thread, out


def next_task(url: str, project, user) -> tuple[int, dict]:
    token, _ = Token.objects.get_or_create(user=user)
    request = urllib.request.Request(  # noqa: S310 -- the test's own server
        f"{url}/api/v1/projects/{project.id}/tasks/next/",
        method="POST",
        headers={"Authorization": f"Token {token.key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = response.read()
        return response.status, json.loads(body) if body else {}


def test_two_rounds_run_by_themselves_to_round_2_tasks_in_the_queue(
    live_server, worker, project, tiny_base
):
    policy = configure_loop(project, tiny_base)
    labelers, out = start_labelers(project, live_server.url)
    try:
        wait_for_round(project, worker, 2, ROUND_TIMEOUT_S)
    finally:
        labelers.join(timeout=60)
    assert f"{LABELS} annotations by 2 labeler(s); errors: none" in out.getvalue(), out.getvalue()

    # Rounds: 1 and 2 done, 3 collecting on round 2's tasks.
    r1, r2, r3 = LoopRound.objects.filter(project=project).order_by("number")
    assert (r1.number, r2.number, r3.number) == (1, 2, 3)
    assert (r1.status, r2.status, r3.status) == (Status.DONE, Status.DONE, Status.COLLECTING)
    assert all(r.error == "" for r in (r1, r2, r3))
    base = policy.base_policy

    # Jobs and model versions, linked both ways.
    policies = {}
    # Every train-prompt label so far, frozen: none on an eval prompt.
    for round_, labels in ((r1, TRAIN), (r2, 2 * TRAIN)):
        reward, train = round_.reward_job, round_.policy_job
        assert_succeeded(reward)
        assert_succeeded(train)
        assert reward.kind == "reward" and train.kind == "raft"
        assert reward.snapshot_rows == labels  # every label so far, frozen
        reward_model, new = reward.output_model, train.output_model
        assert reward_model.role == "reward" and reward_model.job_id == reward.id
        assert reward_model.parent_id == base.id
        assert new.role == "policy" and new.job_id == train.id
        assert train.reward_model_id == reward_model.id
        assert train.config["reward_model_path"] == reward_model.path
        assert train.input_model_id == round_.previous_policy_id
        assert new.parent_id == round_.previous_policy_id
        policies[round_.number] = new
    assert r1.previous_policy_id == base.id
    assert r2.previous_policy_id == policies[1].id
    assert policies[2].parent_id == policies[1].id  # round 2 trained on from round 1's policy
    assert r3.previous_policy_id == policies[2].id

    # Generate jobs: new and previous (and, once the previous is not the base, the base).
    expected = {
        1: {"new": policies[1].id, "previous": base.id},
        2: {"new": policies[2].id, "previous": policies[1].id, "base": base.id},
    }
    for round_ in (r1, r2):
        jobs = {role: TrainingJob.objects.get(id=i) for role, i in round_.generate_jobs.items()}
        assert {role: j.input_model_id for role, j in jobs.items()} == expected[round_.number]
        for job in jobs.values():
            assert_succeeded(job)
            assert job.kind == "generate" and job.dataset == {"prompt_ids": round_.prompt_ids}
            generated = Completion.objects.filter(meta__job=job.id)
            assert generated.count() == len(round_.prompt_ids)
            assert set(generated.values_list("model_version_id", flat=True)) == {job.input_model_id}
        evals = set(
            Prompt.objects.filter(project=project, split="eval").values_list("id", flat=True)
        )
        assert evals <= set(round_.prompt_ids) and len(round_.prompt_ids) == TRAIN + EVAL

    # Round tasks: tagged with the round and both models, whose completions carry those ids.
    for round_, against in ((r1, ["previous"]), (r2, ["previous", "base"])):
        tasks = Task.objects.filter(project=project, round=round_.number).prefetch_related(
            "completions"
        )
        assert tasks.count() == round_.tasks_created == ROUND_TASKS * len(against)
        new_id = policies[round_.number].id
        for task in tasks:
            meta = task.meta["loop"]
            assert meta["round"] == round_.number and meta["new"] == new_id
            assert meta["other"] == expected[round_.number][meta["against"]]
            assert task.kind == Kind.PAIRWISE and task.priority == policy.task_priority
            models = sorted(c.model_version_id for c in task.completions.all())
            assert models == sorted([new_id, meta["other"]])
            assert {c.prompt_id for c in task.completions.all()} == {task.prompt_id}
        assert sorted({t.meta["loop"]["against"] for t in tasks}) == sorted(against)

    # The labels: the imported tasks trained round 1, round 1's tasks trained round 2.
    labels = Annotation.objects.filter(task__project=project)
    assert labels.count() == LABELS
    assert labels.filter(task__round=None).count() == IMPORTED
    assert labels.filter(task__round=1).count() == ROUND_TASKS
    assert not labels.filter(task__round=2).exists()

    # No eval prompt reached a training job's rows.
    evals = set(Prompt.objects.filter(project=project, split="eval").values_list("id", flat=True))
    for job in TrainingJob.objects.filter(project=project).exclude(kind="generate"):
        rows = (Path(job.output_dir) / "rows.jsonl").read_text().splitlines()
        assert rows and not {json.loads(row)["prompt_id"] for row in rows} & evals, job

    # Measured by themselves on the worker: round 1's samples under its reward model, and
    # that model's accuracy on the labels round 2 collected.
    r1.refresh_from_db()
    assert r1.scores["status"] == "done", r1.scores
    assert r1.scores["reward_model"] == r1.reward_job.output_model_id
    assert isinstance(r1.scores["new"], float) and isinstance(r1.scores["previous"], float)
    fresh = ModelVersion.objects.get(id=r1.reward_job.output_model_id).metrics["fresh_accuracy"]
    assert fresh["status"] == "done" and fresh["n"] >= 1, fresh

    # And round 2's tasks are served: a labeler asking now gets one.
    labeler = UserFactory(username="late-labeler")
    MembershipFactory(project=project, user=labeler, role=Membership.Role.LABELER)
    status, task = next_task(live_server.url, project, labeler)
    assert status == 200
    assert Task.objects.get(id=task["id"]).round == 2
    assert {c["id"] for c in task["completions"]} <= set(
        Completion.objects.filter(meta__job__in=list(r2.generate_jobs.values())).values_list(
            "id", flat=True
        )
    )
