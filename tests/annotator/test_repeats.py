"""Swap repeats: a share of pairwise answers comes back to the same labeler later with the two
responses swapped, looking like any other task, stored apart from the annotations (no new
task, no second annotation, nothing in the exports); self-consistency and position bias."""

import json
import re

import pytest

from annotator.models import Annotation, Repeat, Task
from tests.conftest import api_client_for
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def _normalised(html: str) -> str:
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "CSRF", html)
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    html = re.sub(r"Answer \d to Prompt number \d+\?", "TEXT", html)
    html = re.sub(r"Prompt number \d+\?", "PROMPT", html)
    return re.sub(r"\d+", "#", html)


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_it_serves_answers_again_swapped_hidden_and_apart_from_the_dataset(
    project, bob, alice, client
):
    project.repeat_share = 1.0
    project.save()
    tasks = [make_task(project) for _ in range(20)]
    api = api_client_for(bob)
    client.force_login(bob)
    first_order: dict[int, list[int]] = {}
    repeats, payloads, pages = [], {}, {}
    while (r := api.post(f"/api/v1/projects/{project.id}/tasks/next/")).status_code == 200:
        task = r.json()
        order = [c["id"] for c in task["completions"]]
        kind = "repeat" if task["id"] in first_order else "first"
        if kind == "repeat":
            assert order == list(reversed(first_order[task["id"]]))  # A and B swapped
            repeats.append(task["id"])
        else:
            first_order[task["id"]] = order
        payloads.setdefault(kind, task)
        if kind not in pages:
            pages[kind] = client.get(f"/projects/{project.id}/label/").content.decode()
        # Always the left one: every repeat contradicts the first answer.
        answer = api.post(
            f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json"
        )
        assert answer.status_code == 201, answer.content

    assert len(first_order) == len(tasks)
    # The progress bar counts a repeat like any task answered.
    done = client.get(f"/projects/{project.id}/label/").content.decode()
    assert f"<strong>{len(first_order) + len(repeats)}</strong> done" in done
    assert len(repeats) >= 5 and len(set(repeats)) == len(repeats)  # later, and once each
    # Nothing tells a repeat from a first serving.
    assert _shape(payloads["repeat"]) == _shape(payloads["first"])
    assert _normalised(pages["repeat"]) == _normalised(pages["first"])
    # Stored apart: one annotation per task, no new task, nothing more in the export.
    assert Annotation.objects.filter(task__project=project).count() == len(tasks)
    assert Task.objects.filter(project=project).count() == len(tasks)
    assert Repeat.objects.filter(status=Repeat.Status.ANSWERED).count() == len(repeats)
    export = api_client_for(alice).get(
        f"/api/v1/projects/{project.id}/export/?schema=raw&aggregate=all"
    )
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert len([json.loads(line) for line in lines if line.strip()]) == len(tasks)
    # Self-consistency 0 (always the left one, sides swapped), left share 100 %.
    stats = api_client_for(alice).get(f"/api/v1/projects/{project.id}/repeats/").json()
    assert len(stats) == 1
    assert {k: v for k, v in stats[0].items() if not k.endswith("interval")} == {
        "labeler": bob.id, "username": "bob", "repeats": len(repeats),
        "self_consistency": 0.0, "left_share": 1.0,
    }  # fmt: skip
    low, high = stats[0]["left_share_interval"]
    assert 0.8 < low < 1.0 and high == pytest.approx(1.0)
    assert api_client_for(bob).get(f"/api/v1/projects/{project.id}/repeats/").status_code == 403


def test_it_counts_a_consistent_labeler_as_consistent(project, bob):
    project.repeat_share = 1.0
    project.save()
    for _ in range(12):
        make_task(project, texts=["good answer", "bad answer"])
    api = api_client_for(bob)
    while (r := api.post(f"/api/v1/projects/{project.id}/tasks/next/")).status_code == 200:
        task = r.json()
        # Always the good one, wherever it is shown.
        side = "a" if task["completions"][0]["text"] == "good answer" else "b"
        api.post(f"/api/v1/tasks/{task['id']}/annotations/", {"choice": side}, format="json")
    from annotator.gold import repeat_stats

    (stats,) = repeat_stats(project=project)
    assert stats.repeats >= 2 and stats.consistency == 1.0
    assert stats.left_share == 0.5  # each repeated pair: once left, once right
