"""Correcting answers (services.annotation_undo / annotation_edit and their API): undo for a
short time, edit later, each change kept as a revision; the queue's counts stay right."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator import services
from annotator.exceptions import AnswerGone, InvalidAnswer, NotYours, UndoExpired
from annotator.models import Annotation, AnnotationRevision, Assignment, Kind, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task


def answer(project, user, task_answer: dict) -> Annotation:
    lease = services.task_claim_next(project=project, labeler=user)
    return services.annotation_submit(task=lease.task, labeler=user, answer=task_answer).annotation


def age(annotation: Annotation, seconds: int) -> None:
    Annotation.objects.filter(id=annotation.id).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


# --- Undo -----------------------------------------------------------------------------------


def test_it_undoes_an_answer_and_gives_the_task_back_in_the_order_it_was_shown(project, bob):
    first, second = make_task(project, priority=2), make_task(project, priority=1)
    given = answer(project, bob, {"choice": "a"})
    shown = given.shown_order
    task = Task.objects.get(id=given.task_id)
    assert (task.annotation_count, task.is_complete) == (1, True)
    # The page leased the next task right after the submit.
    assert services.task_claim_next(project=project, labeler=bob).task_id == second.id

    lease = services.annotation_undo(annotation_id=given.id, user=bob)

    assert not Annotation.objects.filter(id=given.id).exists()
    task.refresh_from_db()
    assert (task.annotation_count, task.is_complete) == (0, False)
    assert lease.task_id == first.id and lease.status == Assignment.Status.ACTIVE
    revision = AnnotationRevision.objects.get()
    assert revision.action == "undo" and revision.annotation_id_value == given.id
    assert revision.changed_by == bob and revision.labeler == bob
    assert revision.before["chosen_id"] == shown[0] and revision.after == {}
    # Bob holds one task again, the undone one, shown as before; the other went back.
    again = services.task_claim_next(project=project, labeler=bob)
    assert again.task_id == first.id and again.shown_order == shown
    live = Assignment.objects.filter(
        labeler=bob, status=Assignment.Status.ACTIVE, expires_at__gt=timezone.now()
    )
    assert list(live.values_list("task_id", flat=True)) == [first.id]
    # ... and it can be answered again.
    services.annotation_submit(task=first, labeler=bob, answer={"choice": "b"})
    task.refresh_from_db()
    assert (task.annotation_count, task.is_complete) == (1, True)


def test_it_frees_the_undone_answers_overlap_slot_for_others(project, bob):
    carol = UserFactory(username="carol")
    MembershipFactory(project=project, user=carol)
    make_task(project)
    given = answer(project, bob, {"choice": "a"})
    assert services.task_claim_next(project=project, labeler=carol) is None  # covered
    services.annotation_undo(annotation_id=given.id, user=bob)
    # Bob's lease is back; once it lapses, the slot is carol's.
    Assignment.objects.filter(labeler=bob).update(expires_at=timezone.now())
    assert services.task_claim_next(project=project, labeler=carol).task_id == given.task_id


def test_it_refuses_an_undo_after_the_window_and_changes_nothing(project, bob):
    make_task(project)
    given = answer(project, bob, {"choice": "a"})
    age(given, services.UNDO_SECONDS + 1)
    with pytest.raises(UndoExpired):
        services.annotation_undo(annotation_id=given.id, user=bob)
    assert Annotation.objects.filter(id=given.id).exists()
    assert Task.objects.get(id=given.task_id).annotation_count == 1
    assert not AnnotationRevision.objects.exists()


def test_it_refuses_to_undo_someone_elses_answer_or_one_already_undone(project, alice, bob):
    make_task(project)
    given = answer(project, bob, {"choice": "a"})
    with pytest.raises(NotYours):
        services.annotation_undo(annotation_id=given.id, user=alice)
    services.annotation_undo(annotation_id=given.id, user=bob)
    with pytest.raises(AnswerGone):
        services.annotation_undo(annotation_id=given.id, user=bob)
    assert AnnotationRevision.objects.count() == 1


# --- Edit -----------------------------------------------------------------------------------


def test_it_edits_an_answer_keeping_each_change_as_a_revision(project, bob):
    make_task(project)
    given = answer(project, bob, {"choice": "a", "notes": "first look"})
    age(given, 3600)  # long past the undo window: editing still works
    a, b = given.shown_order

    services.annotation_edit(
        annotation_id=given.id, user=bob, answer={"choice": "b", "strength": 3, "notes": "oops"}
    )
    services.annotation_edit(annotation_id=given.id, user=bob, answer={"choice": "tie"})

    latest = Annotation.objects.get(id=given.id)
    assert latest.verdict == "tie" and latest.chosen_id is None and latest.strength is None
    first, second = AnnotationRevision.objects.order_by("id")
    assert first.before["chosen_id"] == a and first.before["notes"] == "first look"
    assert first.after["chosen_id"] == b and first.after["strength"] == 3
    assert second.before == first.after and second.after["verdict"] == "tie"
    assert {r.action for r in (first, second)} == {"edit"}
    assert first.changed_at <= second.changed_at and second.changed_by == bob
    # The same answer again is no change: no revision.
    services.annotation_edit(annotation_id=given.id, user=bob, answer={"choice": "tie"})
    assert AnnotationRevision.objects.count() == 2


def test_it_checks_an_edit_as_a_submit_and_stores_nothing_when_it_is_wrong(project, bob):
    make_task(project)
    given = answer(project, bob, {"choice": "a"})
    with pytest.raises(InvalidAnswer) as error:
        services.annotation_edit(annotation_id=given.id, user=bob, answer={"choice": "c"})
    assert error.value.field == "choice"
    assert Annotation.objects.get(id=given.id).chosen_id == given.shown_order[0]
    assert not AnnotationRevision.objects.exists()


def test_it_lets_only_the_labeler_edit_while_a_member(project, alice, bob):
    make_task(project)
    given = answer(project, bob, {"choice": "a"})
    with pytest.raises(NotYours):
        services.annotation_edit(annotation_id=given.id, user=alice, answer={"choice": "b"})
    project.memberships.filter(user=bob).delete()
    with pytest.raises(NotYours):
        services.annotation_edit(annotation_id=given.id, user=bob, answer={"choice": "b"})
    assert not AnnotationRevision.objects.exists()


def test_it_edits_likert_and_ranking_answers(bob):
    likert = ProjectFactory(kind=Kind.LIKERT, aspects=["helpful", "honest"], flags=["rude"])
    MembershipFactory(project=likert, user=bob)
    make_task(likert)
    given = answer(likert, bob, {"scores": {"helpful": 2, "honest": 3}})
    services.annotation_edit(
        annotation_id=given.id, user=bob,
        answer={"scores": {"helpful": 5, "honest": 3}, "flags": ["rude"]},
    )  # fmt: skip
    latest = Annotation.objects.get(id=given.id)
    assert latest.scores == {"helpful": 5, "honest": 3} and latest.flags == ["rude"]

    ranking = ProjectFactory(kind=Kind.RANKING)
    MembershipFactory(project=ranking, user=bob)
    make_task(ranking)
    lease = services.task_claim_next(project=ranking, labeler=bob)
    shown = lease.shown_order
    given = services.annotation_submit(
        task=lease.task, labeler=bob, answer={"ranking": shown}
    ).annotation
    services.annotation_edit(annotation_id=given.id, user=bob, answer={"ranking": shown[::-1]})
    assert Annotation.objects.get(id=given.id).ranking == shown[::-1]


# --- API ------------------------------------------------------------------------------------


def api_answer(client, project) -> dict:
    task = client.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
    created = client.post(
        f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json"
    ).json()
    return {"task": task, "id": created["id"]}


def test_the_api_undoes_and_edits_ones_own_answer(project, alice, bob, api_as):
    make_task(project)
    labeler = api_as(bob)
    given = api_answer(labeler, project)
    response = labeler.post(f"/api/v1/annotations/{given['id']}/undo/")
    assert response.status_code == 200, response.content
    assert response.json()["undone"] == given["id"]
    assert response.json()["task"] == given["task"]["id"]
    assert not Annotation.objects.exists()

    again = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
    assert again["id"] == given["task"]["id"]
    created = labeler.post(
        f"/api/v1/tasks/{again['id']}/annotations/", {"choice": "a"}, format="json"
    ).json()
    response = labeler.put(
        f"/api/v1/annotations/{created['id']}/", {"choice": "b", "notes": "B after all"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json() == {"id": created["id"], "revisions": 1}
    stored = Annotation.objects.get()
    assert stored.chosen_id == again["completions"][1]["id"] and stored.notes == "B after all"

    # The export carries the latest answer.
    export = api_as(alice).get(f"/api/v1/projects/{project.id}/export/")
    rows = [json.loads(line) for line in b"".join(export.streaming_content).splitlines()]
    assert [row["chosen"] for row in rows] == [again["completions"][1]["text"]]


def test_the_api_answers_400_naming_the_field_for_a_bad_edit(project, bob, api_as):
    make_task(project)
    labeler = api_as(bob)
    given = api_answer(labeler, project)
    response = labeler.put(f"/api/v1/annotations/{given['id']}/", {"choice": "c"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Pick A, B, tie or both bad.", "field": "choice"}


def test_the_api_answers_403_to_other_members_and_404_to_outsiders(
    project, alice, bob, charlie, api_as
):
    make_task(project)
    given = api_answer(api_as(bob), project)
    for user, status in ((alice, 403), (charlie, 404)):
        client = api_as(user)
        assert client.post(f"/api/v1/annotations/{given['id']}/undo/").status_code == status
        edit = client.put(f"/api/v1/annotations/{given['id']}/", {"choice": "b"}, format="json")
        assert edit.status_code == status
    assert (
        api_as(bob).put(f"/api/v1/annotations/{given['id']}/", {}, format="json").status_code == 400
    )
    assert Annotation.objects.get().chosen_id == given["task"]["completions"][0]["id"]
    assert not AnnotationRevision.objects.exists()


def test_the_api_says_when_the_undo_window_has_passed(project, bob, api_as):
    make_task(project)
    labeler = api_as(bob)
    given = api_answer(labeler, project)
    age(Annotation.objects.get(id=given["id"]), 60)
    response = labeler.post(f"/api/v1/annotations/{given['id']}/undo/")
    assert response.status_code == 409 and "My annotations" in response.json()["detail"]
