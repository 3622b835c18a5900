"""A loop that starts with SFT on demonstrations, end to end (issue #14, InstructGPT's order):
labelers critique and revise responses in an edit project, and the loop's first round trains
SFT on the revisions, then a reward model from the SFT model on the revisions' preferences,
then the policy from the SFT model, samples it and queues the comparisons.

As in test_e2e.py: a real Celery worker (queues default and gpu, solo pool) runs the loop's
transitions and its jobs on a tiny local policy; nothing is finished by hand. The answers are
stored through the labeling service, whose signal wakes the loop as any answer does.
PostgreSQL only: the worker is another process and must see the test database.
"""

import json
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from annotator.models import Annotation, Completion, Kind, Membership, Task
from annotator.services import annotation_submit, task_claim_next
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

TRAIN, EVAL = 4, 2  # prompts, each with one response to critique and revise
TIMEOUT_S = 600


@pytest.fixture
def project(tiny_base):
    return imported_project(
        name="SFT-first e2e", admin="sft-admin", train=TRAIN, eval=EVAL,
        completions=lambda i: [f"a cat sits on the mat {i}."], kind=Kind.EDIT, overlap=1,
    )  # fmt: skip


def configure(project, path: str):
    base = ModelVersion.objects.create(project=project, name="tiny-base", role="policy", path=path)
    return loop.loop_configure(
        project=project,
        base_policy=base,
        enabled=True,
        sft_first=True,
        algorithm="raft",
        reward_after=TRAIN,  # the revisions on train prompts are the round's comparisons
        train_prompts=TRAIN,
        compare_with_base=True,
        sft_config={"max_steps": 2, "batch_size": 4, "save_steps": 0, "device": "cpu"},
        reward_config={"max_steps": 2, "batch_size": 4, "save_steps": 0, "device": "cpu"},
        policy_config={
            "iterations": 1, "num_samples": 2, "max_new_tokens": 8, "keep_truncated": True,
            "sft_batch_size": 4, "max_length": 64, "device": "cpu",
        },
        generate_config={"max_new_tokens": 8, "device": "cpu"},
    )  # fmt: skip


def revise_everything(project) -> dict[int, str]:
    """A labeler critiques and revises every response; the revisions by prompt id."""
    labeler = UserFactory(username="editor")
    MembershipFactory(project=project, user=labeler, role=Membership.Role.LABELER)
    revisions = {}
    while (lease := task_claim_next(project=project, labeler=labeler)) is not None:
        text = f"the garden is bright {lease.task.prompt_id}."
        answer = {"text": text, "critique": "It is off topic."}
        annotation_submit(task=lease.task, labeler=labeler, answer=answer)
        revisions[lease.task.prompt_id] = text
    return revisions


def weights(path: str) -> dict:
    return load_file(str(Path(path) / "model.safetensors"))


def test_an_sft_round_then_a_reward_round_from_the_sft_model(worker, project, tiny_base):
    policy = configure(project, tiny_base)
    base = policy.base_policy
    revisions = revise_everything(project)
    assert len(revisions) == TRAIN + EVAL
    wait_for_round(project, worker, 1, TIMEOUT_S)

    r1, r2 = LoopRound.objects.filter(project=project).order_by("number")
    assert (r1.status, r2.status) == (Status.DONE, Status.COLLECTING)
    assert r1.error == "" and r2.sft_job is None

    # SFT on the revisions of train prompts (eval prompts are held out), from the base.
    sft = r1.sft_job
    assert_succeeded(sft)
    assert sft.kind == "sft" and sft.dataset == {"demonstrations": True}
    assert sft.input_model_id == base.id and sft.snapshot_rows == TRAIN
    rows = [json.loads(line) for line in (Path(sft.output_dir) / "rows.jsonl").open()]
    assert sorted(r["completion"] for r in rows) == sorted(revisions[r["prompt_id"]] for r in rows)
    assert all(r["split"] == "train" and r["kind"] == "edit" for r in rows)
    sft_model = sft.output_model
    assert sft_model.role == "policy" and sft_model.parent_id == base.id
    before, after = weights(base.path), weights(sft_model.path)
    assert any((before[name] != after[name]).any() for name in before), "SFT changed nothing"

    # The reward round starts from the SFT model, on the revisions' preferences.
    reward = r1.reward_job
    assert_succeeded(reward)
    assert reward.input_model_id == sft_model.id
    assert reward.config["model_name_or_path"] == sft_model.path
    assert reward.snapshot_rows == TRAIN
    assert reward.output_model.parent_id == sft_model.id
    assert reward.created_at >= sft.finished_at

    # The policy step trains on from the SFT model, which is the round's previous policy.
    assert r1.previous_policy_id == sft_model.id
    train = r1.policy_job
    assert_succeeded(train)
    assert train.input_model_id == sft_model.id
    assert train.config["reward_model_path"] == reward.output_model.path
    new = train.output_model
    assert new.parent_id == sft_model.id and r2.previous_policy_id == new.id

    # Its samples against the SFT model's (previous) and the base's, queued as comparisons.
    roles = {
        role: TrainingJob.objects.get(id=job_id).input_model_id
        for role, job_id in r1.generate_jobs.items()
    }
    assert roles == {"new": new.id, "previous": sft_model.id, "base": base.id}
    tasks = Task.objects.filter(project=project, round=1)
    assert tasks.count() == r1.tasks_created == 2 * (TRAIN + EVAL)
    assert set(tasks.values_list("kind", flat=True)) == {Kind.PAIRWISE}
    assert Completion.objects.filter(model_version_id=sft_model.id).count() == TRAIN + EVAL
    assert Annotation.objects.filter(task__project=project).count() == TRAIN + EVAL
    assert [kind for kind, in TrainingJob.objects.filter(project=project)
            .exclude(kind="generate").order_by("id").values_list("kind")] == [
        "sft", "reward", "raft",
    ]  # fmt: skip
