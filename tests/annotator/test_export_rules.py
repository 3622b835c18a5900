"""How overlapping labels become preference pairs. Every expected row is worked out here by
hand from the answers, not copied from the export's output."""

import pytest

from annotator.models import Kind
from tests.annotator.exportkit import (
    labelers,
    pairs_of,
    pick,
    prompt_for,
    rank,
    run_export,
    task_over,
)


@pytest.fixture
def trio(db):
    return labelers(3)


def pairwise_task(project, name: str, round_=None):
    prompt = prompt_for(project, f"Question {name}?")
    task, (a, b) = task_over(prompt, [f"{name}-a", f"{name}-b"], kind=Kind.PAIRWISE, round_=round_)
    return task, a, b


def test_it_exports_the_majority_answer_as_one_pair(project, trio):
    task, a, b = pairwise_task(project, "q1", round_=2)
    l1, l2, l3 = trio
    pick(task, l1, a)
    pick(task, l2, a)
    pick(task, l3, b)

    rows, dropped = run_export(project)

    # Two of three labelers preferred a: one row, a over b, agreement 2/3.
    assert pairs_of(rows) == [("q1-a", "q1-b", 3, 0.6667)]
    row = rows[0]
    assert row["prompt"] == "Question q1?"
    assert (row["chosen_id"], row["rejected_id"]) == (a.id, b.id)
    assert row["labelers"] == sorted(u.id for u in trio)
    assert (row["task_id"], row["round"], row["split"]) == (task.id, 2, "train")
    assert (row["group"], row["source"], row["margin"]) == (f"t{task.id}", "pairwise", 0.0)
    assert dropped == {}


def test_it_drops_a_tie_between_labelers_and_counts_it(project, trio):
    split_task, a, b = pairwise_task(project, "split")
    pick(split_task, trio[0], a)
    pick(split_task, trio[1], b)
    # One says a, one says the two are equal: no answer has a majority either.
    tie_task, c, _ = pairwise_task(project, "half")
    pick(tie_task, trio[0], c)
    pick(tie_task, trio[1], "tie")

    rows, dropped = run_export(project)

    assert rows == []
    assert dropped == {"labelers_tied": 2}


def test_it_never_turns_tie_or_both_bad_into_a_pair(project, trio):
    ties, a, _ = pairwise_task(project, "ties")
    pick(ties, trio[0], "tie")
    pick(ties, trio[1], "tie")
    pick(ties, trio[2], a)
    bad, _, b = pairwise_task(project, "bad")
    pick(bad, trio[0], "both_bad")
    pick(bad, trio[1], "both_bad")
    pick(bad, trio[2], b)

    rows, dropped = run_export(project)
    assert rows == []
    assert dropped == {"tie": 1, "both_bad": 1}

    # One row per answer: only the two preferences become rows, each backed by 1 of 3.
    rows, dropped = run_export(project, aggregate="all")
    assert pairs_of(rows) == [("ties-a", "ties-b", 3, 0.3333), ("bad-b", "bad-a", 3, 0.3333)]
    assert dropped == {"tie": 2, "both_bad": 2}


def test_it_keeps_pairs_by_min_votes_and_min_agreement(project, trio):
    single, a, _ = pairwise_task(project, "single")
    pick(single, trio[0], a)
    split, c, d = pairwise_task(project, "two-to-one")
    pick(split, trio[0], c)
    pick(split, trio[1], c)
    pick(split, trio[2], d)

    rows, dropped = run_export(project, min_votes=2)
    assert pairs_of(rows) == [("two-to-one-a", "two-to-one-b", 3, 0.6667)]
    assert dropped == {"too_few_votes": 1}

    # 2/3 = 0.667 passes 0.66 and fails 0.7; the lone vote has agreement 1.
    rows, _ = run_export(project, min_agreement=0.66)
    assert [r["chosen"] for r in rows] == ["single-a", "two-to-one-a"]
    rows, dropped = run_export(project, min_agreement=0.7)
    assert [r["chosen"] for r in rows] == ["single-a"]
    assert dropped == {"low_agreement": 1}


