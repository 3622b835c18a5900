"""Writes of labeling work: tasks over completions, and completions a model generated.

The import code and the training loop both make tasks; they make them here, so the labeling
app alone writes its own tables (docs/architecture.md: annotator/ never imports trainer/, and
trainer/ writes annotator's rows only through these services).
"""

import dataclasses
from dataclasses import dataclass, field

from annotator.models import Completion, Project, Prompt, Task, TaskCompletion

BATCH = 1000


@dataclass(frozen=True)
class NewTask:
    """One task to create: its prompt, kind and completions in the order they are shown."""

    prompt_id: int
    kind: str
    completion_ids: tuple[int, ...]
    priority: int = 0
    gold: dict | None = None
    # A gold task is outside the dataset's overlap (annotator/gold.py): complete from the start.
    is_complete: bool = False
    round: int | None = None
    meta: dict = field(default_factory=dict)


def tasks_create(*, project: Project, tasks: list[NewTask]) -> int:
    """Bulk-create the tasks and their completion links (the project's overlap on each), in the
    caller's transaction. Sends no signals, like bulk_create. Returns how many were made."""
    rows = Task.objects.bulk_create([_task_row(project, t) for t in tasks], batch_size=BATCH)
    TaskCompletion.objects.bulk_create(
        [
            TaskCompletion(task=row, completion_id=completion_id, position=position)
            for row, t in zip(rows, tasks, strict=True)
            for position, completion_id in enumerate(t.completion_ids)
        ],
        batch_size=BATCH,
    )
    return len(rows)


def _task_row(project: Project, task: NewTask) -> Task:
    fields = dataclasses.asdict(task)
    del fields["completion_ids"]  # the links, written after the tasks have ids
    return Task(project=project, overlap=project.overlap, **fields)


@dataclass(frozen=True)
class Sample:
    """One response a model generated for one of the project's prompts."""

    prompt_id: int
    text: str
    meta: dict = field(default_factory=dict)


def completions_generated_create(
    *, project: Project, model_version_id: int | None, generation: dict, samples: list[Sample]
) -> int:
    """Store a model's samples as completions of their prompts, tagged with the model and the
    generation settings. Samples for prompts outside the project are left out. Returns how many
    were stored."""
    prompt_ids = set(Prompt.objects.filter(project=project).values_list("id", flat=True))
    completions = [
        Completion(
            prompt_id=s.prompt_id,
            # A byte-level tokenizer can sample the byte 0, which PostgreSQL text cannot hold.
            text=s.text.replace("\x00", ""),
            source=Completion.Source.GENERATED,
            model_version_id=model_version_id,
            generation=generation,
            meta=s.meta,
        )
        for s in samples
        if s.prompt_id in prompt_ids
    ]
    Completion.objects.bulk_create(completions, batch_size=BATCH)
    return len(completions)
