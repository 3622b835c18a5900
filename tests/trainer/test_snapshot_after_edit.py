"""A job keeps the labels it trained on when a labeler later corrects one; a new job (and the
export) gets the correction."""

import hashlib
import json

import pytest

from annotator import services
from annotator.models import Annotation
from tests.factories import make_task
from trainer.models import TrainingJob
from trainer.snapshots import snapshot_freeze


def freeze(project, directory) -> tuple[TrainingJob, bytes]:
    directory.mkdir()
    job = TrainingJob.objects.create(project=project, kind="reward", output_dir=str(directory))
    path = snapshot_freeze(job=job, directory=directory)
    job.refresh_from_db()
    return job, path.read_bytes()


@pytest.mark.django_db
def test_a_frozen_snapshot_keeps_what_it_trained_on_after_an_edit(project, bob, tmp_path):
    task = make_task(project, texts=["Right.", "Wrong."])
    lease = services.task_claim_next(project=project, labeler=bob)
    right = "a" if lease.shown_order[0] == task.completions.get(text="Right.").id else "b"
    wrong = "b" if right == "a" else "a"
    given = services.annotation_submit(task=task, labeler=bob, answer={"choice": right})
    job, before = freeze(project, tmp_path / "first")

    services.annotation_edit(annotation_id=given.annotation.id, user=bob, answer={"choice": wrong})

    assert Annotation.objects.get().chosen.text == "Wrong."
    frozen = (tmp_path / "first" / "rows.jsonl").read_bytes()
    assert frozen == before and hashlib.sha256(frozen).hexdigest() == job.snapshot_sha256
    assert json.loads(frozen)["chosen"] == "Right."
    _, after = freeze(project, tmp_path / "second")
    assert json.loads(after)["chosen"] == "Wrong."
