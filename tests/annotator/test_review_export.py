"""An adjudicated answer wins in every export of Likert and ranking tasks, as it does for
pairwise ones: it stands for each labeler's answer of the task (docs/review.md)."""

import pytest

from annotator.models import Kind
from annotator.review import task_adjudicate
from tests.annotator.exportkit import labelers, prompt_for, rank, rate, run_export, task_over
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory(username="rita")


# --- Ranking ----------------------------------------------------------------------------------


@pytest.fixture
def ranked():
    """Three labelers rank x, y, z: x>y>z twice, y>x>z once."""
    project = ProjectFactory(kind=Kind.RANKING)
    task, (x, y, z) = task_over(prompt_for(project, "Rank them"), ["x", "y", "z"],
                                kind=Kind.RANKING)  # fmt: skip
    l1, l2, l3 = labelers(3)
    rank(task, l1, [x, y, z])
    rank(task, l2, [x, y, z])
    rank(task, l3, [y, x, z])
    return project, task, (x, y, z)


def test_it_exports_the_adjudicated_ranking_in_every_schema(ranked, reviewer):
    project, task, (x, y, z) = ranked
    rows, _ = run_export(project)
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("x", "y"), ("x", "z"), ("y", "z")}

    task_adjudicate(task=task, reviewer=reviewer, answer={"ranking": [z.id, y.id, x.id]})

    # majority: the adjudicated order, backed by every labeler (agreement 1).
    rows, _ = run_export(project)
    assert sorted((r["chosen"], r["rejected"], r["votes"], r["agreement"]) for r in rows) == [
        ("y", "x", 3, 1.0), ("z", "x", 3, 1.0), ("z", "y", 3, 1.0),
    ]  # fmt: skip
    # all: each answer gives the adjudicated order's pairs.
    rows, _ = run_export(project, aggregate="all")
    assert len(rows) == 9 and {(r["chosen"], r["rejected"]) for r in rows} == {
        ("y", "x"), ("z", "x"), ("z", "y"),
    }  # fmt: skip
    # reliability: rankings are aggregated as under majority.
    rows, _ = run_export(project, aggregate="reliability")
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("y", "x"), ("z", "x"), ("z", "y")}
    # The ranking schema and the unpaired one.
    rows, _ = run_export(project, schema="ranking")
    assert [(r["ranking"], r["votes"], r["agreement"]) for r in rows] == [(["z", "y", "x"], 3, 1.0)]
    rows, _ = run_export(project, schema="unpaired")
    assert {(r["completion"], r["label"]) for r in rows if r["completion"] == "z"} == {("z", True)}
    # raw keeps every answer as it was given.
    rows, _ = run_export(project, schema="raw")
    assert sorted(r["ranking"][0] for r in rows) == [x.id, x.id, y.id]


# --- Likert -----------------------------------------------------------------------------------


@pytest.fixture
def rated():
    """p rated 6 and 5 (mean 5.5), q rated 3 and 6 (4.5): p over q by the labelers."""
    project = ProjectFactory(kind=Kind.LIKERT)
    prompt = prompt_for(project, "Rate it")
    task_p, _ = task_over(prompt, ["p"], kind=Kind.LIKERT)
    task_q, _ = task_over(prompt, ["q"], kind=Kind.LIKERT)
    l1, l2 = labelers(2)
    rate(task_p, l1, 6)
    rate(task_p, l2, 5)
    rate(task_q, l1, 3)
    rate(task_q, l2, 6)
    return project, task_p, task_q


def test_it_exports_the_adjudicated_likert_score_in_every_schema(rated, reviewer):
    project, task_p, task_q = rated
    rows, _ = run_export(project)
    assert [(r["chosen"], r["rejected"], r["margin"]) for r in rows] == [("p", "q", 1.0)]

    task_adjudicate(task=task_q, reviewer=reviewer, answer={"score": 7})

    # The pair: q's ratings are both 7 now, so q wins by 7 - 5.5; every combination of a
    # q rating and a p rating has q higher.
    rows, _ = run_export(project)
    assert [(r["chosen"], r["rejected"], r["margin"], r["agreement"]) for r in rows] == [
        ("q", "p", 1.5, 1.0)
    ]
    rows, _ = run_export(project, aggregate="all")
    assert sorted((r["chosen"], r["margin"]) for r in rows) == [("q", 1.0), ("q", 2.0)]
    # The likert schema: one row per rating, with the adjudicated score.
    rows, _ = run_export(project, schema="likert")
    assert sorted((r["completion"], r["score"]) for r in rows) == [
        ("p", 5), ("p", 6), ("q", 7), ("q", 7),
    ]  # fmt: skip
    # unpaired: q's mean (7) is above the middle of the scale.
    rows, _ = run_export(project, schema="unpaired")
    assert {r["completion"]: r["label"] for r in rows} == {"p": True, "q": True}
    task_adjudicate(task=task_q, reviewer=reviewer, answer={"score": 1})
    rows, _ = run_export(project, schema="unpaired")
    assert {r["completion"]: r["label"] for r in rows} == {"p": True, "q": False}
    # raw keeps every answer as it was given.
    rows, _ = run_export(project, schema="raw")
    assert sorted(r["score"] for r in rows) == [3, 5, 6, 6]


def test_it_gives_the_adjudicated_score_to_every_aspect(reviewer):
    project = ProjectFactory(kind=Kind.LIKERT, aspects=["helpful", "honest"])
    task, _ = task_over(prompt_for(project, "Rate it"), ["r"], kind=Kind.LIKERT)
    (labeler,) = labelers(1)
    rate(task, labeler, scores={"helpful": 2, "honest": 3})
    task_adjudicate(task=task, reviewer=reviewer, answer={"score": 6})
    rows, _ = run_export(project, schema="likert")
    assert [(r["aspect"], r["score"]) for r in rows] == [("helpful", 6), ("honest", 6)]
    rows, _ = run_export(project, schema="likert", aspect="honest")
    assert [(r["aspect"], r["score"]) for r in rows] == [("honest", 6)]
