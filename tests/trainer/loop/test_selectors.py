"""The loop page's numbers (trainer/loop/selectors.py) on hand-built rounds, tasks and labels.

Expected win rates and Wilson intervals are worked out here by hand: with n judgments, p the
share of points (a tie or "both bad" is half a point) and z = 1.96,
    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
"""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from annotator.models import Annotation, Completion, Kind, Prompt, Task, TaskCompletion
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from trainer.exceptions import JobError
from trainer.loop import accuracy, evaluation, judgments
from trainer.loop import measure as loop_services
from trainer.loop import selectors as loop_selectors
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

JobStatus = TrainingJob.Status
Z2 = 1.96**2


def policy_model(project, name: str, **fields) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project, name=name, role="policy", path=f"/{name}", **fields
    )


def make_round(
    project,
    number: int,
    previous: ModelVersion,
    *,
    status: str = LoopRound.Status.DONE,
    val_accuracy: float | None = 0.7,
    scores: tuple[float, float] | None = None,
    algorithm: str = "raft",
) -> LoopRound:
    """A finished round: reward job and model, policy job and model, two generate jobs; with
    `scores`, the new and the previous policy's mean score under the round's reward model."""
    now = timezone.now()
    reward_job = TrainingJob.objects.create(
        project=project, kind="reward", status=JobStatus.SUCCEEDED, finished_at=now
    )
    reward_metrics = {"val_accuracy": val_accuracy} if val_accuracy is not None else {}
    reward_model = ModelVersion.objects.create(
        project=project,
        name=f"rm-{number}",
        role="reward",
        path="/rm",
        job=reward_job,
        metrics=reward_metrics,
    )
    reward_job.output_model = reward_model
    reward_job.save(update_fields=["output_model"])
    policy_job = TrainingJob.objects.create(
        project=project,
        kind=algorithm,
        status=JobStatus.SUCCEEDED,
        metrics=[{"step": 1, "loss": 1.0}],
    )
    new = policy_model(project, f"policy-{number}", parent=previous, job=policy_job)
    policy_job.output_model = new
    policy_job.save(update_fields=["output_model"])
    generate = {
        role: TrainingJob.objects.create(
            project=project, kind="generate", status=JobStatus.SUCCEEDED, input_model=model
        ).id
        for role, model in (("new", new), ("previous", previous))
    }
    return LoopRound.objects.create(
        project=project,
        number=number,
        status=status,
        previous_policy=previous,
        reward_job=reward_job,
        policy_job=policy_job,
        generate_jobs=generate,
        scores=scores_of(reward_model, scores),
    )


def scores_of(reward_model: ModelVersion, scores: tuple[float, float] | None) -> dict:
    if scores is None:
        return {}
    new, previous = scores
    return {"status": "done", "reward_model": reward_model.id, "new": new, "previous": previous,
            "n": 12}  # fmt: skip


def judge(
    round_: LoopRound,
    against: str,
    other: ModelVersion,
    outcomes: str,
    *,
    simulated=0,
    split="eval",
):
    """One comparison task a judgment: W the new policy won, L it lost, T tie, B both bad.
    The first `simulated` judgments are marked simulated. On eval-split prompts, as the loop
    counts them, unless `split` says otherwise."""
    project = round_.project
    new_id = round_.policy_job.output_model_id
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler)
    for i, outcome in enumerate(outcomes):
        prompt = Prompt.objects.create(
            project=project, text=f"prompt {round_.number} {i}", split=split
        )
        mine = Completion.objects.create(prompt=prompt, text="new", model_version_id=new_id)
        theirs = Completion.objects.create(prompt=prompt, text="other", model_version_id=other.id)
        task = Task.objects.create(
            project=project,
            prompt=prompt,
            kind=Kind.PAIRWISE,
            round=round_.number,
            meta={
                "loop": {
                    "round": round_.number,
                    "new": new_id,
                    "other": other.id,
                    "against": against,
                }
            },
        )
        TaskCompletion.objects.bulk_create(
            [
                TaskCompletion(task=task, completion=theirs, position=0),
                TaskCompletion(task=task, completion=mine, position=1),
            ]
        )
        verdict = {"W": "preferred", "L": "preferred", "T": "tie", "B": "both_bad"}[outcome]
        chosen, rejected = {"W": (mine, theirs), "L": (theirs, mine)}.get(outcome, (None, None))
        Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict=verdict,
            chosen=chosen,
            rejected=rejected,
            labeler_kind="simulated" if i < simulated else "human",
        )


