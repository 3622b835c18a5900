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


def test_it_treats_a_repeats_answer_as_any_answer_after_it_is_given(project, bob, alice, client):
    """After answering, too, nothing tells a repeat: the page offers Undo, the API's submit
    answers a new id, My annotations lists the answer in the order it was shown with its own
    Change link, and undo and edit work on it, over the web and the API."""
    from django.urls import reverse

    from annotator.models import AnnotationRevision

    htmx = {"HTTP_HX_REQUEST": "true"}
    project.repeat_share = 1.0
    project.save()
    for _ in range(12):
        make_task(project)
    client.force_login(bob)
    api = api_client_for(bob)
    undo_buttons, answered = {}, {}
    served: set[int] = set()
    while True:
        page = client.get(f"/projects/{project.id}/label/", **htmx).content.decode()
        if (found := re.search(r"/tasks/(\d+)/submit/", page)) is None:
            break  # nothing left to label
        task_id = int(found.group(1))
        kind = "repeat" if task_id in served else "first"
        served.add(task_id)
        resp = client.post(f"/projects/{project.id}/tasks/{task_id}/submit/",
                           {"choice": "a", "notes": kind}, **htmx)  # fmt: skip
        undo = re.search(
            r'hx-post="(/projects/\d+/annotations/(\d+)/undo/)"', resp.content.decode()
        )
        undo_buttons.setdefault(kind, undo)
        answered.setdefault(kind, task_id)
        if "repeat" in undo_buttons and kind == "repeat":
            break
    assert undo_buttons["first"] and undo_buttons["repeat"], "Undo is offered after both"
    repeat = Repeat.objects.get(task_id=answered["repeat"], status=Repeat.Status.ANSWERED)
    first = Annotation.objects.get(task_id=answered["repeat"], labeler=bob)
    # The repeat's answer has an id of its own, after the first one's, unused by annotations.
    assert int(undo_buttons["repeat"].group(2)) == repeat.answer_id > first.id
    assert not Annotation.objects.filter(id=repeat.answer_id).exists()

    # My annotations: both answers, each in the order it was shown, each with its Change link.
    mine = client.get(f"/projects/{project.id}/annotations/").content.decode()
    for a_id in (first.id, repeat.answer_id):
        assert reverse("annotation_edit", args=[project.id, a_id]) in mine
    texts = dict(first.task.task_completions.values_list("completion_id", "completion__text"))
    rows = mine.split("<tr>")
    repeat_row = next(r for r in rows if f"/annotations/{repeat.answer_id}/" in r)
    first_row = next(r for r in rows if f"/annotations/{first.id}/" in r)
    # Each row names the chosen response with the label it had on screen: "a", the left one,
    # is a different response in the two orders.
    for row, order in ((repeat_row, repeat.shown_order), (first_row, first.shown_order)):
        assert f'<span class="badge">A</span> <span class="excerpt hint">{texts[order[0]]}' in row

    # Undo takes it back: the repeat is served again, the answer filled in.
    resp = client.post(undo_buttons["repeat"].group(1), **htmx).content.decode()
    assert "Undone: your answer is back to change." in resp
    assert f"/tasks/{answered['repeat']}/submit/" in resp and "repeat</textarea>" in resp
    assert AnnotationRevision.objects.filter(annotation_id_value=repeat.answer_id,
                                             action="undo").exists()  # fmt: skip
    # Answered again (over the API this time): a new id, as a new annotation would get.
    again = api.post(f"/api/v1/tasks/{answered['repeat']}/annotations/", {"choice": "b"},
                     format="json")  # fmt: skip
    assert again.status_code == 201
    new_id = again.json()["id"]
    assert new_id not in (first.id, repeat.answer_id)
    assert Repeat.objects.get(id=repeat.id).answer_id == new_id
    # A second submit names the latest answer, as for any task.
    twice = api.post(f"/api/v1/tasks/{answered['repeat']}/annotations/", {"choice": "a"},
                     format="json")  # fmt: skip
    assert twice.status_code == 409 and str(new_id) in twice.content.decode()

    # Edit, on the page and over the API; the first answer is untouched.
    edit = reverse("annotation_edit", args=[project.id, new_id])
    page = client.get(edit)
    assert page.status_code == 200 and 'name="choice"' in page.content.decode()
    assert client.post(edit, {"choice": "a", "notes": "changed"}).status_code == 302
    swapped = Repeat.objects.get(id=repeat.id)
    assert swapped.chosen_id == swapped.shown_order[0] and swapped.answer["notes"] == "changed"
    put = api.put(f"/api/v1/annotations/{new_id}/", {"choice": "tie"}, format="json")
    assert put.status_code == 200 and put.json() == {"id": new_id, "revisions": 2}
    assert Repeat.objects.get(id=repeat.id).verdict == "tie"
    assert Annotation.objects.get(id=first.id).notes == "first"
    # Over the API, the undo window has its limit as for any answer.
    Repeat.objects.filter(id=repeat.id).update(answered_at=swapped.answered_at.replace(year=2000))
    late = api.post(f"/api/v1/annotations/{new_id}/undo/")
    assert late.status_code == 409 and "30 seconds" in late.content.decode()
    # It is no answer of the dataset: a reviewer finds nothing to review under its id.
    review = api_client_for(alice).post(
        f"/api/v1/annotations/{new_id}/review/", {"decision": "accepted"}, format="json"
    )
    assert review.status_code == 404
