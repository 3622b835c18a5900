"""What a label-based job trains on: the preference export, with chat prompts kept as messages
so the training code renders them as the policy sees them (reward_text, TRL's templates)."""

import hashlib
import json

import pytest

from annotator import services
from annotator.export import ExportParams, export_start
from annotator.models import Annotation, Completion, Kind, Prompt, Task, TaskCompletion
from tests.factories import ProjectFactory, UserFactory, make_task
from trainer.algorithms.reward_data import rows_to_groups
from trainer.exceptions import JobError
from trainer.models import TrainingJob
from trainer.snapshots import dataset_validate, snapshot_freeze

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


# --- Held out: eval-split prompts never reach a training snapshot ------------------------------

TRAINING_KINDS = ["reward", "dpo", "sft", "raft", "ppo", "rloo", "grpo"]


def answer_pairwise(task: Task, labeler) -> None:
    first, second = task.completions.order_by("id")
    Annotation.objects.create(
        task=task, labeler=labeler, kind=Kind.PAIRWISE, verdict="preferred",
        chosen=first, rejected=second,
    )  # fmt: skip


def snapshot_prompt_ids(project, kind: str, tmp_path, dataset=None) -> set[int]:
    job = TrainingJob.objects.create(
        project=project, kind=kind, output_dir=str(tmp_path), dataset=dataset or {}
    )
    path = snapshot_freeze(job=job, directory=tmp_path)
    return {json.loads(line)["prompt_id"] for line in path.read_text().splitlines()}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", TRAINING_KINDS)
def test_it_keeps_eval_prompts_out_of_every_training_snapshot(project, bob, tmp_path, kind):
    train, held_out = make_task(project), make_task(project)
    Prompt.objects.filter(id=held_out.prompt_id).update(split="eval")
    for task in (train, held_out):
        answer_pairwise(task, bob)

    assert snapshot_prompt_ids(project, kind, tmp_path) == {train.prompt_id}
    # Asking for every prompt by id does not let one through either.
    if kind in ("raft", "ppo", "rloo", "grpo"):
        ids = [train.prompt_id, held_out.prompt_id]
        assert snapshot_prompt_ids(project, kind, tmp_path, {"prompt_ids": ids}) == {
            train.prompt_id
        }


@pytest.mark.django_db
def test_a_generate_job_still_samples_eval_prompts(project, tmp_path):
    held_out = make_task(project)
    Prompt.objects.filter(id=held_out.prompt_id).update(split="eval")

    assert snapshot_prompt_ids(project, "generate", tmp_path) == {held_out.prompt_id}


@pytest.mark.parametrize("kind", TRAINING_KINDS)
def test_a_training_job_cannot_ask_for_the_eval_split(kind):
    with pytest.raises(JobError, match="held out"):
        dataset_validate(kind=kind, dataset={"split": "eval"})
    assert dataset_validate(kind="generate", dataset={"split": "eval"}) == {"split": "eval"}


# --- Rankings train as rankings ----------------------------------------------------------------


def rank(task: Task, labeler, order: list[int]) -> None:
    ids = list(task.completions.order_by("id").values_list("id", flat=True))
    Annotation.objects.create(
        task=task, labeler=labeler, kind=Kind.RANKING, ranking=[ids[i] for i in order]
    )


@pytest.mark.django_db
def test_a_reward_snapshot_keeps_a_rankings_pairs_in_one_row(bob, tmp_path):
    project = ProjectFactory(kind=Kind.RANKING, overlap=1)
    first, second = make_task(project, k=4), make_task(project, k=3)
    rank(first, bob, [2, 0, 3, 1])
    rank(second, bob, [1, 2, 0])

    job, rows = freeze(project, tmp_path)

    assert job.snapshot_rows == 2
    by_task = {row["task_id"]: row for row in rows}
    texts = list(first.completions.order_by("id").values_list("text", flat=True))
    assert by_task[first.id]["ranking"] == [texts[2], texts[0], texts[3], texts[1]]
    groups = rows_to_groups(rows)
    # All K(K-1)/2 pairs of each ranking in one batch element: 6 and 3.
    assert sorted(len(g.pairs) for g in groups) == [3, 6]


@pytest.mark.django_db
def test_a_ranking_with_pairs_dropped_stays_one_row_of_its_pairs(bob, tmp_path):
    """Two labelers who disagree on one pair: under majority that pair is dropped (a tie), the
    other two stay together."""
    project = ProjectFactory(kind=Kind.RANKING, overlap=2)
    task = make_task(project, k=3)
    rank(task, bob, [0, 1, 2])
    rank(task, UserFactory(), [1, 0, 2])

    job, rows = freeze(project, tmp_path)

    assert job.snapshot_rows == 1 and "ranking" not in rows[0]
    (group,) = rows_to_groups(rows)
    assert len(group.completions) == 3 and len(group.pairs) == 2


@pytest.mark.django_db
def test_dpo_and_sft_snapshots_still_take_a_rankings_pairs(bob, tmp_path):
    project = ProjectFactory(kind=Kind.RANKING, overlap=1)
    rank(make_task(project, k=3), bob, [0, 1, 2])
    for kind in ("dpo", "sft"):
        job = TrainingJob.objects.create(project=project, kind=kind, output_dir=str(tmp_path))
        snapshot_freeze(job=job, directory=tmp_path)
        job.refresh_from_db()
        assert job.snapshot_rows == 3
