"""The outcome per (query, strategy) from each source, on hand-made annotations."""

import pytest

from annotator.importing import project_import
from annotator.models import Annotation, Completion, Kind, Prompt, PromptStrategy, Task
from annotator.strategies.outcomes import OutcomeError, answer_is_correct, outcome_table
from tests.factories import MembershipFactory, ProjectFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


def completion(prompt, strategy, text="an answer", **meta):
    return Completion.objects.create(prompt=prompt, text=text, meta={"strategy": strategy, **meta})


def task_over(project, prompt, completions, kind):
    task = Task.objects.create(project=project, prompt=prompt, kind=kind)
    for i, c in enumerate(completions):
        task.task_completions.create(completion=c, position=i)
    return task


def cells(table):
    return {
        (row.prompt_id, s): (round(c.value, 4), c.n)
        for row in table.rows
        for s, c in row.cells.items()
    }


def test_it_reads_imported_outcomes_averaging_repeats():
    project = ProjectFactory()
    p1, p2 = PromptFactory(project=project), PromptFactory(project=project)
    completion(p1, "cot", outcome=1.0)
    completion(p1, "cot", outcome=0.0)
    completion(p1, "plain", outcome=True)
    completion(p2, "plain", outcome=0.25)
    Completion.objects.create(prompt=p2, text="no strategy", meta={"outcome": 1.0})
    table = outcome_table(project=project, source="imported")
    assert cells(table) == {
        (p1.id, "cot"): (0.5, 2),
        (p1.id, "plain"): (1.0, 1),
        (p2.id, "plain"): (0.25, 1),
    }
    assert table.strategies == ["cot", "plain"]
    assert sorted(r["outcome"] for r in table.training_rows()) == [0.25, 0.5, 1.0]


def test_it_scores_gold_correctness_against_the_reference_answer():
    project = ProjectFactory()
    prompt = PromptFactory(project=project, meta={"answer": "391"})
    other = PromptFactory(project=project)  # no reference answer: not in the table
    completion(prompt, "cot", "17 x 23 = 17 x 20 + 17 x 3\n= 340 + 51\nThe answer is 391.")
    completion(prompt, "plain", "The answer is 381.")
    completion(prompt, "plain", "391")
    completion(other, "plain", "391")
    table = outcome_table(project=project, source="gold")
    assert cells(table) == {(prompt.id, "cot"): (1.0, 1), (prompt.id, "plain"): (0.5, 2)}


def test_answer_matching_is_by_the_last_line_and_whole_words():
    assert answer_is_correct("Paris", "Let me think.\nIt is paris.")
    assert not answer_is_correct("391", "The answer is 1391")
    assert not answer_is_correct("391", "391\nor maybe not")
    assert not answer_is_correct("", "anything")


def test_it_thresholds_likert_ratings_and_the_threshold_is_configurable():
    project = ProjectFactory(kind=Kind.LIKERT, likert_points=7)
    a, b = UserFactory(), UserFactory()
    prompt = PromptFactory(project=project)
    cot, plain = completion(prompt, "cot"), completion(prompt, "plain")
    t_cot = task_over(project, prompt, [cot], Kind.LIKERT)
    t_plain = task_over(project, prompt, [plain], Kind.LIKERT)
    for task, labeler, score in ((t_cot, a, 6), (t_cot, b, 4), (t_plain, a, 3), (t_plain, b, 5)):
        Annotation.objects.create(task=task, labeler=labeler, kind=Kind.LIKERT, score=score)
    default = outcome_table(project=project, source="likert")  # middle of 1-7: 4
    assert default.likert_threshold == 4
    assert cells(default) == {(prompt.id, "cot"): (1.0, 2), (prompt.id, "plain"): (0.5, 2)}
    strict = outcome_table(project=project, source="likert", likert_threshold=6)
    assert cells(strict) == {(prompt.id, "cot"): (0.5, 2), (prompt.id, "plain"): (0.0, 2)}
    with pytest.raises(OutcomeError, match="between 1 and 7"):
        outcome_table(project=project, source="likert", likert_threshold=8)