def test_it_exports_every_answer_with_aggregate_all(project, trio):
    task, a, b = pairwise_task(project, "q")
    first = pick(task, trio[0], a, strength=2)
    second = pick(task, trio[1], a)
    third = pick(task, trio[2], b, strength=1)

    rows, _ = run_export(project, aggregate="all")

    # Ordered by labeler; each row says how many of the 3 agree with it.
    assert pairs_of(rows) == [("q-a", "q-b", 3, 0.6667), ("q-a", "q-b", 3, 0.6667),
                              ("q-b", "q-a", 3, 0.3333)]  # fmt: skip
    assert [r["margin"] for r in rows] == [2.0, 0.0, 1.0]
    assert [r["group"] for r in rows] == [f"a{first.id}", f"a{second.id}", f"a{third.id}"]
    assert [r["labelers"] for r in rows] == [[trio[0].id], [trio[1].id], [trio[2].id]]


def test_it_takes_the_margin_from_the_winners_strengths(project, trio):
    task, a, b = pairwise_task(project, "q")
    pick(task, trio[0], a, strength=1)
    pick(task, trio[1], a, strength=3)
    pick(task, trio[2], b, strength=2)

    rows, _ = run_export(project)

    # Mean strength of the two votes for a; b's strength plays no part.
    assert [r["margin"] for r in rows] == [2.0]


def ranking_task(project, texts=("x", "y", "z")):
    prompt = prompt_for(project, "Rank these")
    return task_over(prompt, list(texts), kind=Kind.RANKING)


def test_it_expands_a_ranking_into_all_pairs_with_a_group(project, trio):
    task, (x, y, z) = ranking_task(project)
    rank(task, trio[0], [y, x, z])

    rows, _ = run_export(project)

    # K=3 gives 3 pairs, in completion-id order: (x,y) (x,z) (y,z).
    assert pairs_of(rows) == [("y", "x", 1, 1.0), ("x", "z", 1, 1.0), ("y", "z", 1, 1.0)]
    assert {r["group"] for r in rows} == {f"t{task.id}"}
    assert {r["source"] for r in rows} == {"ranking"}


def test_it_takes_the_majority_of_each_pair_of_rankings(project, trio):
    task, (x, y, z) = ranking_task(project)
    rank(task, trio[0], [x, y, z])
    rank(task, trio[1], [x, z, y])
    rank(task, trio[2], [y, x, z])

    rows, _ = run_export(project)

    # x>y in 2 of 3 rankings, x>z in 3 of 3, y>z in 2 of 3.
    assert pairs_of(rows) == [("x", "y", 3, 0.6667), ("x", "z", 3, 1.0), ("y", "z", 3, 0.6667)]


def test_it_drops_ranking_pairs_the_labelers_split_on(project, trio):
    task, (x, y, z) = ranking_task(project)
    rank(task, trio[0], [x, y, z])
    rank(task, trio[1], [y, x, z])

    rows, dropped = run_export(project)

    assert pairs_of(rows) == [("x", "z", 2, 1.0), ("y", "z", 2, 1.0)]
    assert dropped == {"labelers_tied": 1}


def test_it_exports_every_rankings_pairs_with_aggregate_all(project, trio):
    task, (w, x, y, z) = ranking_task(project, ("w", "x", "y", "z"))
    first = rank(task, trio[0], [z, y, x, w])
    second = rank(task, trio[1], [w, x, y, z])

    rows, _ = run_export(project, aggregate="all")

    # Each ranking of 4 gives 4*3/2 = 6 pairs in its own order, grouped by annotation;
    # the two rankings disagree on every pair, so each pair has agreement 1/2.
    assert len(rows) == 12
    assert [r["group"] for r in rows] == [f"a{first.id}"] * 6 + [f"a{second.id}"] * 6
    assert [(r["chosen"], r["rejected"]) for r in rows[:3]] == [("z", "y"), ("z", "x"),
                                                                ("z", "w")]  # fmt: skip
    assert {r["agreement"] for r in rows} == {0.5}


def test_it_orders_rows_by_task_and_gives_the_same_bytes_twice(project, trio):
    later, a, _ = pairwise_task(project, "first-made")
    earlier, b, _ = pairwise_task(project, "second-made")
    pick(earlier, trio[0], b)
    pick(later, trio[1], a)

    rows, _ = run_export(project)

    assert [r["task_id"] for r in rows] == sorted([later.id, earlier.id])
    assert run_export(project) == run_export(project)
