"""A loop that starts with SFT on demonstrations (InstructGPT's order, issue #14): the state
machine with jobs finished by hand, the settings form and API, the loop page. The real jobs run
in test_e2e_sft.py."""

import pytest

from annotator.models import Annotation, Kind, Membership, Prompt
from annotator.services import annotation_submit, task_claim_next
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from tests.trainer.loop.test_services import advance, current, finish, no_broker  # noqa: F401
from trainer.loop import services as loop
from trainer.models import LoopRound, ModelVersion, TrainingJob

Status = LoopRound.Status


def write_edits(project, n: int) -> None:
    """n edit tasks answered: each a revision (an SFT row) and a preference (a comparison)."""
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler, role=Membership.Role.LABELER)
    for i in range(n):
        make_task(project, texts=[f"Teh answer {i}."])
        lease = task_claim_next(project=project, labeler=labeler)
        answer = {"text": f"The answer {i}.", "critique": "A typo."}
        annotation_submit(task=lease.task, labeler=labeler, answer=answer)


def answer_round_tasks(project) -> None:
    """A labeler answers every pairwise task the loop queued: new comparisons."""
    labeler = UserFactory()
    MembershipFactory(project=project, user=labeler, role=Membership.Role.LABELER)
    while (lease := task_claim_next(project=project, labeler=labeler)) is not None:
        assert lease.task.kind == Kind.PAIRWISE
        annotation_submit(task=lease.task, labeler=labeler, answer={"choice": "a"})