def test_it_counts_pairwise_wins_between_strategies_on_one_query():
    project = ProjectFactory(kind=Kind.PAIRWISE)
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    prompt = PromptFactory(project=project)
    cot, plain, cot2 = (
        completion(prompt, "cot"),
        completion(prompt, "plain"),
        completion(prompt, "cot"),
    )
    task = task_over(project, prompt, [cot, plain], Kind.PAIRWISE)
    same = task_over(project, prompt, [cot, cot2], Kind.PAIRWISE)
    Annotation.objects.create(
        task=task, labeler=a, kind=Kind.PAIRWISE, verdict="preferred", chosen=cot, rejected=plain
    )
    Annotation.objects.create(task=task, labeler=b, kind=Kind.PAIRWISE, verdict="tie")
    Annotation.objects.create(task=task, labeler=c, kind=Kind.PAIRWISE, verdict="both_bad")
    # Two completions of one strategy: no comparison between strategies.
    Annotation.objects.create(
        task=same, labeler=a, kind=Kind.PAIRWISE, verdict="preferred", chosen=cot2, rejected=cot
    )
    table = outcome_table(project=project, source="pairwise")
    # cot: win 1 + tie 0.5 + both bad 0 over 3; plain: 0 + 0.5 + 0 over 3.
    assert cells(table) == {(prompt.id, "cot"): (0.5, 3), (prompt.id, "plain"): (0.1667, 3)}


def test_rankings_count_as_pairwise_wins():
    project = ProjectFactory(kind=Kind.RANKING)
    prompt = PromptFactory(project=project)
    x, y, z = completion(prompt, "x"), completion(prompt, "y"), completion(prompt, "z")
    task = task_over(project, prompt, [x, y, z], Kind.RANKING)
    Annotation.objects.create(
        task=task, labeler=UserFactory(), kind=Kind.RANKING, ranking=[y.id, x.id, z.id]
    )
    table = outcome_table(project=project, source="pairwise")
    assert cells(table) == {
        (prompt.id, "y"): (1.0, 2),
        (prompt.id, "x"): (0.5, 2),
        (prompt.id, "z"): (0.0, 2),
    }


def test_gold_tasks_are_left_out():
    project = ProjectFactory(kind=Kind.PAIRWISE)
    prompt = PromptFactory(project=project)
    cot, plain = completion(prompt, "cot"), completion(prompt, "plain")
    task = task_over(project, prompt, [cot, plain], Kind.PAIRWISE)
    Task.objects.filter(id=task.id).update(gold={"verdict": "preferred", "chosen_id": cot.id})
    Annotation.objects.create(
        task=task,
        labeler=UserFactory(),
        kind=Kind.PAIRWISE,
        verdict="preferred",
        chosen=cot,
        rejected=plain,
    )
    assert outcome_table(project=project, source="pairwise").rows == []


def test_auto_takes_the_first_source_with_data_and_defined_strategies_come_first():
    project = ProjectFactory()
    PromptStrategy.objects.create(project=project, name="zeta")
    prompt = PromptFactory(project=project, meta={"answer": "4"})
    completion(prompt, "alpha", "4")
    completion(prompt, "zeta", "5")
    table = outcome_table(project=project)
    assert table.source == "gold" and table.strategies == ["zeta", "alpha"]
    with pytest.raises(OutcomeError, match="source must be one of"):
        outcome_table(project=project, source="votes")


def test_the_import_takes_a_strategy_per_completion():
    project = ProjectFactory(kind=Kind.PAIRWISE)
    line = (
        '{"prompt": "What is 2+2?", "meta": {"answer": "4"}, "completions": ['
        '{"text": "Let us think. 2+2\\n4", "meta": {"strategy": "cot"}}, '
        '{"text": "5", "meta": {"strategy": "plain"}}]}\n'
    )
    assert project_import(project=project, data=line.encode(), fmt="jsonl") == 1
    metas = sorted(c.meta["strategy"] for c in Completion.objects.filter(prompt__project=project))
    assert metas == ["cot", "plain"]
    prompt = Prompt.objects.get(project=project)
    assert cells(outcome_table(project=project, source="gold")) == {
        (prompt.id, "cot"): (1.0, 1),
        (prompt.id, "plain"): (0.0, 1),
    }


def test_other_projects_outcomes_stay_out():
    mine, theirs = ProjectFactory(), ProjectFactory()
    completion(PromptFactory(project=theirs), "cot", outcome=1.0)
    MembershipFactory(project=theirs)
    assert outcome_table(project=mine, source="imported").rows == []
