"""The loop's state machine, with jobs finished by hand (the real jobs are tested elsewhere)."""

import json
import threading
from unittest import mock

import pytest
from django.db import connection

from annotator.models import Annotation, Kind, Prompt, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from trainer import services
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status


@pytest.fixture(autouse=True)
def no_broker():
    with (
        mock.patch("trainer.tasks.run_training_job.delay"),
        mock.patch("trainer.tasks.advance_loop.delay") as advance,
    ):
        yield advance


def label(project, n: int, *, verdict="preferred"):
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler)
    for _ in range(n):
        task = make_task(project)
        first, second = task.completions.order_by("id")
        Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict=verdict,
            chosen=first if verdict == "preferred" else None,
            rejected=second if verdict == "preferred" else None,
        )


def finish(job: TrainingJob, status=TrainingJob.Status.SUCCEEDED, error=""):
    job.refresh_from_db()
    services.job_claim(job_id=job.id, worker="w")
    if job.kind == "generate":
        out = services.model_dir(job)
        out.mkdir(parents=True, exist_ok=True)
        rows = [
            {
                "prompt_id": pid,
                "completion": f"{job.input_model.name} says {pid}",
                "sample_index": 0,
            }
            for pid in job.dataset["prompt_ids"]
        ]
        (out / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    services.job_finish(job_id=job.id, worker="w", status=status, error=error)


@pytest.fixture
def policy(db, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = tmp_path
    project = ProjectFactory(kind=Kind.PAIRWISE, overlap=1)
    for i in range(6):
        Prompt.objects.create(project=project, text=f"train {i}")
    for i in range(2):
        Prompt.objects.create(project=project, text=f"eval {i}", split="eval")
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/base")
    return loop.loop_configure(
        project=project,
        base_policy=base,
        enabled=True,
        algorithm="raft",
        reward_after=5,
        train_prompts=3,
        compare_with_base=True,
    )


def current(policy) -> LoopRound:
    return LoopRound.objects.filter(project=policy.project).order_by("-number").first()


def advance(policy):
    return loop.loop_advance(project_id=policy.project_id)


def test_it_waits_for_enough_new_comparisons(policy):
    label(policy.project, 4)
    label(policy.project, 3, verdict="tie")  # ties are not usable comparisons
    assert advance(policy) is None
    assert current(policy).status == Status.COLLECTING
    label(policy.project, 1)
    assert advance(policy) == Status.REWARD
    round_ = current(policy)
    assert round_.reward_job.kind == "reward"
    assert round_.reward_job.config["model_name_or_path"] == "/base"
    assert round_.reward_job.dataset == {}  # no source weights set: every label weighs 1


def test_a_retrain_request_skips_the_threshold(policy):
    loop.loop_request_retrain(policy=policy)
    assert advance(policy) == Status.REWARD
    policy.refresh_from_db()
    assert not policy.retrain_requested


def test_a_full_round_queues_new_versus_previous_and_base(policy):
    label(policy.project, 5)
    advance(policy)
    round_ = current(policy)
    finish(round_.reward_job)
    assert advance(policy) == Status.POLICY
    round_.refresh_from_db()
    job = round_.policy_job
    reward_model = round_.reward_job.output_model
    assert (job.kind, job.input_model.name) == ("raft", "base")
    assert job.config["reward_model_path"] == reward_model.path

    finish(job)
    # Round 1's previous policy is the base, so there is no separate base comparison.
    assert advance(policy) == Status.GENERATING
    round_.refresh_from_db()
    assert set(round_.generate_jobs) == {"new", "previous"}
    evals = set(Prompt.objects.filter(split="eval").values_list("id", flat=True))
    assert len(round_.prompt_ids) == 3 + 2 and evals <= set(round_.prompt_ids)

    generate = TrainingJob.objects.filter(id__in=round_.generate_jobs.values())
    for g in generate:
        finish(g)
    before = Task.objects.count()
    assert advance(policy) == Status.DONE
    round_.refresh_from_db()
    assert round_.tasks_created == 5 and Task.objects.count() == before + 5
    task = Task.objects.filter(round=1).first()
    texts = sorted(task.completions.values_list("text", flat=True))
    new_model = TrainingJob.objects.get(id=job.id).output_model
    assert texts == sorted(
        [f"base says {task.prompt_id}", f"{new_model.name} says {task.prompt_id}"]
    )
    assert task.meta["loop"] == {
        "round": 1,
        "new": new_model.id,
        "other": policy.base_policy_id,
        "against": "previous",
    }
    nxt = current(policy)
    assert (nxt.number, nxt.status, nxt.previous_policy) == (2, Status.COLLECTING, new_model)


@pytest.mark.parametrize("algorithm", ["ppo", "rloo", "grpo", "dpo"])
def test_the_policy_step_runs_the_loops_algorithm(policy, algorithm):
    policy.algorithm = algorithm
    policy.policy_config = {"learning_rate": 1e-5}
    policy.save()
    label(policy.project, 5)
    advance(policy)
    round_ = current(policy)
    finish(round_.reward_job)
    assert advance(policy) == Status.POLICY
    job = TrainingJob.objects.get(id=current(policy).policy_job_id)
    assert (job.kind, job.input_model.name, job.config["learning_rate"]) == (
        algorithm,
        "base",
        1e-5,
    )
    if algorithm == "dpo":  # trains on the labels themselves: no reward model
        assert "reward_model_path" not in job.config
    else:
        reward_model = TrainingJob.objects.get(id=round_.reward_job_id).output_model
        assert job.config["reward_model_path"] == reward_model.path


def test_a_failed_job_stops_the_round_with_its_reason(policy):
    loop.loop_request_retrain(policy=policy)
    advance(policy)
    finish(current(policy).reward_job, status=TrainingJob.Status.FAILED, error="out of memory")
    assert advance(policy) is None
    round_ = current(policy)
    assert round_.status == Status.FAILED and "out of memory" in round_.error


def test_a_paused_loop_makes_no_transition(policy):
    loop.loop_request_retrain(policy=policy)
    loop.loop_pause(policy=policy, paused=True)
    assert advance(policy) is None
    loop.loop_pause(policy=policy, paused=False)
    assert advance(policy) == Status.REWARD


def test_stop_cancels_the_running_job(policy):
    loop.loop_request_retrain(policy=policy)
    advance(policy)
    loop.loop_stop(policy=policy)
    round_ = current(policy)
    assert round_.status == Status.STOPPED
    assert round_.reward_job.status == TrainingJob.Status.CANCELLED
    assert advance(policy) is None


def test_an_annotation_wakes_the_loop(policy, no_broker, django_capture_on_commit_callbacks):
    from annotator.services import annotation_submit, task_claim_next

    project = policy.project
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler)
    task = make_task(project)
    task_claim_next(project=project, labeler=labeler)
    with django_capture_on_commit_callbacks(execute=True):
        annotation_submit(task=task, labeler=labeler, answer={"choice": "a"})
    no_broker.assert_called_once_with(project.id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_threshold_triggers_one_reward_job_under_concurrency(tmp_path, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for real concurrent transactions")
    settings.PREFLOOP_MODELS_DIR = tmp_path
    project = ProjectFactory()
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    policy = loop.loop_configure(project=project, base_policy=base, enabled=True, reward_after=3)
    label(project, 3)
    loop.loop_current_round(policy=policy)
    barrier = threading.Barrier(16)
    results = []

    def worker():
        barrier.wait()
        results.append(loop.loop_advance(project_id=project.id))
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Status.REWARD) == 1
    assert TrainingJob.objects.filter(kind="reward").count() == 1


@pytest.mark.django_db
class TestApi:
    def test_it_configures_and_runs_the_loop(self, alice, project, api_as, no_broker):
        base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
        client = api_as(alice)
        url = f"/api/v1/projects/{project.id}/loop/"
        resp = client.put(
            url,
            {"enabled": True, "base_policy": base.id, "algorithm": "dpo", "reward_after": 50},
            format="json",
        )
        assert resp.status_code == 200, resp.content
        assert resp.json()["policy"]["algorithm"] == "dpo" and resp.json()["rounds"] == []
        resp = client.post(url + "actions/", {"action": "retrain"}, format="json")
        assert resp.status_code == 200
        assert resp.json()["rounds"][0]["status"] == "reward"
        resp = client.post(url + "actions/", {"action": "stop"}, format="json")
        assert resp.json()["rounds"][0]["status"] == "stopped"
        assert resp.json()["policy"]["enabled"] is False

    def test_it_takes_grpo_and_checks_its_config(self, alice, project, api_as):
        base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
        url = f"/api/v1/projects/{project.id}/loop/"
        body = {"base_policy": base.id, "algorithm": "grpo"}
        bad = api_as(alice).put(url, {**body, "policy_config": {"clip": 0.2}}, format="json")
        assert bad.status_code == 400 and "clip" in str(bad.json())
        good = {**body, "policy_config": {"loss_type": "dr_grpo", "num_generations": 4}}
        resp = api_as(alice).put(url, good, format="json")
        assert resp.status_code == 200, resp.content
        assert resp.json()["policy"]["algorithm"] == "grpo"

    def test_a_base_policy_must_be_a_policy_of_the_project(self, alice, project, api_as):
        other = ModelVersion.objects.create(
            project=ProjectFactory(), name="x", role="policy", path="/x"
        )
        resp = api_as(alice).put(
            f"/api/v1/projects/{project.id}/loop/", {"base_policy": other.id}, format="json"
        )
        assert resp.status_code == 400 and "base_policy" in resp.json()

    def test_labelers_and_outsiders_are_refused(self, bob, charlie, project, api_as):
        url = f"/api/v1/projects/{project.id}/loop/"
        assert api_as(bob).get(url).status_code == 403
        assert api_as(charlie).get(url).status_code == 404

    def test_an_action_needs_a_loop(self, alice, project, api_as):
        resp = api_as(alice).post(
            f"/api/v1/projects/{project.id}/loop/actions/", {"action": "pause"}, format="json"
        )
        assert resp.status_code == 409


def test_enabling_again_after_a_failed_round_opens_a_new_round(policy):
    loop.loop_request_retrain(policy=policy)
    advance(policy)
    finish(current(policy).reward_job, status=TrainingJob.Status.FAILED, error="disk full")
    advance(policy)
    loop.loop_configure(project=policy.project, base_policy=policy.base_policy, enabled=True)
    fresh = current(policy)
    assert (fresh.number, fresh.status) == (2, Status.COLLECTING)
    assert fresh.previous_policy == policy.base_policy
    loop.loop_request_retrain(policy=policy)
    assert advance(policy) == Status.REWARD


def run_round(policy) -> LoopRound:
    """One whole round, every job succeeding; returns it done."""
    label(policy.project, policy.reward_after)
    advance(policy)
    round_ = current(policy)
    finish(round_.reward_job)
    advance(policy)
    round_.refresh_from_db()
    finish(round_.policy_job)
    advance(policy)
    round_.refresh_from_db()
    for job in TrainingJob.objects.filter(id__in=round_.generate_jobs.values()):
        finish(job)
    assert advance(policy) == Status.DONE
    round_.refresh_from_db()
    return round_


def policy_step(policy) -> TrainingJob:
    """Run the current round up to its policy job, which it returns."""
    label(policy.project, policy.reward_after)
    advance(policy)
    finish(current(policy).reward_job)
    assert advance(policy) == Status.POLICY
    return TrainingJob.objects.get(id=current(policy).policy_job_id)


@pytest.mark.parametrize("algorithm", ["ppo", "rloo", "grpo"])
def test_from_round_2_the_kl_reference_is_the_base_policy(policy, algorithm):
    policy.algorithm = algorithm
    policy.save()
    first = run_round(policy)

    job = policy_step(policy)

    second = current(policy)
    assert job.input_model == first.policy_job.output_model  # it starts from round 1's policy
    assert job.config["ref_model_path"] == policy.base_policy.path == "/base"
    assert second.reference_policy == policy.base_policy


def test_the_previous_rounds_policy_can_be_the_reference(policy):
    policy.algorithm, policy.reference = "ppo", "previous"
    policy.save()
    first = run_round(policy)

    job = policy_step(policy)

    assert job.config["ref_model_path"] == first.policy_job.output_model.path
    assert current(policy).reference_policy == first.policy_job.output_model


@pytest.mark.parametrize(("algorithm", "beta"), [("grpo", loop.LOOP_GRPO_BETA), ("rloo", 0.05)])
def test_grpo_in_the_loop_has_a_kl_penalty_by_default(policy, algorithm, beta):
    policy.algorithm = algorithm
    policy.save()

    job = policy_step(policy)

    assert job.config["beta"] == beta > 0
    # A beta the admin set is kept.
    policy.policy_config = {"beta": 0.0}
    policy.save()
    assert loop.policy_job_config(policy, policy.base_policy)["beta"] == 0.0


def test_raft_and_dpo_rounds_have_no_kl_reference(policy):
    for algorithm in ("raft", "dpo"):
        policy.algorithm = algorithm
        assert loop.kl_reference(policy, current(policy)) is None


def test_a_round_measures_by_itself_on_a_gpu_worker(policy, django_capture_on_commit_callbacks):
    """When a round ends, its samples are scored by its reward model; when the next round has
    its labels, the last reward model's fresh accuracy is measured. Both on the gpu queue."""
    score = mock.patch("trainer.tasks.score_round_samples.apply_async")
    fresh = mock.patch("trainer.tasks.measure_fresh_accuracy.apply_async")
    with score as score, fresh as fresh:
        with django_capture_on_commit_callbacks(execute=True):
            first = run_round(policy)
        score.assert_called_once_with((first.id,), queue="gpu")
        assert first.scores == {"status": "queued"}
        fresh.assert_not_called()  # no earlier reward model
        label(policy.project, policy.reward_after)
        with django_capture_on_commit_callbacks(execute=True):
            assert advance(policy) == Status.REWARD
    reward_model = first.reward_job.output_model
    fresh.assert_called_once_with((reward_model.id,), queue="gpu")
    reward_model.refresh_from_db()
    assert reward_model.metrics["fresh_accuracy"]["status"] == "queued"


def test_the_rounds_reward_job_carries_the_loops_source_weights(policy):
    policy.reward_source_weights = {"ai": 0.5}
    policy.save()
    label(policy.project, 5)
    advance(policy)
    job = current(policy).reward_job
    assert job.kind == "reward" and job.dataset == {"source_weights": {"ai": 0.5}}
