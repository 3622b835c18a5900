"""The vectorised pairwise metrics give what the plain functions give, on random data."""

import random
from datetime import UTC, date

import numpy as np
import pytest

from annotator.quality import agreement as ag
from annotator.quality import arrays
from annotator.quality.stats import Row, consensus_agreement


def random_pairwise(seed, tasks=80, labelers=6):
    rng = random.Random(seed)
    rows = []
    for t in range(1, tasks + 1):
        for lab in sorted(rng.sample(range(1, labelers + 1), rng.randint(1, 4))):
            rows.append((t, lab, rng.choice([0, 0, 0, 1, 1, 2, 3])))
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    p = arrays.Pairwise(
        task=np.array(cols[0]), labeler=np.array(cols[1]), code=np.array(cols[2]),
        left=np.full(n, -1, dtype=np.int8), time_ms=np.full(n, np.nan),
        round=np.full(n, -1), prompt=np.array(cols[0]), chosen=np.full(n, -1),
        rejected=np.full(n, -1), simulated=np.zeros(n, dtype=np.int64),
        day=np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    answers = [ag.Answer(t, lab, ag.CATEGORIES[c]) for t, lab, c in rows]
    return p, answers


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_plain_functions(seed):
    p, answers = random_pairwise(seed)
    assert arrays.percent_agreement(p) == pytest.approx(ag.percent_agreement(answers))
    fast = {(x.labeler_a, x.labeler_b): x for x in arrays.labeler_pairs(p)}
    plain = {(x.labeler_a, x.labeler_b): x for x in ag.labeler_pairs(answers)}
    assert fast.keys() == plain.keys()
    for key, x in plain.items():
        assert (fast[key].shared, fast[key].percent) == (x.shared, pytest.approx(x.percent))
        assert fast[key].kappa == pytest.approx(x.kappa)
    # The page's mean without the pairs' objects: the very same number.
    assert arrays.mean_kappa(p) == ag.mean_kappa(list(fast.values())) is not None
    expected = ag.krippendorff_alpha(answers, level="nominal")
    got = arrays.nominal_alpha(p)
    assert got == pytest.approx(expected)
    rows = [
        Row(0, a.task_id, a.labeler_id, "pairwise", a.value if a.value in ("tie", "both_bad")
            else "preferred", *((1, 2) if a.value == "first" else (2, 1) if a.value == "second"
            else (None, None)), None, None, [], None, {}, [], None, False, None, a.task_id)
        for a in answers
    ]  # fmt: skip
    compared = {lab: v for lab, v in arrays.consensus(p).items() if v[1]}
    assert compared and compared == consensus_agreement(rows)
    # Per round (a task's round is its answers' round): as the plain function on each
    # round's answers.
    p.round = p.task % 4
    by_round = arrays.percent_agreement_by_round(p)
    assert [r for r, _ in by_round] == [0, 1, 2, 3]
    for r, value in by_round:
        expected = ag.percent_agreement([a for a in answers if a.task_id % 4 == r])
        assert value == (None if expected is None else pytest.approx(expected))
    # Rows out of task order are grouped as np.unique groups them.
    shuffled = p.where(np.random.default_rng(seed).permutation(len(p)))
    assert arrays.percent_agreement(shuffled) == pytest.approx(arrays.percent_agreement(p))


@pytest.mark.django_db
def test_it_loads_a_projects_answers_as_stored(project, alice):
    """arrays.load (one aggregated binary read on PostgreSQL, rows on SQLite) gives each
    pairwise answer's fields, sorted by task then labeler, and nothing of another project."""
    from annotator.models import Annotation
    from tests.annotator.quality.helpers import answer, labelers, pairwise_tasks
    from tests.factories import ProjectFactory

    other_project = ProjectFactory(created_by=alice)

    tasks = pairwise_tasks(project, 4)
    people = labelers(project, 3)
    choices = ["first", "second", "tie", "both_bad"]
    for i, task in enumerate(tasks):
        ids = sorted(task.task_completions.values_list("completion_id", flat=True))
        # Labelers in reverse id order, so the result's order is not the insertion order.
        for j, user in enumerate(reversed(people)):
            answer(task, user, choices[(i + j) % 4], left=ids[(i + j) % 2],
                   seconds=None if j == 1 else 2 + i)  # fmt: skip
    answer(pairwise_tasks(other_project, 1)[0], labelers(other_project, 1, "o")[0], "first")
    p = arrays.load(project.id)
    stored = Annotation.objects.filter(task__project=project).order_by("task_id", "labeler_id")
    assert len(p) == stored.count() == 12
    for i, a in enumerate(stored.select_related("task")):
        code = ag.CODE[ag.pairwise_category(a.verdict, a.chosen_id, a.rejected_id)]
        left = -1 if a.chosen_id is None else int(a.chosen_id == a.shown_order[0])
        assert (p.task[i], p.labeler[i], p.code[i], p.left[i]) == (a.task_id, a.labeler_id,
                                                                    code, left)  # fmt: skip
        assert (p.chosen[i], p.rejected[i]) == (a.chosen_id or -1, a.rejected_id or -1)
        assert (p.prompt[i], p.round[i]) == (a.task.prompt_id, a.task.round or -1)
        if a.time_spent_ms is None:
            assert np.isnan(p.time_ms[i])
        else:
            assert p.time_ms[i] == a.time_spent_ms
        assert p.day[i] == (a.created_at.astimezone(UTC).date() - date(1970, 1, 1)).days
    assert len(arrays.load(other_project.id)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("one_value", [True, False])
def test_it_reads_back_every_field_at_its_limits(project, alice, monkeypatch, one_value):
    """PostgreSQL packs the small columns into two 8-byte words (arrays._PACKED): the largest
    round, time and ids a column allows, a day before 1970, no time, a tie (no side) and a
    simulated answer come back as a plain read of the same statement gives them, in one
    aggregated value or in groups of tasks (a project past arrays.ONE_VALUE answers)."""
    from datetime import datetime

    from annotator.models import Annotation, Task
    from tests.annotator.quality.helpers import answer, labelers, pairwise_tasks
    from webapp import sql

    biggest = 2**31 - 1  # PositiveIntegerField, and an int time_spent_ms
    tasks = pairwise_tasks(project, 3)
    people = labelers(project, 2)
    for i, task in enumerate(tasks):
        for j, user in enumerate(people):
            answer(task, user, ["first", "second", "tie"][(i + j) % 3], seconds=1 + i)
    Task.objects.filter(id=tasks[0].id).update(round=biggest)
    Task.objects.filter(id=tasks[1].id).update(round=0)
    first, second, *_ = Annotation.objects.filter(task__project=project).order_by("id")
    Annotation.objects.filter(id=first.id).update(
        time_spent_ms=biggest,
        labeler_kind="simulated",
        created_at=datetime(1969, 7, 20, tzinfo=UTC),
    )
    Annotation.objects.filter(id=second.id).update(time_spent_ms=None)
    if not one_value:
        monkeypatch.setattr(arrays, "ONE_VALUE", 0)
        monkeypatch.setattr(arrays, "GROUP_TASKS", 1)
    p = arrays.load(project.id)
    plain = np.array(sql.all_rows(arrays._sql(), [project.id, "pairwise"]), dtype=np.int64)
    plain = plain[np.lexsort((plain[:, 1], plain[:, 0]))]
    time_ms = np.where(plain[:, 4] < 0, np.nan, plain[:, 4])
    columns = ["task", "labeler", "code", "left", None, "round", "prompt", "chosen", "rejected",
               "simulated", "day"]  # fmt: skip
    for i, name in enumerate(columns):
        if name:
            assert getattr(p, name).tolist() == plain[:, i].tolist(), name
    np.testing.assert_array_equal(p.time_ms, time_ms)
    assert biggest in p.round.tolist() and biggest in p.time_ms.tolist()
    assert p.day.min() == (date(1969, 7, 20) - date(1970, 1, 1)).days < 0
    assert set(p.left.tolist()) == {-1, 0, 1} and p.simulated.sum() == 1
    assert np.isnan(p.time_ms).sum() == 1
    assert len(arrays.load(project.id, answers=len(p))) == len(p)


@pytest.mark.parametrize("biggest_task", [10**6, 2**61])
def test_it_sorts_by_task_then_labeler_as_lexsort_does(biggest_task):
    """One sort of a combined key, or lexsort where that key could overflow: the same order."""
    rng = np.random.default_rng(0)
    task = rng.integers(1, biggest_task, 5000)
    labeler = rng.integers(1, 300, 5000)
    task[:100] = task[100:200]  # shared tasks, so the labeler decides
    order = arrays._by_task_then_labeler(task, labeler)
    np.testing.assert_array_equal(order, np.lexsort((labeler, task)))
