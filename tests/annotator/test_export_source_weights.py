"""Per-source weights: pair rows carry the mean weight of the kinds of labeler behind them
(people, AI judges, ...), in exports and in a reward job's snapshot. The expected weights are
worked out by hand from who answered."""

import json

import pytest

from annotator.models import Annotation, Kind
from tests.annotator.exportkit import labelers, pick, prompt_for, rank, run_export, task_over


@pytest.fixture
def judged(project):
    """q1: two people and an AI judge agree on a; q2: only the judge answered (b); q3: a
    person's ranking. Returns the project and (person 1, person 2, judge)."""
    p1, p2, judge = labelers(3)
    q1, (a1, _) = task_over(prompt_for(project, "Q1?"), ["q1-a", "q1-b"], kind=Kind.PAIRWISE)
    q2, (_, b2) = task_over(prompt_for(project, "Q2?"), ["q2-a", "q2-b"], kind=Kind.PAIRWISE)
    q3, completions = task_over(prompt_for(project, "Q3?"), ["x", "y", "z"], kind=Kind.RANKING)
    for labeler in (p1, p2, judge):
        pick(q1, labeler, a1)
    pick(q2, judge, b2)
    rank(q3, p1, completions)
    Annotation.objects.filter(labeler=judge).update(labeler_kind="ai")
    return project, (p1, p2, judge)


def test_rows_carry_the_mean_weight_of_their_labelers_sources(judged):
    project, _ = judged
    rows, _ = run_export(project, source_weights=(("ai", 0.25),))

    by_prompt = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row["weight"])
    # q1's majority has two people (1) and the judge (0.25): (1 + 1 + 0.25) / 3.
    assert by_prompt == {"Q1?": [0.75], "Q2?": [0.25], "Q3?": [1.0, 1.0, 1.0]}
    everyone, _ = run_export(project, source_weights=(("ai", 0.25),), aggregate="all")
    assert sorted(r["weight"] for r in everyone if r["prompt"] == "Q1?") == [0.25, 1.0, 1.0]


def test_without_weights_the_rows_have_no_weight_column(judged):
    rows, _ = run_export(judged[0])
    assert rows and all("weight" not in row for row in rows)


def test_the_api_takes_source_weight_and_refuses_bad_ones(judged, alice, api_as):
    project, _ = judged
    client = api_as(alice)
    url = f"/api/v1/projects/{project.id}/export/"
    resp = client.get(url, {"source_weight": ["ai:0.5", "human:2"], "ids": "false"})
    assert resp.status_code == 200
    rows = [json.loads(line) for line in b"".join(resp.streaming_content).splitlines()]
    assert sorted(r["weight"] for r in rows) == [0.5, 1.5, 2.0, 2.0, 2.0]
    assert all("labelers" not in r for r in rows)  # ids=false still drops the id columns

    bad = {
        "robots:1": "not a source",
        "ai": "write source:weight",
        "ai:zero": "not a number",
        "ai:0": "above 0",
        "ai:nan": "above 0",
        "ai:101": "at most 100",
    }
    for value, message in bad.items():
        resp = client.get(url, {"source_weight": value})
        assert resp.status_code == 400, value
        assert message in resp.json()["source_weight"][0], value
    twice = client.get(url, {"source_weight": ["ai:1", "ai:2"]})
    assert twice.status_code == 400 and "twice" in twice.json()["source_weight"][0]
    likert = client.get(url, {"source_weight": "ai:0.5", "schema": "likert"})
    assert likert.status_code == 400 and "pair rows" in likert.json()["source_weight"][0]


def test_the_summary_echoes_the_weights(judged, alice, api_as):
    project, _ = judged
    summary = api_as(alice).get(
        f"/api/v1/projects/{project.id}/export/summary/", {"source_weight": "ai:0.5"}
    )
    assert summary.status_code == 200
    assert summary.json()["query"]["source_weight"] == ["ai:0.5"]


def test_a_reward_snapshot_carries_the_weights_and_other_kinds_refuse_them(judged, tmp_path):
    from trainer.exceptions import JobError
    from trainer.models import TrainingJob
    from trainer.snapshots import dataset_validate, snapshot_freeze

    project, _ = judged
    dataset = dataset_validate(kind="reward", dataset={"source_weights": {"ai": 0.25}})
    assert dataset == {"source_weights": {"ai": 0.25}}
    job = TrainingJob.objects.create(
        project=project, kind="reward", output_dir=str(tmp_path), dataset=dataset
    )
    lines = [json.loads(line) for line in snapshot_freeze(job=job, directory=tmp_path).open()]
    # The ranking's three pairs became one row, with its labeler's weight.
    assert [(r["prompt"], r["weight"]) for r in lines] == [
        ("Q1?", 0.75),
        ("Q2?", 0.25),
        ("Q3?", 1.0),
    ]
    assert lines[2]["ranking"] == ["x", "y", "z"]

    with pytest.raises(JobError, match="dpo jobs take no per-row weight"):
        dataset_validate(kind="dpo", dataset={"source_weights": {"ai": 0.5}})
    with pytest.raises(JobError, match="dataset.source_weights: 'robots' is not a source"):
        dataset_validate(kind="reward", dataset={"source_weights": {"robots": 0.5}})
    with pytest.raises(JobError, match="above 0"):
        dataset_validate(kind="reward", dataset={"source_weights": {"ai": -1}})
    with pytest.raises(JobError, match="must be of type dict"):
        dataset_validate(kind="reward", dataset={"source_weights": "ai:0.5"})
