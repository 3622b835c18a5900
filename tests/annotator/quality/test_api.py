"""The label-quality API: admins only, one project at a time, the same numbers as the page."""

import pytest
from rest_framework.test import APIClient

from annotator.models import Membership, Task
from tests.annotator.quality.helpers import answer, labelers, pairwise_tasks
from tests.factories import ProjectFactory

ENDPOINTS = ["labelers", "agreement", "reliability"]


@pytest.fixture
def answered(project):
    tasks = pairwise_tasks(project, 4)
    l0, l1 = labelers(project, 2)
    for i, task in enumerate(tasks):
        Task.objects.filter(pk=task.pk).update(round=1 if i < 2 else 2)
        answer(task, l0, "first", seconds=2)
        answer(task, l1, "first" if i != 3 else "tie", seconds=4)
    return project, tasks, (l0, l1)


def url(project, what):
    return f"/api/v1/projects/{project.id}/quality/{what}/"


@pytest.mark.parametrize("what", ENDPOINTS)
def test_it_answers_admins_only(answered, alice, bob, charlie, api_as, what):
    project, *_ = answered
    assert APIClient().get(url(project, what)).status_code == 401
    assert api_as(bob).get(url(project, what)).status_code == 403
    assert api_as(charlie).get(url(project, what)).status_code == 404
    # An admin of another project cannot read this one through it.
    other = ProjectFactory(created_by=charlie)
    Membership.objects.create(project=other, user=charlie, role=Membership.Role.ADMIN)
    assert api_as(charlie).get(url(project, what)).status_code == 404
    assert api_as(alice).get(url(project, what)).status_code == 200


def test_it_reports_each_labeler(answered, alice, api_as):
    project, _, (l0, l1) = answered
    got = api_as(alice).get(url(project, "labelers")).json()["labelers"]
    assert [r["username"] for r in got] == ["lab0", "lab1"]
    first = got[0]
    assert first["labeler_id"] == l0.id
    assert (first["tasks_done"], first["median_seconds"]) == (4, 2.0)
    assert first["agreement"] == {"value": 0.75, "n": 4, "low": 0.3006, "high": 0.9544}


def test_it_reports_agreement_overall_and_per_round(answered, alice, api_as):
    project, *_ = answered
    client = api_as(alice)
    overall = client.get(url(project, "agreement")).json()
    assert overall["pairwise"]["percent_agreement"] == 0.75
    assert overall["pairwise"]["pairs"][0]["shared"] == 4
    assert (
        client.get(url(project, "agreement"), {"round": 1}).json()["pairwise"]["percent_agreement"]
        == 1.0
    )
    assert (
        client.get(url(project, "agreement"), {"round": 2}).json()["pairwise"]["percent_agreement"]
        == 0.5
    )
    bad = client.get(url(project, "agreement"), {"round": "x"})
    assert bad.status_code == 400 and "round" in bad.json()


def test_it_reports_the_fit_with_task_posteriors_on_request(answered, alice, api_as):
    project, tasks, (l0, l1) = answered
    client = api_as(alice)
    got = client.get(url(project, "reliability")).json()
    assert got["method"] == "dawid-skene" and "tasks" not in got
    assert [r["labeler_id"] for r in got["labelers"]] == sorted([l0.id, l1.id])
    got = client.get(url(project, "reliability"), {"tasks": "true"}).json()
    assert {t["task_id"] for t in got["tasks"]} == {t.id for t in tasks}
    assert all(t["p_first"] > 0.5 for t in got["tasks"])
    assert all(t["first_id"] < t["second_id"] for t in got["tasks"])


def test_it_reads_the_stats_in_a_fixed_number_of_queries(
    answered, alice, api_as, django_assert_max_num_queries
):
    project, *_ = answered
    client = api_as(alice)
    with django_assert_max_num_queries(12):
        assert client.get(url(project, "labelers")).status_code == 200
    for user in labelers(project, 4, prefix="more"):
        for task in pairwise_tasks(project, 3):
            answer(task, user, "second")
    with django_assert_max_num_queries(12):
        assert client.get(url(project, "labelers")).status_code == 200
