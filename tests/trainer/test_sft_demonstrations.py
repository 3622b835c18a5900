"""An SFT job on a project's written demonstrations (and edit tasks' revisions)."""

import json

import pytest

from annotator.models import Kind, Membership
from annotator.services import annotation_submit, task_claim_next
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from trainer.forms import dataset_form_fields
from trainer.job_child import sft_rows
from trainer.models import TrainingJob
from trainer.snapshots import snapshot_freeze


def write_demonstrations(project, texts) -> None:
    user = UserFactory()
    MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    for text in texts:
        lease = task_claim_next(project=project, labeler=user)
        annotation_submit(task=lease.task, labeler=user, answer={"text": text})


def snapshot(project, tmp_path, dataset) -> list[dict]:
    tmp_path.mkdir(exist_ok=True)
    job = TrainingJob.objects.create(
        project=project, kind="sft", output_dir=str(tmp_path), dataset=dataset
    )
    path = snapshot_freeze(job=job, directory=tmp_path)
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.django_db
def test_the_snapshot_holds_the_demonstrations_with_chats_as_messages(tmp_path):
    project = ProjectFactory(kind=Kind.DEMONSTRATION)
    plain = make_task(project)
    chat = make_task(project)
    chat.prompt.messages, chat.prompt.text = [{"role": "user", "content": "Hi"}], ""
    chat.prompt.save()
    write_demonstrations(project, ["A plain answer.", "Hello!"])
    rows = snapshot(project, tmp_path, {"demonstrations": True})
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        (plain.prompt.text, "A plain answer."), ([{"role": "user", "content": "Hi"}], "Hello!"),
    ]  # fmt: skip
    # The training child takes them as they are (not "each prompt's best response").
    assert sft_rows(rows) is rows


@pytest.mark.django_db
def test_revisions_can_be_left_out(tmp_path):
    project = ProjectFactory(kind=Kind.EDIT)
    make_task(project, texts=["Teh answer."])
    write_demonstrations(project, ["The answer."])
    assert len(snapshot(project, tmp_path / "a", {"demonstrations": True})) == 1
    with pytest.raises(Exception, match="empty"):
        snapshot(project, tmp_path / "b", {"demonstrations": True, "revisions": False})


def test_the_launch_form_offers_demonstrations_for_sft_only():
    assert "demonstrations" in [f.name for f in dataset_form_fields("sft")]
    assert "demonstrations" not in [f.name for f in dataset_form_fields("dpo")]


@pytest.mark.slow
@pytest.mark.django_db
def test_an_sft_job_trains_on_written_demonstrations(tmp_path):
    from tests.trainer.test_runner import run_job
    from trainer.algorithms.tiny import build_tiny_policy

    tiny = str(build_tiny_policy(tmp_path / "policy", pretrain_steps=0))
    project = ProjectFactory(kind=Kind.DEMONSTRATION)
    for _ in range(8):
        make_task(project)
    write_demonstrations(project, [f"the cat sat {i} banana" for i in range(8)])
    job = run_job(
        project, "sft", tmp_path,
        {"model_name_or_path": tiny, "max_steps": 2, "batch_size": 4, "device": "cpu"},
        dataset={"demonstrations": True},
    )  # fmt: skip
    assert job.snapshot_rows == 8 and job.output_model.role == "policy" and job.step == 2
