"""How many rows a job's data gives, and how it splits, before and after it runs.

The launch form shows it as the dataset fields change; the job page says what the job trained
on. The count is the snapshot's own (trainer/snapshots.py), so the form and the job agree; the
split is the algorithm's (val_fraction and seed through `split_rows`).
"""

from dataclasses import dataclass

from annotator.models import Project
from trainer.algorithms.common import split_rows
from trainer.kinds import LABEL_KINDS, OUTCOME_KINDS
from trainer.models import TrainingJob
from trainer.snapshots import dataset_validate, snapshot_chunks

# Below these, training says little: a reward model's validation accuracy from a handful of
# held-out pairs is noise (one or two rows give 0 or 1), and a policy step over a few prompts
# overfits them.
FLOORS = {"reward": 200, "dpo": 200, "sft": 100, "prompt_reward": 200}
PROMPT_FLOOR = 16
# Below this many held-out rows, a validation accuracy moves in steps of 5 % or more.
VAL_FLOOR = 20


@dataclass(frozen=True)
class DataSize:
    rows: int
    train: int
    val: int
    unit: str  # "labelled pairs" or "prompts"
    floor: int

    @property
    def warning(self) -> str:
        if self.rows == 0:
            return f"No {self.unit} match these settings: the job would fail at its start."
        if self.rows < self.floor:
            return (
                f"Only {self.rows} {self.unit}: below {self.floor}, the results say little. "
                "Collect more labels or loosen the filters."
            )
        if 0 < self.val < VAL_FLOOR:
            return (
                f"Only {self.val} rows held out for validation: its accuracy moves in steps of "
                f"{100 / self.val:.0f} %."
            )
        return ""


def data_size(*, kind: str, rows: int, config: dict) -> DataSize:
    val_fraction = config.get("val_fraction") or 0.0
    try:
        train, val = split_rows(list(range(rows)), float(val_fraction), int(config.get("seed", 0)))
    except (TypeError, ValueError):
        train, val = list(range(rows)), []
    labelled = kind in LABEL_KINDS or kind in OUTCOME_KINDS
    unit = "labelled rows" if labelled else "prompts"
    if kind in OUTCOME_KINDS:
        # The selector holds out whole queries, so the split here is approximate.
        unit = "logged outcomes (query, strategy)"
    return DataSize(
        rows=rows,
        train=len(train),
        val=len(val),
        unit=unit,
        floor=FLOORS.get(kind, 0) if labelled else PROMPT_FLOOR,
    )


def dataset_count(*, project: Project, kind: str, dataset: dict) -> int:
    """Rows the snapshot of a job with these settings would have now; a JobError names a
    setting the job would refuse (e.g. the eval split for a training kind)."""
    dataset = dataset_validate(kind=kind, dataset=dataset)
    job = TrainingJob(project=project, kind=kind, dataset=dataset)
    return sum(chunk.count(b"\n") for chunk in snapshot_chunks(job))


def job_data_size(job: TrainingJob) -> DataSize | None:
    """What a job trained on, once its snapshot was taken."""
    if job.snapshot_rows is None:
        return None
    return data_size(kind=job.kind, rows=job.snapshot_rows, config=job.config or {})
