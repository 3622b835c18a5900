"""Gold tasks: served to every labeler at the project's pace, once each, looking like any other
task; kept out of the exports; a labeler under the gold floor is paused and admins are told."""

import json
import re

import pytest

from annotator.models import Membership, Task
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def _gold(task: Task, index: int = 0) -> Task:
    """Make the task gold, its `index`-th completion the right answer."""
    ids = list(task.task_completions.order_by("position").values_list("completion_id", flat=True))
    task.gold = {"chosen_id": ids[index]}
    task.is_complete = True
    task.save()
    return task


def test_it_serves_gold_to_every_labeler_at_the_configured_rate(project):
    every, normal, n_gold, n_labelers = 5, 40, 20, 10
    project.overlap = n_labelers
    project.gold_every = every
    project.save()
    for _ in range(normal):
        make_task(project)
    gold_ids = {_gold(make_task(project)).id for _ in range(n_gold)}
    labelers = [UserFactory(username=f"lab{i}") for i in range(n_labelers)]
    for user in labelers:
        MembershipFactory(project=project, user=user)
    clients = {u.username: api_client_for(u) for u in labelers}
    served: dict[str, list[int]] = {name: [] for name in clients}
    active = set(clients)
    while active:  # round robin, as labelers working side by side
        for name in sorted(active):
            response = clients[name].post(f"/api/v1/projects/{project.id}/tasks/next/")
            if response.status_code == 204:
                active.discard(name)
                continue
            task_id = response.json()["id"]
            served[name].append(task_id)
            answer = clients[name].post(
                f"/api/v1/tasks/{task_id}/annotations/", {"choice": "a"}, format="json"
            )
            assert answer.status_code == 201, answer.content

    for name, tasks in served.items():
        golds = [t for t in tasks if t in gold_ids]
        assert len(tasks) - len(golds) == normal, name  # every normal task once
        assert len(golds) == len(set(golds)), name  # never the same gold task twice
        # One gold in each block of `every` tasks: the rate holds all along, not on average.
        # (The last block may end with the normal tasks, before its gold's turn came.)
        blocks = [tasks[start : start + every] for start in range(0, len(tasks), every)]
        for block in blocks:
            golds_in = sum(t in gold_ids for t in block)
            assert golds_in == 1 or (block is blocks[-1] and golds_in == 0), (name, block)
        assert len(golds) >= normal // (every - 1) - 1, name
    # Gold tasks are outside the overlap: every labeler answered each normal task once.
    assert not Task.objects.filter(project=project, gold__isnull=True, is_complete=False).exists()


