"""Hand-made annotation sets for the export tests.

Annotations are written directly (the export only reads them); each helper stores what the
answer services would store for that answer.
"""

import json

from annotator.export import ExportParams, export_start
from annotator.models import Annotation, Completion, Kind, Project, Prompt, Task, TaskCompletion
from tests.factories import UserFactory


def labelers(n: int) -> list:
    return [UserFactory(username=f"labeler{i}") for i in range(1, n + 1)]


def prompt_for(project: Project, text: str = "", *, messages=None, split="train") -> Prompt:
    return Prompt.objects.create(project=project, text=text, messages=messages, split=split)


def task_over(prompt: Prompt, texts: list[str], *, kind: str, round_=None):
    """A task over new completions of `prompt`; returns (task, [completions])."""
    completions = [Completion.objects.create(prompt=prompt, text=t) for t in texts]
    task = Task.objects.create(
        project=prompt.project, prompt=prompt, kind=kind, round=round_, overlap=3
    )
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
    )
    return task, completions


def pick(task: Task, labeler, choice, *, strength=None) -> Annotation:
    """A pairwise answer: `choice` is the preferred Completion, or "tie" / "both_bad"."""
    ids = list(task.task_completions.values_list("completion_id", flat=True))
    fields = {"verdict": choice} if isinstance(choice, str) else {
        "verdict": Annotation.Verdict.PREFERRED,
        "chosen_id": choice.id,
        "rejected_id": next(i for i in ids if i != choice.id),
        "strength": strength,
    }  # fmt: skip
    return Annotation.objects.create(
        task=task, labeler=labeler, kind=Kind.PAIRWISE, shown_order=ids, **fields
    )


def rank(task: Task, labeler, order: list[Completion]) -> Annotation:
    return Annotation.objects.create(
        task=task, labeler=labeler, kind=Kind.RANKING, ranking=[c.id for c in order]
    )


def rate(task: Task, labeler, score=None, *, scores=None, flags=(), notes="") -> Annotation:
    return Annotation.objects.create(
        task=task,
        labeler=labeler,
        kind=Kind.LIKERT,
        score=score,
        scores=scores or {},
        flags=list(flags),
        notes=notes,
    )


def run_export(project: Project, **params) -> tuple[list[dict], dict]:
    """The JSONL export's rows, and what it dropped."""
    job = export_start(project=project, params=ExportParams(**params))
    data = b"".join(job.chunks())
    return [json.loads(line) for line in data.splitlines()], dict(job.stats.dropped)


def pairs_of(rows: list[dict]) -> list[tuple]:
    """(chosen text, rejected text, votes, agreement) of each row, rounded for comparison."""
    return [(r["chosen"], r["rejected"], r["votes"], round(r["agreement"], 4)) for r in rows]
