"""What a label-based job trains on: the preference export, with chat prompts kept as messages
so the training code renders them as the policy sees them (reward_text, TRL's templates)."""

import hashlib
import json

import pytest

from annotator import services
from annotator.export import ExportParams, export_start
from annotator.models import Completion, Prompt, Task, TaskCompletion
from tests.factories import make_task
from trainer.algorithms.reward_data import rows_to_groups
from trainer.models import TrainingJob
from trainer.snapshots import snapshot_freeze

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
]


def chat_task(project) -> Task:
    prompt = Prompt.objects.create(project=project, messages=CHAT)
    task = Task.objects.create(project=project, prompt=prompt, kind=project.kind, overlap=1)
    for position, text in enumerate(["Blue.", "I like turtles."]):
        completion = Completion.objects.create(prompt=prompt, text=text)
        TaskCompletion.objects.create(task=task, completion=completion, position=position)
    return task


def label_everything(project, labeler) -> None:
    while (lease := services.task_claim_next(project=project, labeler=labeler)) is not None:
        task = Task.objects.get(pk=lease.task_id)
        services.annotation_submit(task=task, labeler=labeler, answer={"choice": "a"})


def freeze(project, tmp_path) -> tuple[TrainingJob, list[dict]]:
    job = TrainingJob.objects.create(project=project, kind="reward", output_dir=str(tmp_path))
    path = snapshot_freeze(job=job, directory=tmp_path)
    job.refresh_from_db()
    return job, [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.django_db
def test_a_chat_prompt_stays_its_messages_and_a_text_prompt_its_text(project, bob, tmp_path):
    chat = chat_task(project)
    plain = make_task(project)
    label_everything(project, bob)

    job, rows = freeze(project, tmp_path)

    by_task = {row["task_id"]: row for row in rows}
    assert by_task[chat.id]["prompt"] == CHAT
    assert by_task[plain.id]["prompt"] == plain.prompt.text
    assert job.snapshot_rows == 2
    # The public export flattens the chat to text; the snapshot keeps everything else equal.
    public = b"".join(export_start(project=project, params=ExportParams()).chunks())
    exported = {row["task_id"]: row for row in map(json.loads, public.splitlines())}
    assert exported[chat.id]["prompt"] == "system: Be brief.\n\nuser: Name a colour.\n\nassistant: "
    assert {k: v for k, v in by_task[chat.id].items() if k != "prompt"} == {
        k: v for k, v in exported[chat.id].items() if k != "prompt"
    }
    # And reward training reads both kinds of row.
    groups = rows_to_groups(rows)
    assert sorted(type(g.prompt).__name__ for g in groups) == ["list", "str"]


@pytest.mark.django_db
def test_with_plain_prompts_the_snapshot_is_the_export_byte_for_byte(project, bob, tmp_path):
    for _ in range(3):
        make_task(project)
    label_everything(project, bob)

    job, rows = freeze(project, tmp_path)

    public = b"".join(export_start(project=project, params=ExportParams()).chunks())
    assert job.snapshot_sha256 == hashlib.sha256(public).hexdigest() and len(rows) == 3