@pytest.fixture
def project(db):
    return ProjectFactory(kind=Kind.PAIRWISE)


@pytest.fixture
def base(project):
    return policy_model(project, "base")


@pytest.fixture
def configured(project, base):
    with mock.patch("trainer.tasks.run_training_job.delay"):
        return loop.loop_configure(project=project, base_policy=base, enabled=True)


# --- Win rates ------------------------------------------------------------------------------


def test_it_counts_wins_losses_and_ties_as_half(project, base, configured):
    r1 = make_round(project, 1, base)
    # 6 wins, 1 tie, 1 both bad, 2 losses: 7 points of 10, p = 0.7.
    judge(r1, "previous", base, "WWWWWWTBLL", simulated=3)
    state = loop_selectors.loop_state(project=project)
    judged = state.rounds[0].judged["previous"]
    assert (judged.result.wins, judged.result.ties, judged.result.losses) == (6, 2, 2)
    assert judged.both_bad == 1 and judged.simulated == 3
    assert judged.result.rate == pytest.approx(0.7)
    # centre = (0.7 + 0.19208) / 1.38416 = 0.64449; half = 1.96·sqrt(0.021 + 0.009604) /
    # 1.38416 = 0.24772, so the interval is 0.39677 – 0.89221: it contains 0.5.
    assert judged.result.low == pytest.approx(0.39677, abs=1e-4)
    assert judged.result.high == pytest.approx(0.89221, abs=1e-4)
    assert not judged.judged_better and not judged.judged_worse
    assert state.rounds[0].simulated_judged == 3


def test_it_counts_only_judgments_on_eval_prompts(project, base, configured):
    """Judgments on train-split prompts are left out: the next reward model trains on those
    labels, and the policy trained on those prompts."""
    r1 = make_round(project, 1, base)
    judge(r1, "previous", base, "WWW")
    judge(r1, "previous", base, "LLLLL", split="train")

    state = loop_selectors.loop_state(project=project)

    judged = state.rounds[0].judged["previous"]
    assert (judged.result.n, judged.result.rate) == (3, 1.0)
    assert len(state.judgments) == 3 and state.eval_prompts == 3


def test_it_keeps_previous_and_base_apart_per_round(project, base, configured):
    r1 = make_round(project, 1, base)
    judge(r1, "previous", base, "WWWWWWWWWW")
    r2 = make_round(project, 2, r1.policy_job.output_model)
    judge(r2, "previous", r1.policy_job.output_model, "WWWL")
    judge(r2, "base", base, "WLLL")
    rounds = loop_selectors.loop_state(project=project).rounds
    first = rounds[0].judged["previous"].result
    # 10 of 10: centre 0.86122, half 0.13877 -> 0.72245 – 1; the whole interval is above 0.5.
    assert (first.rate, first.n) == (1.0, 10)
    assert first.low == pytest.approx(0.72245, abs=1e-4) and first.high == pytest.approx(1.0)
    assert rounds[0].judged["previous"].judged_better
    assert "base" not in rounds[0].judged
    previous, against_base = rounds[1].judged["previous"].result, rounds[1].judged["base"].result
    # 3 of 4: centre (0.75 + 0.4802) / 1.9604 = 0.62753, half 0.32688 -> 0.30065 – 0.95441.
    assert previous.rate == 0.75
    assert previous.low == pytest.approx(0.30065, abs=1e-4)
    assert previous.high == pytest.approx(0.95441, abs=1e-4)
    # 1 of 4 is its mirror image: 0.04559 – 0.69935.
    assert against_base.rate == 0.25
    assert against_base.low == pytest.approx(0.04559, abs=1e-4)
    assert against_base.high == pytest.approx(0.69935, abs=1e-4)
    assert loop_selectors.win_rate_points(rounds, "base") == [
        (2, 0.25, against_base.low, against_base.high)
    ]
    assert [p[0] for p in loop_selectors.win_rate_points(rounds, "previous")] == [1, 2]