@pytest.fixture
def edit_policy(db, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = tmp_path
    project = ProjectFactory(kind=Kind.EDIT, overlap=1)
    for i in range(2):
        Prompt.objects.create(project=project, text=f"eval {i}", split="eval")
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/base")
    return loop.loop_configure(
        project=project,
        base_policy=base,
        enabled=True,
        algorithm="ppo",
        reward_after=3,
        train_prompts=3,
        sft_first=True,
        sft_config={"max_steps": 3, "learning_rate": 1e-5},
    )


def test_the_first_round_trains_sft_then_the_reward_model_from_it(edit_policy):
    policy = edit_policy
    write_edits(policy.project, 3)
    assert advance(policy) == Status.SFT
    round_ = current(policy)
    sft = round_.sft_job
    assert (sft.kind, sft.input_model.name) == ("sft", "base")
    assert sft.dataset == {"demonstrations": True}
    assert (sft.config["max_steps"], sft.config["learning_rate"]) == (3, 1e-5)
    assert sft.config["model_name_or_path"] == "/base"
    assert round_.reward_job is None
    assert advance(policy) is None  # waits for the SFT job

    finish(sft)
    assert advance(policy) == Status.REWARD
    round_.refresh_from_db()
    sft_model = TrainingJob.objects.get(id=sft.id).output_model
    assert sft_model.role == "policy" and sft_model.parent_id == policy.base_policy_id
    # The round's policy step starts from the SFT model; the reward model does too.
    assert round_.previous_policy_id == sft_model.id
    reward = round_.reward_job
    assert reward.input_model_id == sft_model.id
    assert reward.config["model_name_or_path"] == sft_model.path

    finish(reward)
    assert advance(policy) == Status.POLICY
    round_.refresh_from_db()
    ppo = round_.policy_job
    assert ppo.input_model_id == sft_model.id
    # PPO's KL reference is the SFT model, as in InstructGPT.
    assert round_.reference_policy_id == sft_model.id
    assert ppo.config["ref_model_path"] == sft_model.path


def test_later_rounds_train_no_sft_and_start_reward_models_from_the_sft_model(edit_policy):
    policy = edit_policy
    write_edits(policy.project, 3)
    advance(policy)
    finish(current(policy).sft_job)
    advance(policy)
    sft_model = current(policy).previous_policy
    finish(current(policy).reward_job)
    advance(policy)
    finish(current(policy).policy_job)
    advance(policy)
    for job_id in current(policy).generate_jobs.values():
        finish(TrainingJob.objects.get(id=job_id))
    assert advance(policy) == Status.DONE

    round_2 = current(policy)
    assert round_2.number == 2
    answer_round_tasks(policy.project)
    assert advance(policy) == Status.REWARD
    round_2.refresh_from_db()
    assert round_2.sft_job is None
    assert round_2.reward_job.input_model_id == sft_model.id
    assert TrainingJob.objects.filter(kind="sft").count() == 1


def test_without_demonstrations_the_round_waits(edit_policy):
    policy = edit_policy
    loop.loop_request_retrain(policy=policy)  # no need for comparisons, but no demonstration
    assert advance(policy) is None
    assert current(policy).status == Status.COLLECTING
    assert not TrainingJob.objects.exists()
    write_edits(policy.project, 1)
    assert advance(policy) == Status.SFT


def test_a_failed_sft_job_fails_the_round_and_a_new_round_retries_it(edit_policy):
    policy = edit_policy
    write_edits(policy.project, 3)
    advance(policy)
    finish(current(policy).sft_job, status=TrainingJob.Status.FAILED, error="no memory")
    assert advance(policy) is None
    failed = current(policy)
    assert failed.status == Status.FAILED and "SFT job" in failed.error
    assert "no memory" in failed.error
    loop.loop_configure(project=policy.project, base_policy=policy.base_policy, enabled=True)
    policy.refresh_from_db()
    loop.loop_request_retrain(policy=policy)  # round 2 counts the labels since it began
    assert advance(policy) == Status.SFT
    assert current(policy).number == 2


def test_stop_cancels_the_sft_job(edit_policy):
    write_edits(edit_policy.project, 3)
    advance(edit_policy)
    loop.loop_stop(policy=edit_policy)
    round_ = current(edit_policy)
    assert round_.status == Status.STOPPED
    assert round_.sft_job.status == TrainingJob.Status.CANCELLED


def test_a_loop_without_the_option_trains_no_sft(edit_policy):
    edit_policy.sft_first = False
    edit_policy.save()
    write_edits(edit_policy.project, 3)
    assert advance(edit_policy) == Status.REWARD
    assert current(edit_policy).reward_job.input_model_id == edit_policy.base_policy_id


@pytest.mark.django_db
class TestSettings:
    def form_data(self, base, **extra) -> dict:
        return {
            "enabled": "on", "base_policy": base.id, "algorithm": "raft", "reward_after": 5,
            "train_prompts": 3, "task_priority": 10, **extra,
        }  # fmt: skip

    def test_the_form_saves_the_option_and_checks_the_sft_config(self, client, alice, project):
        project.kind = Kind.EDIT
        project.save()
        base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
        client.force_login(alice)
        url = f"/training/projects/{project.id}/loop/settings/"
        page = client.get(f"/training/projects/{project.id}/loop/")
        assert b"Start with SFT on demonstrations" in page.content
        bad = client.post(url, self.form_data(base, sft_first="on", sft_config='{"max_stepz": 1}'))
        assert bad.status_code == 200 and b"max_stepz" in bad.content
        resp = client.post(url, self.form_data(base, sft_first="on", sft_config='{"max_steps": 7}'))
        assert resp.status_code == 302
        policy = project.loop_policy
        assert policy.sft_first and policy.sft_config == {"max_steps": 7}
        page = client.get(f"/training/projects/{project.id}/loop/")
        assert b"starts with SFT on demonstrations" in page.content
        assert b"0</span> demonstrations and revisions" in page.content
        assert b"waits for at least one" in page.content

    def test_a_project_without_demonstrations_is_refused(self, client, alice, api_as, project):
        base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
        client.force_login(alice)
        url = f"/training/projects/{project.id}/loop/settings/"
        resp = client.post(url, self.form_data(base, sft_first="on"))
        assert resp.status_code == 200 and b"no demonstration or edit tasks" in resp.content
        api = api_as(alice).put(
            f"/api/v1/projects/{project.id}/loop/",
            {"base_policy": base.id, "sft_first": True},
            format="json",
        )
        assert api.status_code == 400 and "demonstration" in api.json()["sft_first"][0]

    def test_the_api_sets_the_option_and_names_the_sft_job(self, alice, api_as, no_broker):  # noqa: F811
        project = ProjectFactory(kind=Kind.EDIT, overlap=1)
        MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
        base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
        write_edits(project, 1)
        url = f"/api/v1/projects/{project.id}/loop/"
        client = api_as(alice)
        resp = client.put(
            url,
            {"enabled": True, "base_policy": base.id, "sft_first": True,
             "sft_config": {"max_steps": 2}},
            format="json",
        )  # fmt: skip
        assert resp.status_code == 200, resp.content
        assert resp.json()["policy"]["sft_first"] is True
        resp = client.post(url + "actions/", {"action": "retrain"}, format="json")
        (round_,) = resp.json()["rounds"]
        assert round_["status"] == "sft"
        job = TrainingJob.objects.get(id=round_["sft_job"])
        assert job.kind == "sft" and job.config["max_steps"] == 2
        assert Annotation.objects.filter(task__project=project).count() == 1
