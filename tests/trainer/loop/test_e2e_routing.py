"""Routing end to end (issue #10): two rounds of the real loop with `uncertainty` routing, and
the queued pairs are exactly the ones the rule chooses from the stored reward scores.

As in test_e2e.py: the app over HTTP, a real Celery worker (queues default and gpu) that runs
the jobs and the candidates' scoring child on a tiny policy, simulated labelers over the API.
PostgreSQL only: the worker is another process and must see the test database.
"""

import io
import json
import threading
import time

import pytest
from django.core.management import call_command

from annotator.importing import project_import
from annotator.models import Annotation, Kind, Membership, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.trainer.loop.test_e2e import needs_postgres, tiny_base, worker  # noqa: F401
from trainer.algorithms.acquisition import Candidate, choose_pairs
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TRAIN, EVAL = 6, 2
PAIRS, CANDIDATES, HEADS = 4, 2, 2
# Imported tasks, then round 1's routed pairs and its eval pairs; round 2 trains on those.
LABELS = TRAIN + EVAL + PAIRS + EVAL
TIMEOUT_S = 900


@pytest.fixture
def project(tiny_base):  # noqa: F811
    admin = UserFactory(username="routing-admin")
    project = ProjectFactory(
        name="Routing e2e", kind=Kind.PAIRWISE, overlap=1, allow_tie=False, allow_both_bad=False
    )
    MembershipFactory(project=project, user=admin, role=Membership.Role.ADMIN)
    lines = [
        {
            "prompt": [{"role": "user", "content": f"tell me about topic {i}."}],
            "completions": [f"the garden is bright {i}.", f"a cat sits on the mat {i}."],
            "split": "eval" if i >= TRAIN else "train",
        }
        for i in range(TRAIN + EVAL)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    assert project_import(project=project, data=data, fmt="jsonl") == TRAIN + EVAL
    return project


def configure(project, path: str):
    base = ModelVersion.objects.create(project=project, name="tiny-base", role="policy", path=path)
    return loop.loop_configure(
        project=project,
        base_policy=base,
        enabled=True,
        algorithm="raft",
        reward_after=PAIRS,
        train_prompts=TRAIN,
        acquisition="uncertainty",
        candidates=CANDIDATES,
        pairs_per_round=PAIRS,
        reward_config={
            "max_steps": 2, "batch_size": 4, "save_steps": 0, "device": "cpu",
            "ensemble_heads": HEADS,
        },
        policy_config={
            "iterations": 1, "num_samples": 2, "max_new_tokens": 8, "keep_truncated": True,
            "sft_batch_size": 4, "max_length": 64, "device": "cpu",
        },
        generate_config={"max_new_tokens": 8, "device": "cpu"},
    )  # fmt: skip


def wait_for_round_2(project, worker_log) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        rounds = {r.number: r for r in LoopRound.objects.filter(project=project)}
        failed = [r for r in rounds.values() if r.status in (Status.FAILED, Status.STOPPED)]
        if failed:
            pytest.fail(f"round {failed[0].number} {failed[0].status}: {failed[0].error}")
        if 2 in rounds and rounds[2].status == Status.DONE:
            return
        time.sleep(1)
    log = worker_log.read_text(errors="replace")[-3000:]
    pytest.fail(f"round 2 not done in {TIMEOUT_S}s\n{log}")


def expected_pairs(round_: LoopRound) -> list[tuple[int, frozenset]]:
    """What the rule chooses from the scores the worker stored, recomputed here."""
    from annotator.models import Completion

    jobs = [round_.generate_jobs["new"], round_.generate_jobs["previous"]]
    train = set(loop.round_train_prompts(round_))
    groups: dict[int, list[Candidate]] = {}
    scores = round_.acquisition["scores"]
    for c in Completion.objects.filter(meta__job__in=jobs, prompt_id__in=train).order_by("id"):
        groups.setdefault(c.prompt_id, []).append(Candidate(c.id, tuple(scores[str(c.id)]), c.text))
    picks = choose_pairs("uncertainty", groups, budget=PAIRS)
    return [(p.prompt, frozenset((p.a, p.b))) for p in picks]


def test_two_rounds_queue_the_pairs_uncertainty_chooses(live_server, worker, project, tiny_base):  # noqa: F811
    policy = configure(project, tiny_base)
    out = io.StringIO()
    args = ["--project", str(project.id), "--url", live_server.url, "--count", "2", "--seed", "1"]
    args += ["--oracle", "words-and-length", "--target-words", "garden,bright", "--noise", "0"]
    args += ["--max-annotations", str(LABELS), "--poll", "0.3"]
    labelers = threading.Thread(
        target=call_command, args=("simulate_labelers", *args), kwargs={"stdout": out}
    )
    labelers.start()
    try:
        wait_for_round_2(project, worker)
    finally:
        labelers.join(timeout=60)

    for number in (1, 2):
        round_ = LoopRound.objects.get(project=project, number=number)
        info = round_.acquisition
        assert info["status"] == "done" and info["rule"] == "uncertainty", info
        assert info["reward_model"] == round_.reward_job.output_model_id
        assert info["heads"] == HEADS and info["pairs"] == PAIRS
        for job_id in (round_.generate_jobs["new"], round_.generate_jobs["previous"]):
            assert TrainingJob.objects.get(id=job_id).config["num_samples"] == CANDIDATES
        routed = list(
            Task.objects.filter(project=project, round=number, meta__acquisition__isnull=False)
            .prefetch_related("completions")
            .order_by("-priority")
        )
        queued = [(t.prompt_id, frozenset(c.id for c in t.completions.all())) for t in routed]
        assert queued == expected_pairs(round_)
        assert [t.meta["acquisition"]["rank"] for t in routed] == list(range(1, PAIRS + 1))
        assert all(t.priority > policy.task_priority for t in routed)
        for task in routed:
            assert set(task.meta["acquisition"]["candidates"]) >= {
                c.id for c in task.completions.all()
            }
            assert len(task.meta["acquisition"]["candidates"]) == 2 * CANDIDATES
        # Eval prompts keep their new-versus-previous measurement pair.
        evals = Task.objects.filter(project=project, round=number, prompt__split="eval")
        assert evals.count() == EVAL
        assert round_.tasks_created == PAIRS + EVAL
    # Round 1's routed pairs were labelled and trained round 2's reward model.
    assert Annotation.objects.filter(task__round=1, task__meta__acquisition__isnull=False).exists()