def test_it_ignores_labels_that_are_not_loop_judgments(project, base, configured):
    r1 = make_round(project, 1, base)
    judge(r1, "previous", base, "WL")
    task = make_task(project)  # an ordinary task: no round, no loop meta
    first, second = task.completions.all()
    Annotation.objects.create(
        task=task,
        labeler=UserFactory(),
        kind=Kind.PAIRWISE,
        verdict="preferred",
        chosen=first,
        rejected=second,
    )
    tagged = make_task(project)  # a round number but no loop meta
    Task.objects.filter(id=tagged.id).update(round=1)
    Annotation.objects.create(task=tagged, labeler=UserFactory(), kind=Kind.PAIRWISE, verdict="tie")
    other_project = ProjectFactory()
    judge(make_round(other_project, 1, policy_model(other_project, "b")), "previous", base, "WWW")
    found = judgments.loop_judgments(project_id=project.id)
    assert [(j.round, j.score) for j in found] == [(1, 1.0), (1, 0.0)]


def test_a_preference_for_a_completion_of_neither_model_is_left_out():
    assert judgments.judgment_score(verdict="preferred", chosen_model=9, new=1, other=2) is None
    assert judgments.judgment_score(verdict="preferred", chosen_model=None, new=1, other=2) is None
    assert judgments.judgment_score(verdict="both_bad", chosen_model=None, new=1, other=2) == 0.5


# --- Leaderboard ----------------------------------------------------------------------------


def test_it_ranks_every_version_with_the_base_as_anchor(project, base, configured):
    r1 = make_round(project, 1, base)
    p1 = r1.policy_job.output_model
    judge(r1, "previous", base, "WWWWWWWWLT")
    r2 = make_round(project, 2, p1)
    p2 = r2.policy_job.output_model
    judge(r2, "previous", p1, "WWWWWWLL")
    judge(r2, "base", base, "WWWWWWWWWL")
    state = loop_selectors.loop_state(project=project)
    board = judgments.loop_leaderboard(
        judgments=state.judgments, models=state.models, base_id=base.id
    )
    assert [row.name for row in board] == ["policy-2", "policy-1", "base"]
    # The same fit on the comparisons written out by hand: the mapping from labels is right.
    comparisons = (
        [(p1.id, base.id, 1.0)] * 8
        + [(p1.id, base.id, 0.0), (p1.id, base.id, 0.5)]
        + [(p2.id, p1.id, 1.0)] * 6
        + [(p2.id, p1.id, 0.0)] * 2
        + [(p2.id, base.id, 1.0)] * 9
        + [(p2.id, base.id, 0.0)]
    )
    expected = evaluation.bradley_terry(comparisons, anchor=base.id)
    for row in board:
        assert row.rating == pytest.approx(expected[row.model_id])
        assert row.low <= row.rating + 1e-6 and row.rating - 1e-6 <= row.high
    base_row = board[-1]
    assert base_row.rating == pytest.approx(1000.0)
    assert (base_row.low, base_row.high) == (pytest.approx(1000.0), pytest.approx(1000.0))
    assert base_row.games == 20 and base_row.points == pytest.approx(2.5)
    # Seeded: the page shows the same intervals on every load.
    again = judgments.loop_leaderboard(
        judgments=state.judgments, models=state.models, base_id=base.id
    )
    assert [(r.low, r.high) for r in again] == [(r.low, r.high) for r in board]
    assert judgments.loop_leaderboard(judgments=[], models={}, base_id=base.id) == []


# --- Labels per round -----------------------------------------------------------------------


