"""Demonstration tasks (the labeler writes the response) and edit tasks (critique and
revise): import, the queue, answers, the page and its preview, the API."""

import json

import pytest

from annotator.exceptions import InvalidAnswer
from annotator.importing import project_import
from annotator.models import Annotation, Completion, Kind, Membership, Task
from annotator.services import annotation_edit, annotation_submit, task_claim_next
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task


def member(project):
    user = UserFactory()
    MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    return user


def jsonl(*objs) -> bytes:
    return "\n".join(json.dumps(o) for o in objs).encode()


@pytest.mark.django_db
class TestImport:
    def test_a_demonstration_line_needs_no_responses(self):
        project = ProjectFactory(kind=Kind.DEMONSTRATION)
        data = jsonl({"prompt": "Write a haiku."}, {"prompt": [{"role": "user", "content": "Hi"}]})
        assert project_import(project=project, data=data, fmt="jsonl") == 2
        assert list(Task.objects.values_list("kind", flat=True)) == [Kind.DEMONSTRATION] * 2
        assert not Completion.objects.exists()

    def test_an_edit_line_gives_one_task_per_response(self):
        project = ProjectFactory(kind=Kind.EDIT)
        data = jsonl({"prompt": "p", "completions": ["one", "two"]})
        assert project_import(project=project, data=data, fmt="jsonl") == 2
        assert [t.task_completions.count() for t in Task.objects.all()] == [1, 1]

    def test_other_kinds_still_need_responses(self):
        from annotator.exceptions import ImportFailed

        project = ProjectFactory(kind=Kind.PAIRWISE)
        with pytest.raises(ImportFailed) as caught:
            project_import(project=project, data=jsonl({"prompt": "p"}), fmt="jsonl")
        assert caught.value.errors == [
            {"line": 1, "error": "completions must be a non-empty list of strings"}
        ]


@pytest.mark.django_db
class TestDemonstration:
    def test_overlap_and_leases_work_as_for_other_kinds(self):
        project = ProjectFactory(kind=Kind.DEMONSTRATION, overlap=2)
        task = make_task(project)
        one, two, three = member(project), member(project), member(project)
        for user in (one, two):
            lease = task_claim_next(project=project, labeler=user)
            assert lease.task_id == task.id and lease.shown_order == []
        assert task_claim_next(project=project, labeler=three) is None  # both slots leased
        annotation_submit(task=task, labeler=one, answer={"text": "  **Mine**  "})
        annotation_submit(task=task, labeler=two, answer={"text": "Theirs"})
        assert sorted(Annotation.objects.values_list("text", flat=True)) == ["**Mine**", "Theirs"]
        assert Task.objects.get().is_complete

    @pytest.mark.parametrize(
        ("text", "message"),
        [("", "Write the response."), ("abc", "at least 5"), ("x" * 11, "at most 10")],
    )
    def test_it_keeps_the_length_within_the_project_bounds(self, text, message):
        project = ProjectFactory(kind=Kind.DEMONSTRATION, min_chars=5, max_chars=10)
        task = make_task(project)
        user = member(project)
        task_claim_next(project=project, labeler=user)
        with pytest.raises(InvalidAnswer) as caught:
            annotation_submit(task=task, labeler=user, answer={"text": text})
        assert message in caught.value.message and caught.value.field == "text"
        assert not Annotation.objects.exists()


