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