def test_it_counts_the_labels_each_round_collected(project, base, configured):
    t0 = timezone.now() - timedelta(hours=10)
    r1 = make_round(project, 1, base)
    r2 = make_round(project, 2, r1.policy_job.output_model, status=LoopRound.Status.COLLECTING)
    TrainingJob.objects.filter(id=r1.reward_job_id).update(created_at=t0 + timedelta(hours=2))
    LoopRound.objects.filter(id=r2.id).update(
        started_at=t0 + timedelta(hours=5), reward_job=None, policy_job=None, generate_jobs={}
    )
    labeler = UserFactory()
    # (hours after t0, verdict, simulated): round 1 counts everything before its reward job
    # (hour 2); round 2 from its start (hour 5), still collecting. Ties are not usable.
    for hours, verdict, simulated in [
        (0, "preferred", False),
        (1, "preferred", True),
        (1, "tie", False),
        (3, "preferred", False),  # between the rounds: counted by neither
        (6, "preferred", True),
        (7, "preferred", True),
        (8, "both_bad", True),
    ]:
        task = make_task(project)
        first, second = task.completions.all()
        annotation = Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict=verdict,
            chosen=first if verdict == "preferred" else None,
            rejected=second if verdict == "preferred" else None,
            labeler_kind="simulated" if simulated else "human",
        )
        Annotation.objects.filter(id=annotation.id).update(created_at=t0 + timedelta(hours=hours))
    rounds = loop_selectors.loop_state(project=project).rounds
    assert [(r.labels, r.labels_simulated) for r in rounds] == [(2, 1), (2, 2)]
    assert [role for role, _ in rounds[0].jobs] == [
        "reward",
        "policy",
        "generate: new",
        "generate: previous",
    ]
    assert rounds[1].jobs == [] and rounds[1].reward_model is None


# --- Reward models --------------------------------------------------------------------------


def test_it_shows_validation_and_fresh_accuracy_with_an_interval(project, base, configured):
    r1 = make_round(project, 1, base, val_accuracy=0.81)
    model = r1.reward_job.output_model
    model.metrics["fresh_accuracy"] = {
        "status": "done",
        "n": 40,
        "correct": 30,
        "cutoff": "2026-01-01T00:00:00+00:00",
        "simulated": 40,
    }
    model.save()
    make_round(project, 2, r1.policy_job.output_model, val_accuracy=None)
    rows = loop_selectors.loop_state(project=project).rounds
    assert rows[0].val_accuracy == 0.81 and rows[1].val_accuracy is None
    fresh = rows[0].fresh
    # 30 of 40: centre (0.75 + 0.04802) / 1.09604 = 0.72809, half 1.96·sqrt(0.0046875 +
    # 0.00060025) / 1.09604 = 0.13004 -> 0.59806 – 0.85813.
    assert fresh.accuracy == 0.75 and fresh.simulated == 40
    assert fresh.low == pytest.approx(0.59806, abs=1e-4)
    assert fresh.high == pytest.approx(0.85813, abs=1e-4)
    assert rows[1].fresh is None
    points = loop_selectors.accuracy_points(rows)
    assert points["val"] == [(1, 0.81)]
    assert points["fresh"] == [(1, 0.75, fresh.low, fresh.high)]


def test_fresh_comparisons_are_the_preferences_made_after_the_job_ended(project, base):
    job = TrainingJob.objects.create(project=project, kind="reward", status=JobStatus.SUCCEEDED)
    model = ModelVersion.objects.create(
        project=project, name="rm", role="reward", path="/rm", job=job
    )
    cutoff = timezone.now() - timedelta(hours=1)
    TrainingJob.objects.filter(id=job.id).update(finished_at=cutoff)
    model.refresh_from_db()
    labeler = UserFactory()
    chat = Prompt.objects.create(
        project=project, text="", messages=[{"role": "user", "content": "Hi <b>there</b>"}]
    )
    for minutes, verdict, prompt in [
        (-5, "preferred", None),
        (5, "tie", None),
        (10, "preferred", chat),
        (20, "preferred", None),
    ]:
        task = make_task(project, texts=[f"good {minutes}", f"bad {minutes}"])
        if prompt is not None:
            Task.objects.filter(id=task.id).update(prompt=prompt)
        good, bad = task.completions.order_by("id")
        annotation = Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict=verdict,
            chosen=good if verdict == "preferred" else None,
            rejected=bad if verdict == "preferred" else None,
            labeler_kind="simulated" if minutes == 20 else "human",
        )
        Annotation.objects.filter(id=annotation.id).update(
            created_at=cutoff + timedelta(minutes=minutes)
        )
    assert accuracy.fresh_accuracy_cutoff(model_version=model) == cutoff
    rows = accuracy.fresh_comparisons(model_version=model, cutoff=cutoff, limit=10)
    assert [(r.chosen, r.rejected, r.simulated) for r in rows] == [
        ("good 20", "bad 20", True),
        ("good 10", "bad 10", False),
    ]
    # As the training snapshot has it: a chat's messages, rendered later by reward_text.
    assert rows[1].prompt == [{"role": "user", "content": "Hi <b>there</b>"}]
    assert len(accuracy.fresh_comparisons(model_version=model, cutoff=cutoff, limit=1)) == 1


