"""The `sft` schemas (demonstrations and edit tasks' revisions) and revisions in
`preference`; the sft export loads with `datasets` and trains TRL's SFTTrainer."""

import os

import pytest

from annotator.models import Kind, Membership
from annotator.services import annotation_submit, task_claim_next
from tests.annotator.exportkit import labelers, pick, prompt_for, run_export, task_over
from tests.factories import MembershipFactory, ProjectFactory, make_task


def written(project, user, answer):
    lease = task_claim_next(project=project, labeler=user)
    return annotation_submit(task=lease.task, labeler=user, answer=answer).annotation


def members(project, n):
    users = labelers(n)
    for user in users:
        MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    return users


@pytest.fixture
def demos(db):
    """A demonstration project: a plain prompt and a chat, one demonstration each."""
    project = ProjectFactory(kind=Kind.DEMONSTRATION)
    (user,) = members(project, 1)
    plain = make_task(project)
    chat = make_task(project)
    chat.prompt.messages = [{"role": "user", "content": "Hi"}]
    chat.prompt.text = ""
    chat.prompt.save()
    first = written(project, user, {"text": "A plain answer."})
    second = written(project, user, {"text": "Hello!"})
    return project, user, (plain, chat), (first, second)


@pytest.fixture
def edits(db):
    project = ProjectFactory(kind=Kind.EDIT)
    (user,) = members(project, 1)
    task = make_task(project, texts=["The sky is green."])
    make_task(project, texts=["Fine as it is."])
    revised = written(project, user, {"text": "The sky is blue.", "critique": "Wrong."})
    unchanged = written(project, user, {"text": "Fine as it is."})
    return project, task, revised, unchanged


def test_sft_gives_prompt_and_completion_and_a_chat_flattened(demos):
    project, user, (plain, chat), (first, second) = demos
    rows, _ = run_export(project, schema="sft")
    assert rows == [
        {"prompt": plain.prompt.text, "completion": "A plain answer.", "kind": "demonstration",
         "task_id": plain.id, "prompt_id": plain.prompt_id, "annotation_id": first.id,
         "labeler": user.id, "round": None, "split": "train"},
        {"prompt": "user: Hi\n\nassistant: ", "completion": "Hello!", "kind": "demonstration",
         "task_id": chat.id, "prompt_id": chat.prompt_id, "annotation_id": second.id,
         "labeler": user.id, "round": None, "split": "train"},
    ]  # fmt: skip


def test_sft_conversational_gives_messages_ending_in_the_reply(demos):
    project, _, (plain, _), _ = demos
    rows, _ = run_export(project, schema="sft-conversational")
    assert [r["messages"] for r in rows] == [
        [{"role": "user", "content": plain.prompt.text},
         {"role": "assistant", "content": "A plain answer."}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    ]  # fmt: skip


def test_revisions_are_sft_rows_and_flagged_preferences(edits):
    project, task, revised, unchanged = edits
    rows, _ = run_export(project, schema="sft")
    assert [(r["completion"], r["kind"]) for r in rows] == [
        ("The sky is blue.", "edit"), ("Fine as it is.", "edit"),
    ]  # fmt: skip
    prefs, _ = run_export(project)
    # Only the changed response is a preference: the revision over the original, flagged.
    assert [(r["chosen"], r["rejected"], r["source"], r["group"]) for r in prefs] == [
        ("The sky is blue.", "The sky is green.", "edit", f"a{revised.id}")
    ]
    unpaired, _ = run_export(project, schema="unpaired")
    assert [(r["completion"], r["label"]) for r in unpaired] == [
        ("The sky is blue.", True), ("The sky is green.", False),
    ]  # fmt: skip
    assert run_export(project, revisions=False)[0] == []
    assert run_export(project, schema="sft", revisions=False)[0] == []


def test_revisions_come_after_comparisons_in_a_mixed_project(edits):
    project, *_ = edits
    (person,) = labelers(1)
    pair, (x, _) = task_over(prompt_for(project, "compare"), ["x", "y"], kind=Kind.PAIRWISE)
    pick(pair, person, x)
    prefs, _ = run_export(project)
    assert [r["source"] for r in prefs] == ["pairwise", "edit"]


def test_the_api_offers_the_sft_schemas(demos, api_as):
    project, *_ = demos
    admin = labelers(2)[1]
    MembershipFactory(project=project, user=admin, role=Membership.Role.ADMIN)
    response = api_as(admin).get(f"/api/v1/projects/{project.id}/export/", {"schema": "sft"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.count("\n") == 2 and '"completion":"Hello!"' in body
    parquet = api_as(admin).get(
        f"/api/v1/projects/{project.id}/export/",
        {"schema": "sft-conversational", "format": "parquet"},
    )
    assert parquet.status_code == 200


@pytest.mark.slow
def test_trl_sft_trainer_trains_on_the_sft_export(db, tmp_path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset
    from transformers import LlamaForCausalLM, set_seed
    from trl import SFTConfig, SFTTrainer

    from annotator.export import ExportParams, export_start
    from tests.annotator.test_export_trl import (
        OBJECTS,
        changed,
        common_args,
        snapshot,
        tiny_config,
        tiny_tokenizer,
    )

    set_seed(0)
    project = ProjectFactory(kind=Kind.DEMONSTRATION)
    (user,) = members(project, 1)
    for _ in range(8):
        make_task(project)
    for i in range(8):
        written(project, user, {"text": f"please say more about {OBJECTS[i % 4]}."})
    tokenizer = tiny_tokenizer()
    for schema in ["sft", "sft-conversational"]:
        job = export_start(project=project, params=ExportParams(schema=schema))
        path = tmp_path / f"{schema}.jsonl"
        path.write_bytes(b"".join(job.chunks()))
        dataset = load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert len(dataset) == 8
        policy = LlamaForCausalLM(tiny_config(tokenizer))
        before = snapshot(policy)
        trainer = SFTTrainer(
            model=policy,
            args=SFTConfig(**common_args(tmp_path, schema)),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        trainer.train()
        assert [log["loss"] for log in trainer.state.log_history if "loss" in log], schema
        assert changed(trainer.model, before), schema
