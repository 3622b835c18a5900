"""Writes of labeling work: tasks over completions, and completions a model generated.

The import code and the training loop both make tasks; they make them here, so the labeling
app alone writes its own tables (docs/architecture.md: annotator/ never imports trainer/, and
trainer/ writes annotator's rows only through these services).
"""

import dataclasses
import itertools
import random
from dataclasses import dataclass, field

from annotator.models import Completion, Kind, Project, Prompt, Task, TaskCompletion

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


def strategy_comparisons_create(*, project: Project, job_id: int) -> int:
    """Pairwise tasks between prompt strategies (docs/prompt-optimisation.md): for each prompt,
    the first sample of a generate job under each strategy (`meta.strategy`) against each other
    strategy's, one task per pair, in an order drawn per task so no strategy is always shown
    first. Their answers fill the outcome table's pairwise source. Returns how many were made."""
    by_prompt: dict[int, dict[str, int]] = {}
    rows = Completion.objects.filter(
        prompt__project=project, meta__job=job_id, meta__sample_index=0
    ).order_by("id")
    for cid, prompt_id, meta in rows.values_list("id", "prompt_id", "meta"):
        strategy = (meta or {}).get("strategy")
        if isinstance(strategy, str):
            by_prompt.setdefault(prompt_id, {}).setdefault(strategy, cid)
    tasks = []
    for prompt_id, ids in sorted(by_prompt.items()):
        for a, b in itertools.combinations(sorted(ids), 2):
            pair = (ids[a], ids[b])
            if random.Random(f"{job_id}:{prompt_id}:{a}:{b}").random() < 0.5:
                pair = pair[::-1]
            tasks.append(
                NewTask(
                    prompt_id=prompt_id,
                    kind=Kind.PAIRWISE,
                    completion_ids=pair,
                    meta={"strategies": [a, b], "job": job_id},
                )
            )
    return tasks_create(project=project, tasks=tasks)