def test_the_fresh_accuracy_service_scores_chosen_against_rejected(project, base):
    job = TrainingJob.objects.create(
        project=project, kind="reward", status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    model = ModelVersion.objects.create(
        project=project,
        name="rm",
        role="reward",
        path="/rm",
        job=job,
        metrics={"val_accuracy": 0.9},
        config={"max_length": 64},
    )
    labeler = UserFactory()
    for i in range(4):
        task = make_task(project, texts=[f"good {i}", f"bad {i}"])
        good, bad = task.completions.order_by("id")
        Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict="preferred",
            chosen=good,
            rejected=bad,
        )

    def fake_scores(*, model, prompts, completions, device):
        assert model.path == "/rm" and len(prompts) == 8
        # Right on three of the four pairs; the tie in score on "good 3" counts as wrong.
        good = {"good 0": 1.0, "good 1": 2.0, "good 2": 0.5, "good 3": 0.0}
        return [good.get(c, 0.0) if c in good else {"bad 2": 0.1}.get(c, 0.0) for c in completions]

    with mock.patch("trainer.loop.measure.score_in_child", side_effect=fake_scores):
        result = loop_services.reward_model_fresh_accuracy(model_version_id=model.id)
    model.refresh_from_db()
    stored = model.metrics["fresh_accuracy"]
    assert stored == result
    assert (stored["status"], stored["n"], stored["correct"], stored["accuracy"]) == (
        "done",
        4,
        3,
        0.75,
    )
    assert stored["cutoff"] == job.finished_at.isoformat()
    assert model.metrics["val_accuracy"] == 0.9  # the training metrics stay


def test_a_failed_measurement_is_stored_with_its_error(project):
    model = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/none")
    task = make_task(project)
    good, bad = task.completions.all()
    Annotation.objects.create(
        task=task,
        labeler=UserFactory(),
        kind=Kind.PAIRWISE,
        verdict="preferred",
        chosen=good,
        rejected=bad,
    )
    Annotation.objects.update(created_at=timezone.now() + timedelta(minutes=1))
    # The scoring child runs for real and cannot load a model from /none.
    with pytest.raises(JobError, match="Scoring with rm failed"):
        loop_services.reward_model_fresh_accuracy(model_version_id=model.id)
    model.refresh_from_db()
    assert model.metrics["fresh_accuracy"]["status"] == "failed"
    assert "/none" in model.metrics["fresh_accuracy"]["error"]


def test_a_rounds_samples_are_scored_by_its_reward_model_on_common_prompts(project, base):
    r1 = make_round(project, 1, base)
    new, previous = r1.generate_jobs["new"], r1.generate_jobs["previous"]
    shared, only_new = (
        Prompt.objects.create(project=project, text="shared"),
        Prompt.objects.create(project=project, text="only new"),
    )
    for job, prompt, text in [
        (new, shared, "n1"), (new, shared, "n2"), (new, only_new, "n3"), (previous, shared, "p1"),
    ]:  # fmt: skip
        Completion.objects.create(prompt=prompt, text=text, meta={"job": job, "sample_index": 0})
    seen = {}

    def fake_scores(*, model, prompts, completions, device, heads=False):
        seen.update(model=model, completions=completions)
        scores = [{"n1": 3.0, "n2": 1.0, "p1": 0.5}[c] for c in completions]
        return [[x] for x in scores] if heads else scores

    with mock.patch("trainer.loop.measure.score_in_child", side_effect=fake_scores):
        result = loop_services.round_scores_measure(round_id=r1.id)

    r1.refresh_from_db()
    assert seen["model"] == r1.reward_job.output_model  # one model for both policies
    assert sorted(seen["completions"]) == ["n1", "n2", "p1"]  # "only new" has no pair
    assert r1.scores == result
    assert (result["new"], result["previous"], result["n"]) == (2.0, 0.5, 2)
    row = loop_selectors.loop_state(project=project).rounds[0]
    assert (row.mean_reward, row.reward_baseline, row.reward_rose) == (2.0, 0.5, True)