@pytest.mark.django_db
class TestEdit:
    def setup_project(self, **kwargs):
        project = ProjectFactory(kind=Kind.EDIT, principles=["Be honest", "Be brief"], **kwargs)
        task = make_task(project, texts=["The sky is green."])
        user = member(project)
        task_claim_next(project=project, labeler=user)
        return project, task, user

    def test_a_revision_is_a_demonstration_and_a_preference_over_the_original(self):
        project, task, user = self.setup_project()
        answer = {"text": "The sky is blue.", "critique": "Wrong colour.", "principle": "Be honest"}
        annotation_submit(task=task, labeler=user, answer=answer)
        a = Annotation.objects.get()
        assert (a.text, a.critique, a.principle) == (
            "The sky is blue.",
            "Wrong colour.",
            "Be honest",
        )
        assert a.verdict == "preferred" and a.rejected.text == "The sky is green."
        assert a.chosen.text == "The sky is blue." and a.chosen.source == Completion.Source.REVISION
        assert a.chosen.prompt_id == task.prompt_id

    def test_an_unchanged_response_is_no_preference(self):
        project, task, user = self.setup_project()
        annotation_submit(task=task, labeler=user, answer={"text": "The sky is green."})
        a = Annotation.objects.get()
        assert a.text == "The sky is green." and a.chosen_id is None and a.verdict == ""

    def test_it_refuses_a_principle_the_project_does_not_have(self):
        project, task, user = self.setup_project()
        with pytest.raises(InvalidAnswer) as caught:
            annotation_submit(task=task, labeler=user, answer={"text": "x", "principle": "Be rude"})
        assert caught.value.field == "principle"

    def test_changing_the_revision_later_makes_a_new_revision(self):
        project, task, user = self.setup_project()
        first = annotation_submit(task=task, labeler=user, answer={"text": "Blue."}).annotation
        edited = annotation_edit(annotation_id=first.id, user=user, answer={"text": "Azure."})
        assert edited.chosen.text == "Azure." and edited.chosen_id != first.chosen_id
        assert Annotation.objects.get().chosen.text == "Azure."


@pytest.mark.django_db
class TestPage:
    def test_the_page_shows_the_writer_and_submits_from_the_form(self, client):
        project = ProjectFactory(kind=Kind.DEMONSTRATION, guidelines="Be **kind**.")
        task = make_task(project)
        user = member(project)
        client.force_login(user)
        page = client.get(f"/projects/{project.id}/label/").content.decode()
        assert 'id="written"' in page and f"prefloop-draft-{user.pk}-{task.id}" in page
        short = client.post(f"/projects/{project.id}/tasks/{task.id}/submit/", {"text": ""})
        assert "Write the response." in short.content.decode()
        client.post(f"/projects/{project.id}/tasks/{task.id}/submit/", {"text": "Hello"})
        assert Annotation.objects.get().text == "Hello"

    def test_the_preview_renders_safely_and_shows_an_edit_diff(self, client):
        project = ProjectFactory(kind=Kind.EDIT)
        task = make_task(project, texts=["The sky is green."])
        user = member(project)
        client.force_login(user)
        url = f"/projects/{project.id}/label/{task.id}/preview/"
        body = client.post(url, {"text": "The sky is *blue*.<script>x()</script>"}).content.decode()
        assert "<em>blue</em>" in body and "<script>" not in body
        assert 'data-testid="diff"' in body and "<ins" in body and "<del" in body
        outsider = UserFactory()
        client.force_login(outsider)
        assert client.post(url, {"text": "x"}).status_code == 404


@pytest.mark.django_db
def test_the_api_serves_a_demonstration_and_takes_the_written_answer(api_as):
    project = ProjectFactory(kind=Kind.DEMONSTRATION)
    task = make_task(project)
    user = member(project)
    client = api_as(user)
    served = client.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert served.status_code == 200 and served.json()["completions"] == []
    stored = client.post(
        f"/api/v1/tasks/{task.id}/annotations/", {"text": "Written."}, format="json"
    )
    assert stored.status_code == 201, stored.content
    assert Annotation.objects.get().text == "Written."


@pytest.mark.django_db
def test_my_annotations_lists_written_answers_and_the_edit_page_shows_them(client):
    project = ProjectFactory(kind=Kind.EDIT)
    task = make_task(project, texts=["Teh answer."])
    user = member(project)
    task_claim_next(project=project, labeler=user)
    answer = annotation_submit(task=task, labeler=user, answer={"text": "The answer."}).annotation
    client.force_login(user)
    listing = client.get(f"/projects/{project.id}/annotations/").content.decode()
    assert "Revised" in listing and "The answer." in listing
    page = client.get(f"/projects/{project.id}/annotations/{answer.id}/edit/")
    assert page.status_code == 200 and "The answer.</textarea>" in page.content.decode()