def _normalised(html: str) -> str:
    """The markup with the task's own values (ids, texts, times) blanked out."""
    html = re.sub(r"Answer \d to Prompt number \d+\?", "TEXT", html)
    html = re.sub(r"Prompt number \d+\?", "PROMPT", html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "CSRF", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    html = re.sub(r"\d+", "#", html)
    return html


def test_it_serves_nothing_that_tells_a_gold_task_from_another(project, bob, client):
    project.gold_every = 2
    project.save()
    normal = make_task(project)
    make_task(project)
    gold = _gold(make_task(project), index=1)
    api = api_client_for(bob)
    payloads, pages = {}, {}
    client.force_login(bob)
    while len(payloads) < 2:
        response = api.post(f"/api/v1/projects/{project.id}/tasks/next/")
        task = response.json()
        pages[task["id"]] = client.get(f"/projects/{project.id}/label/").content.decode()
        payloads[task["id"]] = task
        api.post(f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json")
    assert gold.id in payloads  # the second of two tasks is gold
    other = next(t for t in payloads if t != gold.id)
    assert other in (normal.id, normal.id + 1)

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    assert shape(payloads[gold.id]) == shape(payloads[other])
    assert set(payloads[gold.id]) == set(payloads[other])
    assert "gold" not in str(payloads[gold.id]).lower()
    assert _normalised(pages[gold.id]) == _normalised(pages[other])
    assert "gold" not in pages[gold.id].lower()


def test_it_keeps_gold_tasks_out_of_the_export(project, bob, alice):
    project.gold_every = 1
    project.save()
    normal = make_task(project)
    gold = _gold(make_task(project))
    api = api_client_for(bob)
    answered = []
    while (r := api.post(f"/api/v1/projects/{project.id}/tasks/next/")).status_code == 200:
        answered.append(r.json()["id"])
        api.post(f"/api/v1/tasks/{answered[-1]}/annotations/", {"choice": "a"}, format="json")
    assert sorted(answered) == sorted([normal.id, gold.id])
    rows = api_client_for(alice).get(
        f"/api/v1/projects/{project.id}/export/?schema=raw&aggregate=all"
    )
    assert rows.status_code == 200, rows.content
    lines = b"".join(rows.streaming_content).decode().splitlines()
    tasks = [json.loads(line)["task_id"] for line in lines if line.strip()]
    assert tasks == [normal.id]


def test_it_pauses_a_labeler_under_the_gold_floor_and_tells_the_admins(project, bob, alice, client):
    project.gold_every = 1
    project.gold_floor = 0.5
    project.gold_min_answers = 2
    project.save()
    for _ in range(4):
        make_task(project)
    golds = {_gold(make_task(project)).id: None for _ in range(3)}
    gold_rows = Task.objects.filter(id__in=golds).values_list("id", "gold")
    right = {task_id: gold["chosen_id"] for task_id, gold in gold_rows}
    api = api_client_for(bob)
    wrong = 0
    while wrong < 2:
        task = api.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        ids = [c["id"] for c in task["completions"]]
        if task["id"] in right:  # answer gold tasks wrongly
            choice = "a" if ids[0] != right[task["id"]] else "b"
            wrong += 1
        else:
            choice = "a"
        api.post(f"/api/v1/tasks/{task['id']}/annotations/", {"choice": choice}, format="json")

    paused = api.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert paused.status_code == 403
    assert "paused" in paused.json()["detail"] and "0 of your 2" in paused.json()["detail"]
    client.force_login(bob)
    page = client.get(f"/projects/{project.id}/label/").content.decode()
    assert "You are paused on this project" in page
    client.force_login(alice)
    admin_page = client.get(f"/projects/{project.id}/").content.decode()
    assert "bob is paused" in admin_page
    # The admin resumes them (over the API); the queue serves them again.
    resumed = api_client_for(alice).post(f"/api/v1/projects/{project.id}/members/{bob.id}/resume/")
    assert resumed.status_code == 204
    assert api.post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 200
    assert not Membership.objects.get(project=project, user=bob).paused_at


def test_it_lets_an_admin_mark_a_task_gold_in_the_ui_and_over_the_api(project, alice, bob, client):
    task = make_task(project)
    other = make_task(project)
    ids = list(task.task_completions.order_by("position").values_list("completion_id", flat=True))
    client.force_login(alice)
    page = client.get(f"/projects/{project.id}/gold/?task={task.id}")
    assert page.status_code == 200 and f'value="{ids[1]}"' in page.content.decode()
    saved = client.post(f"/projects/{project.id}/gold/{task.id}/", {"choice": str(ids[1])})
    assert saved.status_code == 302
    task.refresh_from_db()
    assert task.gold == {"chosen_id": ids[1]} and task.is_complete

    api = api_client_for(alice)
    bad = api.put(f"/api/v1/tasks/{other.id}/gold/", {"gold": {"chosen_id": 0}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "gold"
    done = api.put(f"/api/v1/tasks/{other.id}/gold/", {"gold": {"verdict": "tie"}}, format="json")
    assert done.status_code == 200 and done.json()["gold"] == {"verdict": "tie"}
    cleared = api.put(f"/api/v1/tasks/{task.id}/gold/", {"gold": None}, format="json")
    assert cleared.status_code == 200
    task.refresh_from_db()
    assert task.gold is None and not task.is_complete
    # A labeler may not; an outsider does not see the task.
    as_bob = api_client_for(bob).put(
        f"/api/v1/tasks/{task.id}/gold/", {"gold": None}, format="json"
    )
    assert as_bob.status_code == 403
    client.force_login(bob)
    assert client.get(f"/projects/{project.id}/gold/").status_code == 403


def test_it_does_not_make_up_past_gold_in_a_burst_when_gold_is_turned_on(project, bob):
    from annotator import project_services

    for _ in range(20):
        make_task(project)
    golds = {_gold(make_task(project)).id for _ in range(5)}
    api = api_client_for(bob)

    def label(n: int) -> list[int]:
        served = []
        for _ in range(n):
            task_id = api.post(f"/api/v1/projects/{project.id}/tasks/next/").json()["id"]
            api.post(f"/api/v1/tasks/{task_id}/annotations/", {"choice": "a"}, format="json")
            served.append(task_id)
        return served

    assert not golds & set(label(10))  # gold off: none served
    project_services.project_update(project=project, gold_every=3)
    after = label(6)
    # One in each block of 3 from now on, not the 3 "owed" for the 10 tasks before.
    assert sum(t in golds for t in after[:3]) == 1 and sum(t in golds for t in after[3:]) == 1