def test_a_request_queues_the_measurement_on_the_gpu_queue(
    project, django_capture_on_commit_callbacks
):
    model = ModelVersion.objects.create(
        project=project,
        name="rm",
        role="reward",
        path="/rm",
        metrics={"fresh_accuracy": {"status": "done", "n": 3, "correct": 2}},
    )
    with (
        mock.patch("trainer.tasks.measure_fresh_accuracy.apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        loop_services.reward_model_fresh_accuracy_request(model_version=model)
    send.assert_called_once_with((model.id,), queue="gpu")
    model.refresh_from_db()
    stored = model.metrics["fresh_accuracy"]
    assert stored["status"] == "queued" and stored["n"] == 3  # the last result stays shown
    policy = policy_model(project, "p")
    with pytest.raises(Exception, match="reward model"):
        loop_services.reward_model_fresh_accuracy_request(model_version=policy)


# --- Over-optimisation ----------------------------------------------------------------------


def test_it_flags_a_round_whose_reward_rose_while_humans_did_not_prefer_it(
    project, base, configured
):
    """Both policies' samples scored by the round's reward model: 0.2 -> 1.0 means the new
    policy pleases that model more than the previous one did."""
    # Round 1: 0.2 -> 1.0, and humans agree (10 of 10): no warning.
    r1 = make_round(project, 1, base, scores=(1.0, 0.2))
    judge(r1, "previous", base, "W" * 10)
    # Round 2: 0.9 -> 2.0, but 5 of 10 (0.24 – 0.76 contains 0.5): flagged.
    r2 = make_round(project, 2, r1.policy_job.output_model, scores=(2.0, 0.9))
    judge(r2, "previous", r1.policy_job.output_model, "WWWWLLLLTT")
    # Round 3: 2.0 -> 1.5 fell, humans lukewarm: not over-optimisation.
    r3 = make_round(project, 3, r2.policy_job.output_model, scores=(1.5, 2.0))
    judge(r3, "previous", r2.policy_job.output_model, "WLWLWLWLWL")
    # Round 4: rose, humans unimpressed, but too few judgments to say so.
    r4 = make_round(project, 4, r3.policy_job.output_model, scores=(3.0, 1.0))
    judge(r4, "previous", r3.policy_job.output_model, "LLL")
    rows = loop_selectors.loop_state(project=project).rounds
    assert [r.reward_rose for r in rows] == [True, True, False, True]
    assert (rows[1].mean_reward, rows[1].reward_baseline, rows[1].scored) == (2.0, 0.9, 12)
    assert [bool(r.warning) for r in rows] == [False, True, False, False]
    assert "rm-2" in rows[1].warning and "score 2 on average against 0.9" in rows[1].warning
    assert "win rate 0.50" in rows[1].warning and "10 judgments" in rows[1].warning


@pytest.mark.parametrize("algorithm", ["ppo", "raft", "rloo", "grpo", "dpo"])
def test_the_warning_fires_for_every_algorithm(project, base, configured, algorithm):
    r1 = make_round(project, 1, base, scores=(0.5, -1.0), algorithm=algorithm)
    judge(r1, "previous", base, "LLLLLLLLLW")
    (row,) = loop_selectors.loop_state(project=project).rounds
    assert row.warning and row.judged["previous"].judged_worse


def test_scores_from_another_reward_model_or_not_yet_measured_say_nothing(
    project, base, configured
):
    r1 = make_round(project, 1, base, scores=(2.0, 0.0))
    judge(r1, "previous", base, "L" * 10)
    r1.scores["reward_model"] = base.id  # not the round's reward model
    r1.save(update_fields=["scores"])
    r2 = make_round(project, 2, r1.policy_job.output_model)
    LoopRound.objects.filter(id=r2.id).update(scores={"status": "queued"})
    judge(r2, "previous", r1.policy_job.output_model, "L" * 10)
    rows = loop_selectors.loop_state(project=project).rounds
    assert [r.mean_reward for r in rows] == [None, None] and not any(r.warning for r in rows)
    assert rows[1].scores_status == "queued"


# --- Queries --------------------------------------------------------------------------------


def test_it_reads_the_loop_in_a_fixed_number_of_queries(
    project, base, configured, django_assert_max_num_queries
):
    previous = base
    for number in (1, 2, 3, 4, 5):
        r = make_round(project, number, previous, scores=(float(number), 0.0))
        judge(r, "previous", previous, "WLT")
        judge(r, "base", base, "WW")
        previous = r.policy_job.output_model
        # policy, rounds, generate jobs, judgments, label counts
        with django_assert_max_num_queries(6):
            state = loop_selectors.loop_state(project=project)
        assert len(state.rounds) == number
        assert all(row.judged["previous"].result.n == 3 for row in state.rounds)


@pytest.mark.slow
def test_it_measures_a_real_reward_model_on_fresh_labels(project, tmp_path, monkeypatch):
    """The whole path on a tiny local reward model: labels after the job, the prompt rendered
    as in training, scores from the model itself."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    from tests.trainer.algorithms.helpers import marker_rows
    from trainer.algorithms.reward import RewardConfig, train
    from trainer.algorithms.reward_scoring import score_texts
    from trainer.algorithms.tiny import build_tiny_policy

    torch.set_num_threads(1)
    policy_dir = build_tiny_policy(tmp_path / "policy", pretrain_steps=0, hidden_size=64, layers=2)
    config = RewardConfig(
        model_name_or_path=str(policy_dir),
        learning_rate=1e-3,
        max_steps=40,
        batch_size=8,
        save_steps=0,
        seed=0,
        device="cpu",
    )
    metrics = train(config, marker_rows(160, seed=1, chat=False), tmp_path / "rm")
    job = TrainingJob.objects.create(
        project=project,
        kind="reward",
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now() - timedelta(minutes=1),
    )
    model = ModelVersion.objects.create(
        project=project,
        name="rm",
        role="reward",
        path=str(tmp_path / "rm"),
        job=job,
        metrics=metrics,
    )
    fresh = marker_rows(24, seed=7, chat=False)
    labeler = UserFactory()
    for row in fresh:
        task = make_task(project, texts=[row["chosen"], row["rejected"]])
        Prompt.objects.filter(id=task.prompt_id).update(text=row["prompt"])
        chosen, rejected = task.completions.order_by("id")
        Annotation.objects.create(
            task=task,
            labeler=labeler,
            kind=Kind.PAIRWISE,
            verdict="preferred",
            chosen=chosen,
            rejected=rejected,
        )
    # The model is loaded and run in a child process, never in this (the worker's) process.
    in_worker = mock.patch(
        "trainer.algorithms.reward_scoring.RewardScorer", side_effect=AssertionError("in worker")
    )
    with in_worker:
        result = loop_services.reward_model_fresh_accuracy(model_version_id=model.id, device="cpu")
    prompts = [row["prompt"] for row in fresh]
    texts = [r["chosen"] for r in fresh] + [r["rejected"] for r in fresh]
    scores = score_texts(str(tmp_path / "rm"), prompts * 2, texts, device="cpu")
    expected = sum(c > r for c, r in zip(scores[:24], scores[24:], strict=True))
    model.refresh_from_db()
    assert model.metrics["fresh_accuracy"] == result
    assert (result["status"], result["n"], result["correct"]) == ("done", 24, expected)
    assert model.metrics["val_accuracy"] == metrics["val_accuracy"]
    assert result["accuracy"] >= 0.75  # the marker preference was learned
