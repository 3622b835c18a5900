"""Freeze the rows a job trains on, through the export code, with their hash and count."""

import hashlib
import json
from pathlib import Path

from trainer.exceptions import JobError
from trainer.models import TrainingJob


def snapshot_rows(job: TrainingJob):
    """The job's training rows, in the export's stable order."""
    raise JobError(f"No dataset source for {job.kind} jobs yet.")


def snapshot_freeze(*, job: TrainingJob, directory: Path) -> Path:
    """Write the rows to `directory/rows.jsonl` and store their sha256 and count on the job."""
    path = directory / "rows.jsonl"
    digest, count = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for row in snapshot_rows(job):
            line = (json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode()
            handle.write(line)
            digest.update(line)
            count += 1
    if count == 0:
        raise JobError("The dataset snapshot is empty: there are no usable labels yet.")
    TrainingJob.objects.filter(id=job.id).update(
        snapshot_sha256=digest.hexdigest(), snapshot_rows=count
    )
    return path
