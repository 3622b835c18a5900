"""Freeze the rows a job trains on, through the export code, with their hash and count.

The snapshot is the export's own JSONL bytes (annotator/export), so its sha256 equals what
`GET /api/v1/projects/{id}/export/?until=<the job's snapshot time>` returns for the same
parameters: every model can say exactly which labels it was trained on.
"""

import hashlib
from pathlib import Path

from annotator.export import ExportParams, export_start
from trainer.exceptions import JobError
from trainer.models import TrainingJob

# Which export each kind trains on.
SCHEMA_FOR_KIND = {
    TrainingJob.Kind.REWARD: "preference",
    TrainingJob.Kind.DPO: "preference",
}


def snapshot_chunks(job: TrainingJob):
    """The job's training rows as JSONL chunks, in the export's stable order."""
    schema = SCHEMA_FOR_KIND.get(job.kind)
    if schema is None:
        raise JobError(f"No dataset source for {job.kind} jobs yet.")
    export = export_start(project=job.project, params=ExportParams(schema=schema))
    yield from export.chunks()


def snapshot_freeze(*, job: TrainingJob, directory: Path) -> Path:
    """Write the rows to `directory/rows.jsonl` and store their sha256 and count on the job."""
    path = directory / "rows.jsonl"
    digest, count = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for chunk in snapshot_chunks(job):
            handle.write(chunk)
            digest.update(chunk)
            count += chunk.count(b"\n")
    if count == 0:
        raise JobError("The dataset snapshot is empty: there are no usable labels yet.")
    TrainingJob.objects.filter(id=job.id).update(
        snapshot_sha256=digest.hexdigest(), snapshot_rows=count
    )
    return path
