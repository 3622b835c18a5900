"""The audit log: each admin action leaves one entry with who, what, when and from where;
only the project's admins read it (page and API), and nobody can change it."""

import json
from unittest import mock

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.audit import AuditEntry
from annotator.models import Kind, Membership
from tests.annotator.exportkit import labelers, pick, prompt_for, task_over
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from trainer.models import LoopPolicy, ModelVersion, TrainingJob

Action = AuditEntry.Action
ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def no_broker():
    with (
        mock.patch("trainer.tasks.run_training_job.delay"),
        mock.patch("trainer.tasks.advance_loop.delay"),
    ):
        yield


@pytest.fixture
def client(alice, api_as):
    client = api_as(alice)
    client.defaults["REMOTE_ADDR"] = ADDRESS
    return client


def only_entry(project, action) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(project=project)
    assert entry.action == action
    assert entry.actor_name == "alice" and entry.source_address == ADDRESS
    assert entry.created_at is not None
    return entry


def test_it_records_an_export(project, client):
    (l1,) = labelers(1)
    task, (a, _) = task_over(prompt_for(project, "p"), ["x", "y"], kind=Kind.PAIRWISE)
    pick(task, l1, a)
    response = client.get(f"/api/v1/projects/{project.id}/export/", {"schema": "raw"})
    assert response.status_code == 200
    b"".join(response.streaming_content)
    entry = only_entry(project, Action.EXPORT)
    assert entry.details["schema"] == "raw" and entry.via == "api"
    assert entry.target == f"project-{project.id}-raw.jsonl"


def test_it_records_an_annotation_sync_once_not_per_page(project, client):
    response = client.get(f"/api/v1/projects/{project.id}/annotations/")
    assert response.status_code == 200
    assert only_entry(project, Action.EXPORT).target == "annotations"


def test_it_records_an_import(project, client):
    data = b'{"prompt": "p", "completions": ["a", "b"]}\n'
    response = client.generic(
        "POST", f"/api/v1/projects/{project.id}/import/", data, content_type="application/jsonl"
    )
    assert response.status_code == 201, response.content
    assert only_entry(project, Action.IMPORT).details["tasks_created"] == 1


def test_it_records_an_import_from_the_project_page(project, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    web = Client(REMOTE_ADDR=ADDRESS)
    web.force_login(alice)
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "p", "completions": ["a", "b"]}\n')
    response = web.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "jsonl"}
    )
    assert response.status_code == 302
    assert only_entry(project, Action.IMPORT).via == "web"


def test_it_records_a_role_change(project, client, charlie):
    response = client.post(
        f"/api/v1/projects/{project.id}/members/",
        {"username": "charlie", "role": "admin"},
        format="json",
    )
    assert response.status_code == 201
    entry = only_entry(project, Action.MEMBER_ROLE)
    assert (entry.target, entry.details) == ("user charlie", {"role": "admin"})


