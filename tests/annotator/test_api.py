import json

import pytest
from rest_framework.test import APIClient

from annotator.models import Annotation, Kind, Membership, Project, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task

PAIR = b'{"prompt": "Hi?", "completions": ["Hello!", "Go away."]}\n'


def import_jsonl(client, project_id, body=PAIR):
    return client.post(
        f"/api/v1/projects/{project_id}/import/", body, content_type="application/jsonl"
    )


@pytest.mark.django_db
class TestProjects:
    def test_it_creates_a_project_with_its_settings(self, alice, api_as):
        resp = api_as(alice).post(
            "/api/v1/projects/",
            {
                "name": "Helpfulness",
                "kind": "likert",
                "overlap": 3,
                "likert_points": 5,
                "aspects": ["helpful", "harmless"],
            },
            format="json",
        )
        assert resp.status_code == 201, resp.content
        project = Project.objects.get(pk=resp.json()["id"])
        assert (project.kind, project.overlap, project.likert_points) == ("likert", 3, 5)
        assert len(project.flags) == 8  # the InstructGPT flags by default
        assert Membership.objects.get(project=project).user == alice

    def test_only_staff_create_projects(self, bob, api_as):
        resp = api_as(bob).post("/api/v1/projects/", {"name": "x"}, format="json")
        assert resp.status_code == 403

    @pytest.mark.parametrize(
        "body, field",
        [
            ({"name": "x", "kind": "essay"}, "kind"),
            ({"name": "x", "overlap": 0}, "overlap"),
            ({"name": "x", "aspects": ["a", "a"]}, "aspects"),
            ({"kind": "pairwise"}, "name"),
        ],
    )
    def test_it_names_the_bad_setting(self, alice, api_as, body, field):
        resp = api_as(alice).post("/api/v1/projects/", body, format="json")
        assert resp.status_code == 400 and field in resp.json()

    def test_it_adds_members(self, alice, charlie, project, api_as):
        resp = api_as(alice).post(
            f"/api/v1/projects/{project.id}/members/",
            {"username": "charlie", "role": "labeler"},
            format="json",
        )
        assert resp.status_code == 201
        assert Membership.objects.get(project=project, user=charlie).role == "labeler"

    def test_it_refuses_an_unknown_member(self, alice, project, api_as):
        resp = api_as(alice).post(
            f"/api/v1/projects/{project.id}/members/",
            {"username": "nobody", "role": "labeler"},
            format="json",
        )
        assert resp.status_code == 400 and "username" in resp.json()

    def test_a_labeler_cannot_add_members(self, bob, project, api_as):
        resp = api_as(bob).post(
            f"/api/v1/projects/{project.id}/members/",
            {"username": "bob", "role": "admin"},
            format="json",
        )
        assert resp.status_code == 403


@pytest.mark.django_db
class TestImport:
    def test_it_imports_jsonl(self, alice, project, api_as):
        resp = import_jsonl(api_as(alice), project.id, PAIR * 3)
        assert resp.status_code == 201 and resp.json() == {"tasks_created": 3}

    def test_it_imports_a_csv_file(self, alice, project, api_as):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("data.csv", b"prompt,completion_1,completion_2\nq,a,b\n")
        resp = api_as(alice).post(
            f"/api/v1/projects/{project.id}/import/", {"file": upload}, format="multipart"
        )
        assert resp.status_code == 201 and resp.json() == {"tasks_created": 1}

    def test_it_reports_bad_lines_and_imports_nothing(self, alice, project, api_as):
        resp = import_jsonl(api_as(alice), project.id, PAIR + b"oops\n" + PAIR + b"{}\n")
        assert resp.status_code == 400
        assert [e["line"] for e in resp.json()["errors"]] == [2, 4]
        assert not Task.objects.exists()

    def test_a_labeler_cannot_import(self, bob, project, api_as):
        assert import_jsonl(api_as(bob), project.id).status_code == 403


