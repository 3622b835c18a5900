"""annotator/task_services.py: the labeling app's own writes of tasks and generated completions,
which the import code and the training loop share."""

import pytest

from annotator.models import Completion, Kind, Task
from annotator.task_services import NewTask, Sample, completions_generated_create, tasks_create
from tests.factories import ProjectFactory, PromptFactory

pytestmark = pytest.mark.django_db


def test_it_creates_tasks_with_their_completions_in_order_and_the_projects_overlap():
    project = ProjectFactory(overlap=3)
    prompt = PromptFactory(project=project)
    a, b = (Completion.objects.create(prompt=prompt, text=t) for t in "ab")
    made = tasks_create(
        project=project,
        tasks=[
            NewTask(prompt.id, Kind.PAIRWISE, (b.id, a.id), priority=5, round=2, meta={"x": 1}),
            NewTask(prompt.id, Kind.LIKERT, (a.id,)),
        ],
    )
    assert made == 2
    pair, single = Task.objects.filter(project=project).order_by("id")
    assert [tc.completion_id for tc in pair.task_completions.all()] == [b.id, a.id]
    assert (pair.overlap, pair.priority, pair.round, pair.meta) == (3, 5, 2, {"x": 1})
    assert [tc.completion_id for tc in single.task_completions.all()] == [a.id]


def test_it_stores_only_samples_of_the_projects_prompts_without_nul_bytes():
    project = ProjectFactory()
    mine, theirs = PromptFactory(project=project), PromptFactory(project=ProjectFactory())
    stored = completions_generated_create(
        project=project,
        model_version_id=7,
        generation={"temperature": 1.0},
        samples=[Sample(mine.id, "a\x00b", {"job": 1}), Sample(theirs.id, "c", {"job": 1})],
    )
    assert stored == 1
    (c,) = Completion.objects.filter(source=Completion.Source.GENERATED)
    assert (c.prompt_id, c.text, c.model_version_id, c.meta) == (mine.id, "ab", 7, {"job": 1})
