"""Routing end to end (issue #10): two rounds of the real loop with `uncertainty` routing, and
the queued pairs are exactly the ones the rule chooses from the stored reward scores.

As in test_e2e.py: the app over HTTP, a real Celery worker (queues default and gpu) that runs
the jobs and the candidates' scoring child on a tiny policy, simulated labelers over the API.
PostgreSQL only: the worker is another process and must see the test database.
"""

import io
import threading

import pytest
from django.core.management import call_command

from annotator.models import Annotation, Kind, Task
from tests.trainer.loop.e2e import imported_project, wait_for_round
from trainer.algorithms.acquisition import Candidate, choose_pairs
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("needs_postgres"),
]

TRAIN, EVAL = 6, 2
PAIRS, CANDIDATES, HEADS = 4, 2, 2
# Imported tasks, then round 1's routed pairs and its eval pairs; round 2 trains on those.
LABELS = TRAIN + EVAL + PAIRS + EVAL
TIMEOUT_S = 900


@pytest.fixture
def project(tiny_base):
    return imported_project(
        name="Routing e2e", admin="routing-admin", train=TRAIN, eval=EVAL,
        completions=lambda i: [f"the garden is bright {i}.", f"a cat sits on the mat {i}."],
        kind=Kind.PAIRWISE, overlap=1, allow_tie=False, allow_both_bad=False,
    )  # fmt: skip


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


def test_two_rounds_queue_the_pairs_uncertainty_chooses(live_server, worker, project, tiny_base):
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
        wait_for_round(project, worker, 2, TIMEOUT_S)
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