def test_it_records_a_job_launch(project, client):
    response = client.post(
        "/api/v1/jobs/",
        {"kind": "reward", "project": project.id, "config": {"model_name_or_path": "/m"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    entry = only_entry(project, Action.JOB_LAUNCH)
    assert entry.target == f"job {response.json()['id']}"


def test_it_records_a_job_cancel(project, client):
    job = TrainingJob.objects.create(project=project, kind="reward", config={})
    assert client.post(f"/api/v1/jobs/{job.id}/cancel/").status_code == 200
    assert only_entry(project, Action.JOB_CANCEL).target == f"job {job.id}"


def test_it_records_a_job_deleted_in_the_django_admin(project, alice):
    from django.test import Client

    alice.is_superuser = True
    alice.save()
    job = TrainingJob.objects.create(project=project, kind="reward", config={})
    web = Client(REMOTE_ADDR=ADDRESS)
    web.force_login(alice)
    url = reverse("admin:trainer_trainingjob_delete", args=[job.id])
    assert web.post(url, {"post": "yes"}).status_code == 302
    assert not TrainingJob.objects.filter(id=job.id).exists()
    entry = only_entry(project, Action.JOB_DELETE)
    assert (entry.target, entry.via) == (f"job {job.id}", "admin")


def test_it_records_a_loop_change_and_a_loop_action(project, client):
    base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
    url = f"/api/v1/projects/{project.id}/loop/"
    body = {"enabled": False, "base_policy": base.id, "algorithm": "dpo"}
    assert client.put(url, body, format="json").status_code == 200
    entry = only_entry(project, Action.LOOP_CONFIGURE)
    assert entry.details["algorithm"] == "dpo" and entry.details["base_policy"] == base.id
    assert LoopPolicy.objects.filter(project=project).exists()
    AuditEntry.objects.all().delete()  # the model allows it; only the admin and API refuse
    assert client.post(url + "actions/", {"action": "pause"}, format="json").status_code == 200
    assert only_entry(project, Action.LOOP_ACTION).target == "pause"


def test_it_takes_the_address_from_a_trusted_proxy(project, client, settings):
    settings.PREFLOOP_TRUSTED_PROXIES = 1
    client.post(
        f"/api/v1/projects/{project.id}/members/",
        {"username": "bob", "role": "labeler"},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.1, 198.51.100.9",
    )
    assert AuditEntry.objects.get().source_address == "198.51.100.9"


# --- Reading it ----------------------------------------------------------------------------


def test_admins_read_it_over_the_api_newest_first_paginated(project, client):
    for role in ["admin", "labeler", "admin"]:
        client.post(
            f"/api/v1/projects/{project.id}/members/",
            {"username": "bob", "role": role},
            format="json",
        )
    url = f"/api/v1/projects/{project.id}/audit/"
    page = client.get(url, {"page_size": 2}).json()
    assert [e["details"]["role"] for e in page["results"]] == ["admin", "labeler"]
    assert page["results"][0]["actor"] == "alice"
    assert page["results"][0]["action"] == "member.role"
    assert page["results"][0]["source_address"] == ADDRESS
    rest = client.get(page["next"].removeprefix("http://testserver")).json()
    assert [e["details"]["role"] for e in rest["results"]] == ["admin"]


def test_only_the_projects_admins_read_it(project, alice, bob, charlie, api_as):
    AuditEntry.objects.create(project=project, actor=alice, actor_name="alice", action="export")
    url = f"/api/v1/projects/{project.id}/audit/"
    assert APIClient().get(url).status_code == 401
    assert api_as(bob).get(url).status_code == 403
    assert api_as(charlie).get(url).status_code == 404
    other_admin = UserFactory(username="dana", is_staff=True)
    MembershipFactory(project=ProjectFactory(), user=other_admin, role=Membership.Role.ADMIN)
    assert api_as(other_admin).get(url).status_code == 404
    assert len(api_as(alice).get(url).json()["results"]) == 1


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_it_cannot_be_changed_over_the_api(project, alice, client, method):
    entry = AuditEntry.objects.create(project=project, actor=alice, action="export")
    for url in [
        f"/api/v1/projects/{project.id}/audit/",
        f"/api/v1/projects/{project.id}/audit/{entry.id}/",
    ]:
        response = getattr(client, method)(url, {"action": "import"}, format="json")
        assert response.status_code in (404, 405)
    entry.refresh_from_db()
    assert entry.action == "export" and AuditEntry.objects.count() == 1


def test_it_cannot_be_changed_in_the_django_admin(project, alice):
    from django.test import Client

    alice.is_superuser = True
    alice.save()
    entry = AuditEntry.objects.create(project=project, actor=alice, action="export")
    web = Client()
    web.force_login(alice)
    assert web.get(reverse("admin:annotator_auditentry_changelist")).status_code == 200
    assert web.get(reverse("admin:annotator_auditentry_add")).status_code == 403
    change = reverse("admin:annotator_auditentry_change", args=[entry.id])
    assert web.post(change, {"action": "import", "target": "x"}).status_code == 403
    delete = reverse("admin:annotator_auditentry_delete", args=[entry.id])
    assert web.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:annotator_auditentry_changelist")
    bulk = {"action": "delete_selected", "_selected_action": [entry.id], "post": "yes"}
    web.post(changelist, bulk)
    entry.refresh_from_db()
    assert entry.action == "export" and AuditEntry.objects.count() == 1


def test_the_page_is_linked_from_the_project_page_and_admin_only(project, alice, bob, charlie):
    from django.test import Client

    AuditEntry.objects.create(
        project=project, actor=alice, actor_name="alice", action="job.launch",
        target="<b>job 1</b>", source_address=ADDRESS,
    )  # fmt: skip
    web = Client()
    web.force_login(alice)
    url = reverse("audit_log", args=[project.id])
    assert url in web.get(reverse("project_admin", args=[project.id])).content.decode()
    page = web.get(url).content.decode()
    assert "Launched a job" in page and ADDRESS in page
    assert "&lt;b&gt;job 1&lt;/b&gt;" in page  # escaped
    web.force_login(bob)
    assert web.get(url).status_code == 403
    web.force_login(charlie)
    assert web.get(url).status_code == 404


def test_the_page_reads_in_a_fixed_number_of_queries(project, alice, django_assert_max_num_queries):
    from django.test import Client

    AuditEntry.objects.bulk_create(
        AuditEntry(project=project, actor=alice, actor_name="alice", action="export")
        for _ in range(60)
    )
    web = Client()
    web.force_login(alice)
    with django_assert_max_num_queries(8):
        assert web.get(reverse("audit_log", args=[project.id])).status_code == 200


def test_it_records_a_role_change_in_the_django_admin(project, alice, bob):
    from django.test import Client

    alice.is_superuser = True
    alice.save()
    web = Client(REMOTE_ADDR=ADDRESS)
    web.force_login(alice)
    url = reverse("admin:annotator_project_change", args=[project.id])
    form = web.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "flags"}
    data |= {"flags": json.dumps(project.flags), "aspects": json.dumps(project.aspects)}
    memberships = list(project.memberships.order_by("id"))
    data |= {
        "memberships-TOTAL_FORMS": len(memberships), "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0, "memberships-MAX_NUM_FORMS": 1000,
    }  # fmt: skip
    for i, m in enumerate(memberships):
        role = "admin" if m.user == bob else m.role
        data |= {f"memberships-{i}-id": m.id, f"memberships-{i}-project": project.id,
                 f"memberships-{i}-user": m.user_id, f"memberships-{i}-role": role}  # fmt: skip
    response = web.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    entry = only_entry(project, Action.MEMBER_ROLE)
    assert (entry.target, entry.details, entry.via) == ("user bob", {"role": "admin"}, "admin")


def test_it_records_the_loop_and_job_pages_actions_too(project, alice):
    from django.test import Client

    from tests.trainer.loop.test_views import valid_settings

    web = Client(REMOTE_ADDR=ADDRESS)
    web.force_login(alice)
    base = ModelVersion.objects.create(project=project, name="b", role="policy", path="/b")
    url = reverse("training_loop_settings", args=[project.id])
    assert web.post(url, valid_settings(base)).status_code == 302
    url = reverse("training_loop_action", args=[project.id, "pause"])
    assert web.post(url).status_code == 302
    job = TrainingJob.objects.create(project=project, kind="reward", config={})
    assert web.post(reverse("training_job_cancel", args=[job.id])).status_code == 302
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.via, e.source_address) for e in entries] == [
        (Action.LOOP_CONFIGURE, "web", ADDRESS),
        (Action.LOOP_ACTION, "web", ADDRESS),
        (Action.JOB_CANCEL, "web", ADDRESS),
    ]
    assert entries[0].details["base_policy"] == base.id