@pytest.mark.django_db
class TestLabeling:
    def test_next_then_submit_each_kind(self, alice, bob, api_as):
        labeler = api_as(bob)
        for kind, answer in [
            (Kind.PAIRWISE, lambda t: {"choice": "b", "strength": 3}),
            (Kind.LIKERT, lambda t: {"score": 6, "flags": [], "notes": "ok"}),
            (Kind.RANKING, lambda t: {"ranking": [c["id"] for c in t["completions"]]}),
        ]:
            project = ProjectFactory(kind=kind)
            MembershipFactory(project=project, user=bob)
            make_task(project)
            task = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
            assert task["kind"] == kind and task["prompt"]["text"]
            assert {"id", "text"} <= set(task["completions"][0])
            resp = labeler.post(
                f"/api/v1/tasks/{task['id']}/annotations/",
                answer(task) | {"time_spent_ms": 1234},
                format="json",
            )
            assert resp.status_code == 201, resp.content
            assert Annotation.objects.get(pk=resp.json()["id"]).time_spent_ms == 1234

    def test_a_is_the_first_completion_as_served(self, bob, project, api_as):
        make_task(project)
        labeler = api_as(bob)
        task = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        labeler.post(f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json")
        annotation = Annotation.objects.get()
        assert annotation.chosen_id == task["completions"][0]["id"]
        assert annotation.rejected_id == task["completions"][1]["id"]

    def test_it_answers_204_when_nothing_is_left(self, bob, project, api_as):
        assert api_as(bob).post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 204

    def test_a_second_submit_answers_409_with_the_first_id(self, bob, project, api_as):
        make_task(project)
        labeler = api_as(bob)
        task = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        url = f"/api/v1/tasks/{task['id']}/annotations/"
        first = labeler.post(url, {"choice": "a"}, format="json")
        second = labeler.post(url, {"choice": "a"}, format="json")
        assert second.status_code == 409
        assert second.json()["annotation_id"] == first.json()["id"]
        assert Annotation.objects.count() == 1

    def test_a_bad_answer_answers_400_naming_the_field(self, bob, project, api_as):
        make_task(project)
        labeler = api_as(bob)
        task = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        resp = labeler.post(
            f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "left"}, format="json"
        )
        assert resp.status_code == 400 and resp.json()["field"] == "choice"
        resp = labeler.post(
            f"/api/v1/tasks/{task['id']}/annotations/",
            {"choice": "a", "time_spent_ms": -1},
            format="json",
        )
        assert resp.status_code == 400 and "time_spent_ms" in resp.json()

    def test_skip_takes_a_reason(self, bob, project, api_as):
        make_task(project)
        labeler = api_as(bob)
        task = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").json()
        resp = labeler.post(
            f"/api/v1/tasks/{task['id']}/skip/", {"reason": "unclear"}, format="json"
        )
        assert resp.status_code == 200
        assert labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 204


@pytest.mark.django_db
class TestAccess:
    def test_no_token_answers_401(self, project):
        client = APIClient()
        task = make_task(project)
        assert client.post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 401
        assert client.post(f"/api/v1/tasks/{task.id}/annotations/", {}).status_code == 401
        assert client.get("/api/v1/projects/").status_code == 401

    def test_a_bad_token_answers_401(self, project):
        client = APIClient(HTTP_AUTHORIZATION="Token not-a-real-token")
        assert client.get("/api/v1/projects/").status_code == 401

    def test_an_outsider_gets_404_for_everything_of_the_project(self, charlie, project, api_as):
        outsider = api_as(charlie)
        task = make_task(project)
        assert outsider.get(f"/api/v1/projects/{project.id}/").status_code == 404
        assert outsider.post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 404
        resp = outsider.post(f"/api/v1/tasks/{task.id}/annotations/", {"choice": "a"})
        assert resp.status_code == 404
        assert outsider.post(f"/api/v1/tasks/{task.id}/skip/").status_code == 404
        assert import_jsonl(outsider, project.id).status_code == 404
        assert Annotation.objects.count() == 0

    def test_a_labeler_cannot_answer_another_projects_task(self, bob, project, api_as):
        other = ProjectFactory()
        foreign = make_task(other)
        resp = api_as(bob).post(
            f"/api/v1/tasks/{foreign.id}/annotations/", {"choice": "a"}, format="json"
        )
        assert resp.status_code == 404

    def test_another_projects_admin_gets_404(self, project, api_as):
        admin = UserFactory(is_staff=True)
        MembershipFactory(project=ProjectFactory(), user=admin, role=Membership.Role.ADMIN)
        assert import_jsonl(api_as(admin), project.id).status_code == 404

    def test_the_project_list_shows_only_my_projects(self, bob, project, api_as):
        ProjectFactory(name="secret")
        names = [p["name"] for p in api_as(bob).get("/api/v1/projects/").json()]
        assert names == [project.name]


@pytest.mark.django_db
def test_labeler_text_comes_back_as_json_data_not_markup(alice, bob, project, api_as):
    payload = "<script>alert(1)</script>"
    body = json.dumps({"prompt": payload, "completions": [payload, "<img src=x onerror=1>"]})
    import_jsonl(api_as(alice), project.id, body.encode())
    resp = api_as(bob).post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert resp["Content-Type"] == "application/json"
    assert resp.json()["prompt"]["text"] == payload
