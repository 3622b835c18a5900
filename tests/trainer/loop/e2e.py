"""What the loop's end-to-end tests (test_e2e*.py) share besides their fixtures (conftest.py):
an imported project and waiting for a round with the worker's log on failure."""

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from annotator.importing import project_import
from annotator.models import Membership
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from trainer.models import LoopRound, TrainingJob

Status = LoopRound.Status


def imported_project(
    *,
    name: str,
    admin: str,
    train: int,
    eval: int,
    completions: Callable[[int], list[str]],
    **fields,
):
    """A project with an admin and ``train + eval`` imported chat prompts ("tell me about topic
    i."), each with ``completions(i)``; the last ``eval`` in the eval split."""
    project = ProjectFactory(name=name, **fields)
    MembershipFactory(project=project, user=UserFactory(username=admin), role=Membership.Role.ADMIN)
    lines = [
        {
            "prompt": [{"role": "user", "content": f"tell me about topic {i}."}],
            "completions": completions(i),
            "split": "eval" if i >= train else "train",
        }
        for i in range(train + eval)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    assert project_import(project=project, data=data, fmt="jsonl") == train + eval
    return project


def wait_for_round(project, worker_log: Path, number: int, timeout_s: float) -> None:
    """Until round ``number`` is done; fails at once on a failed or stopped round, and with the
    rounds, the jobs and the worker's log after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rounds = {r.number: r for r in LoopRound.objects.filter(project=project)}
        failed = [r for r in rounds.values() if r.status in (Status.FAILED, Status.STOPPED)]
        if failed:
            pytest.fail(f"round {failed[0].number} {failed[0].status}: {failed[0].error}")
        if number in rounds and rounds[number].status == Status.DONE:
            return
        time.sleep(1)
    rounds = list(LoopRound.objects.filter(project=project).values("number", "status"))
    jobs = list(TrainingJob.objects.filter(project=project).values("id", "kind", "status"))
    log = worker_log.read_text(errors="replace")[-3000:]
    pytest.fail(f"round {number} not done in {timeout_s}s: {rounds} {jobs}\n{log}")


def assert_succeeded(job: TrainingJob) -> None:
    assert job.status == TrainingJob.Status.SUCCEEDED, f"{job}: {job.error}\n{job.log_tail}"
