"""aggregate=reliability, min_labeler_reliability and source= in the export."""

import json

import pytest

from annotator.models import Annotation
from tests.annotator.quality.helpers import answer, labelers, pairwise_tasks


@pytest.fixture
def outvoted(project):
    """100 tasks whose first completion is the better one. l0 and l3 are always right;
    l1 and l2 are right 80 % of the time, and on the first 10 tasks they are both wrong
    where only l0 answers beside them: the vote says second, the careful labeler first."""
    tasks = pairwise_tasks(project, 100)
    l0, l1, l2, l3 = labelers(project, 4)
    for i, task in enumerate(tasks):
        answer(task, l0, "first")
        if i < 10:
            answer(task, l1, "second")
            answer(task, l2, "second")
            continue
        answer(task, l3, "first")
        answer(task, l1, "second" if 10 <= i < 20 else "first")
        answer(task, l2, "second" if 20 <= i < 30 else "first")
    return project, tasks, (l0, l1, l2, l3)


def rows(client, project, **query):
    resp = client.get(f"/api/v1/projects/{project.id}/export/", query)
    assert resp.status_code == 200, resp.content
    return [json.loads(line) for line in b"".join(resp.streaming_content).splitlines()]


def first_id(task):
    return min(task.task_completions.values_list("completion_id", flat=True))


def test_it_lets_the_reliable_labeler_outweigh_two_careless_ones(outvoted, alice, api_as):
    project, tasks, _ = outvoted
    client = api_as(alice)
    by_task = {r["task_id"]: r for r in rows(client, project)}
    assert all(by_task[t.id]["chosen_id"] != first_id(t) for t in tasks[:10])
    by_task = {r["task_id"]: r for r in rows(client, project, aggregate="reliability")}
    assert len(by_task) == 100
    assert all(by_task[t.id]["chosen_id"] == first_id(t) for t in tasks)
    row = by_task[tasks[0].id]
    assert (row["votes"], row["agreement"], row["margin"]) == (3, 1 / 3, 0.0)
    assert row["group"] == f"t{tasks[0].id}"


def test_it_writes_the_posterior_as_the_margin(outvoted, alice, api_as):
    project, tasks, _ = outvoted
    got = rows(api_as(alice), project, aggregate="reliability", posterior_margin="true")
    margins = {r["task_id"]: r["margin"] for r in got}
    assert all(0 < m < 1 for m in margins.values())
    # Outvoted tasks are less certain than unanimous ones.
    assert margins[tasks[0].id] < margins[tasks[50].id]


def test_it_leaves_out_labelers_below_a_reliability(outvoted, alice, api_as):
    project, tasks, (l0, l1, l2, l3) = outvoted
    client = api_as(alice)
    raw = rows(client, project, schema="raw", min_labeler_reliability=0.9)
    assert {r["labeler"] for r in raw} == {l0.id, l3.id}
    assert len(raw) == 190
    summary = client.get(
        f"/api/v1/projects/{project.id}/export/summary/",
        {"schema": "raw", "min_labeler_reliability": 0.9},
    ).json()
    assert summary["rows"] == 190
    del summary["query"]["until"]
    assert summary["query"] == {"schema": "raw", "min_labeler_reliability": 0.9}
    # Nothing was deleted.
    assert Annotation.objects.filter(task__project=project).count() == 390


def test_it_filters_by_the_kind_of_labeler(outvoted, alice, api_as):
    project, _, (l0, l1, *_rest) = outvoted
    Annotation.objects.filter(labeler=l0).update(labeler_kind="simulated")
    client = api_as(alice)
    assert {r["labeler"] for r in rows(client, project, schema="raw", source="simulated")} == {
        l0.id
    }
    human = rows(client, project, schema="raw", source="human")
    assert len(human) == 290 and l0.id not in {r["labeler"] for r in human}
    assert {r["labeler_kind"] for r in human} == {"human"}
    assert rows(client, project, schema="raw", source="ai") == []
    Annotation.objects.filter(labeler=l1).update(labeler_kind="ai")  # an AI judge's answers
    ai = rows(client, project, schema="raw", source="ai")
    assert {(r["labeler"], r["labeler_kind"]) for r in ai} == {(l1.id, "ai")}
    resp = client.get(f"/api/v1/projects/{project.id}/export/", {"source": "robots"})
    assert resp.status_code == 400 and "source" in resp.json()


def test_a_training_snapshot_takes_the_reliability_aggregate(outvoted, tmp_path):
    from trainer.exceptions import JobError
    from trainer.models import TrainingJob
    from trainer.snapshots import dataset_validate, snapshot_freeze

    project, tasks, _ = outvoted
    dataset = dataset_validate(
        kind="reward", dataset={"aggregate": "reliability", "min_labeler_reliability": 0.5}
    )
    job = TrainingJob.objects.create(
        project=project, kind="reward", output_dir=str(tmp_path), dataset=dataset
    )
    path = snapshot_freeze(job=job, directory=tmp_path)
    got = {r["task_id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert all(got[t.id]["chosen_id"] == first_id(t) for t in tasks)
    with pytest.raises(JobError, match="aggregate must be one of"):
        dataset_validate(kind="reward", dataset={"aggregate": "best"})
    assert dataset_validate(kind="dpo", dataset={"posterior_margin": True}) == {
        "posterior_margin": True
    }
