"""Routing (issue #10): the loop queues the pairs its acquisition rule chooses among N
candidates per train prompt, with jobs finished by hand and the scoring child stubbed."""

import json
from unittest import mock

import pytest

from annotator.models import Kind, Prompt, Task
from tests.trainer.loop.test_services import current, label
from trainer import services
from trainer.loop import measure
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status
CANDIDATES = 3


@pytest.fixture(autouse=True)
def no_broker():
    with (
        mock.patch("trainer.tasks.run_training_job.delay"),
        mock.patch("trainer.tasks.advance_loop.delay"),
        mock.patch("trainer.tasks.score_round_samples.apply_async"),
        mock.patch("trainer.tasks.score_round_candidates.apply_async") as scoring,
    ):
        yield scoring


def text(job: TrainingJob, prompt_id: int, k: int) -> str:
    return f"{job.input_model.name} says {prompt_id} #{k}"


def finish(job: TrainingJob):
    job.refresh_from_db()
    services.job_claim(job_id=job.id, worker="w")
    if job.kind == "generate":
        out = services.model_dir(job)
        out.mkdir(parents=True, exist_ok=True)
        rows = [
            {"prompt_id": pid, "completion": text(job, pid, k), "sample_index": k}
            for pid in job.dataset["prompt_ids"]
            for k in range(job.config.get("num_samples", 1))
        ]
        (out / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    services.job_finish(job_id=job.id, worker="w", status=TrainingJob.Status.SUCCEEDED)


def make_policy(tmp_path, settings, **routing):
    from tests.factories import ProjectFactory

    settings.PREFLOOP_MODELS_DIR = tmp_path
    project = ProjectFactory(kind=Kind.PAIRWISE, overlap=1)
    for i in range(6):
        Prompt.objects.create(project=project, text=f"train {i}")
    for i in range(2):
        Prompt.objects.create(project=project, text=f"eval {i}", split="eval")
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/base")
    return loop.loop_configure(
        project=project, base_policy=base, enabled=True, algorithm="raft", reward_after=5,
        train_prompts=4, **routing,
    )  # fmt: skip


def run_to_generated(policy) -> LoopRound:
    label(policy.project, 5)
    loop.loop_advance(project_id=policy.project_id)
    finish(current(policy).reward_job)
    loop.loop_advance(project_id=policy.project_id)
    finish(current(policy).policy_job)
    assert loop.loop_advance(project_id=policy.project_id) == Status.GENERATING
    round_ = current(policy)
    for job in TrainingJob.objects.filter(id__in=round_.generate_jobs.values()):
        assert job.config["num_samples"] == policy.candidates
        finish(job)
    return round_


def fake_heads(scores_by_text: dict):
    """score_in_child stand-in: each completion's heads from its text."""

    def score(*, model, prompts, completions, device="auto", heads=False):
        assert heads
        return [list(scores_by_text(c)) for c in completions]

    return score


@pytest.mark.django_db
def test_it_queues_the_uncertain_pairs_after_scoring_the_candidates(tmp_path, settings, no_broker):
    policy = make_policy(
        tmp_path, settings, acquisition="uncertainty", candidates=CANDIDATES, pairs_per_round=2
    )
    round_ = run_to_generated(policy)
    # The candidates are asked for, the round waits for their scores.
    assert loop.loop_advance(project_id=policy.project_id) is None
    round_.refresh_from_db()
    assert round_.status == Status.GENERATING and round_.acquisition["status"] == "queued"
    train = loop.round_train_prompts(round_)
    assert len(train) == 4

    # Hand-built rewards: on the first train prompt two candidates tie (margin 0), on the
    # second the closest pair is 0.5 apart, elsewhere every pair is far apart.
    close = {train[0]: {0: 1.0, 1: 1.0}, train[1]: {1: 0.0, 2: 0.5}}

    def heads(completion: str):
        pid, k = int(completion.split(" says ")[1].split(" #")[0]), int(completion[-1])
        new = "base" not in completion
        if k in close.get(pid, {}) and new:
            return (close[pid][k], close[pid][k])
        return (10.0 * k + 40.0 * new + 100.0 * pid, 10.0 * k + 40.0 * new + 100.0 * pid)

    with mock.patch.object(measure, "score_in_child", side_effect=fake_heads(heads)):
        result = measure.round_candidates_measure(round_id=round_.id)
    assert result["heads"] == 2 and result["n"] == 4 * 2 * CANDIDATES
    round_.refresh_from_db()
    assert round_.status == Status.DONE
    routed = list(Task.objects.filter(round=1, meta__acquisition__isnull=False))
    assert len(routed) == 2
    by_rank = sorted(routed, key=lambda t: t.meta["acquisition"]["rank"])
    assert [t.prompt_id for t in by_rank] == [train[0], train[1]]
    first = sorted(by_rank[0].completions.values_list("text", flat=True))
    assert first == sorted(text_of(round_, "new", train[0], k) for k in (0, 1))
    assert by_rank[0].priority > by_rank[1].priority > policy.task_priority
    info = by_rank[0].meta["acquisition"]
    assert info["rule"] == "uncertainty" and info["score"] == pytest.approx(1.0)
    assert len(info["candidates"]) == 2 * CANDIDATES and info["margin"] == pytest.approx(0.0)
    # Eval prompts keep their measurement pair (new versus previous, first samples).
    evals = Task.objects.filter(round=1, prompt__split="eval")
    assert evals.count() == 2 and all("acquisition" not in t.meta for t in evals)
    assert all(t.meta["loop"]["against"] == "previous" for t in evals)
    assert round_.tasks_created == 4
    assert round_.acquisition["rule"] == "uncertainty" and round_.acquisition["pairs"] == 2


def text_of(round_, role, prompt_id, k):
    job = TrainingJob.objects.get(id=round_.generate_jobs[role])
    return text(job, prompt_id, k)


@pytest.mark.django_db
def test_random_routing_needs_no_scores_and_keeps_the_budget(tmp_path, settings, no_broker):
    policy = make_policy(tmp_path, settings, candidates=2, pairs_per_round=3)
    round_ = run_to_generated(policy)
    assert loop.loop_advance(project_id=policy.project_id) == Status.DONE
    no_broker.assert_not_called()
    routed = Task.objects.filter(round=1, meta__acquisition__rule="random")
    assert routed.count() == 3
    assert len({t.prompt_id for t in routed}) == 3
    round_.refresh_from_db()
    assert round_.tasks_created == 3 + 2


@pytest.mark.django_db
def test_a_failed_scoring_fails_the_round(tmp_path, settings):
    policy = make_policy(tmp_path, settings, acquisition="disagreement", candidates=2)
    round_ = run_to_generated(policy)
    loop.loop_advance(project_id=policy.project_id)
    with (
        mock.patch.object(measure, "score_in_child", side_effect=RuntimeError("out of memory")),
        pytest.raises(RuntimeError),
    ):
        measure.round_candidates_measure(round_id=round_.id)
    round_.refresh_from_db()
    assert round_.status == Status.FAILED and "out of memory" in round_.error


@pytest.mark.django_db
def test_without_routing_every_train_prompt_gets_new_versus_previous(tmp_path, settings):
    policy = make_policy(tmp_path, settings)
    run_to_generated(policy)
    assert loop.loop_advance(project_id=policy.project_id) == Status.DONE
    tasks = Task.objects.filter(round=1)
    assert tasks.count() == 4 + 2
    assert all("acquisition" not in t.meta for t in tasks)


@pytest.mark.django_db
def test_a_reward_ensembles_spread_on_the_samples_feeds_the_warning(project):
    from annotator.models import Completion
    from tests.trainer.loop.test_selectors import judge, make_round, policy_model
    from trainer.loop import selectors

    base = policy_model(project, "base")
    r1 = make_round(project, 1, base)
    prompt = Prompt.objects.create(project=project, text="shared")
    for role, text in (("new", "n1"), ("previous", "p1")):
        Completion.objects.create(
            prompt=prompt, text=text, meta={"job": r1.generate_jobs[role], "sample_index": 0}
        )
    # The new policy's sample scores higher, and the heads disagree on it far more.
    by_text = {"n1": [2.0, 4.0, 0.0], "p1": [0.5, 0.5, 0.6]}

    def score(*, model, prompts, completions, device="auto", heads=False):
        assert heads
        return [by_text[c] for c in completions]

    with mock.patch.object(measure, "score_in_child", side_effect=score):
        result = measure.round_scores_measure(round_id=r1.id)
    assert result["new"] == pytest.approx(2.0)
    assert result["spread_new"] == pytest.approx(2.0) and result["spread_previous"] < 0.1
    judge(r1, "previous", base, "WLLLLWLLLL")
    row = selectors.loop_state(project=project).rounds[0]
    assert "heads also disagree more on the new policy's samples" in row.warning
