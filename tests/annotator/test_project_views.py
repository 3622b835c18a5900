"""Project setup and export pages (annotator/project_views.py): create, configure, members,
export from the browser session; access for owner / labeler / outsider; query budgets."""

import hashlib

import pytest
from django.urls import reverse

from annotator.models import Kind, Membership, Project
from tests.annotator.exportkit import pick, prompt_for, task_over
from tests.factories import UserFactory, make_task

SETTINGS_MAX_QUERIES = 8
MEMBERS_MAX_QUERIES = 8
EXPORT_MAX_QUERIES = 14  # 8 of them the export's snapshot and cursors (one: edit revisions)


def form_data(**overrides) -> dict:
    data = {
        "name": "Helpfulness",
        "kind": Kind.LIKERT,
        "guidelines": "Be **kind**.",
        "overlap": "2",
        "lease_seconds": "600",
        "allow_tie": "on",
        "wide_lines": Project.WideLines.ALL_PAIRS,
        "likert_points": "5",
        "aspects": "helpful\n  honest \n\n",
        "flags": "Off topic\nRude",
    }
    return data | overrides


@pytest.fixture
def labelled(project, bob):
    """Two pairwise tasks answered by bob."""
    rows = []
    for text in ("First?", "Second?"):
        task, (a, _b) = task_over(prompt_for(project, text), ["yes", "no"], kind=Kind.PAIRWISE)
        rows.append(pick(task, bob, a))
    return rows


# --- Access ---------------------------------------------------------------------------------


def urls(project) -> list[str]:
    return [
        reverse("project_settings", args=[project.id]),
        reverse("project_members", args=[project.id]),
        reverse("project_export", args=[project.id]),
        reverse("project_export_download", args=[project.id]),
    ]


def test_it_gives_labelers_403_and_outsiders_404(client, project, bob, charlie):
    client.force_login(bob)
    assert [client.get(u).status_code for u in urls(project)] == [403] * 4
    client.force_login(charlie)
    assert [client.get(u).status_code for u in urls(project)] == [404] * 4


def test_it_sends_anonymous_users_to_the_login_page(client, project):
    response = client.get(reverse("project_export", args=[project.id]))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_it_lets_only_staff_create_projects(client, alice, bob):
    client.force_login(alice)
    assert reverse("project_new") in client.get(reverse("home")).content.decode()
    client.force_login(bob)
    assert reverse("project_new") not in client.get(reverse("home")).content.decode()
    assert client.get(reverse("project_new")).status_code == 403
    assert client.post(reverse("project_new"), form_data()).status_code == 403
    assert not Project.objects.filter(name="Helpfulness").exists()


# --- Create and configure -------------------------------------------------------------------


def test_it_creates_a_project_with_lists_and_makes_its_creator_admin(client, alice):
    client.force_login(alice)
    response = client.post(reverse("project_new"), form_data())
    project = Project.objects.get(name="Helpfulness")
    assert response.status_code == 302
    assert response["Location"] == reverse("project_admin", args=[project.id])
    assert project.kind == Kind.LIKERT and project.likert_points == 5 and project.overlap == 2
    assert project.aspects == ["helpful", "honest"]
    assert project.flags == ["Off topic", "Rude"]
    assert project.allow_tie and not project.allow_both_bad
    assert Membership.objects.get(project=project, user=alice).role == Membership.Role.ADMIN


def test_the_new_project_form_starts_with_the_default_flags_one_per_line(client, alice):
    client.force_login(alice)
    html = client.get(reverse("project_new")).content.decode()
    assert "Fails to follow the correct instruction / task\nInappropriate" in html


def test_it_shows_messages_next_to_the_fields_and_marks_required_ones(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("project_new"), form_data(name="", likert_points="12", aspects="a\nA")
    )
    html = response.content.decode()
    assert response.status_code == 200 and not Project.objects.exists()
    assert "Pick a scale of 2 to 10 points." in html
    assert "“A” is listed twice; keep one." in html
    assert html.count('class="field has-error') == 3
    assert '<span class="required" title="required">*</span>' in html


def test_it_edits_settings_but_not_the_kind_once_there_are_tasks(client, project, alice):
    make_task(project)
    client.force_login(alice)
    url = reverse("project_settings", args=[project.id])
    response = client.post(url, form_data(name="Renamed"))
    assert "The kind cannot change once the project has tasks" in response.content.decode()
    project.refresh_from_db()
    assert project.name != "Renamed" and project.kind == Kind.PAIRWISE
    response = client.post(url, form_data(name="Renamed", kind=Kind.PAIRWISE, flags=""))
    project.refresh_from_db()
    assert response.status_code == 302
    assert (
        project.name == "Renamed"
        and project.flags == []
        and project.aspects
        == [
            "helpful",
            "honest",
        ]
    )


def test_it_previews_guidelines_with_the_safe_renderer(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("project_guidelines_preview"),
        {"guidelines": "**bold** <script>alert(1)</script>"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'id="guidelines-preview"' in html and "<form" not in html


# --- Members --------------------------------------------------------------------------------


def test_it_adds_a_member_by_username_with_a_role(client, project, alice, charlie):
    client.force_login(alice)
    url = reverse("project_members", args=[project.id])
    response = client.post(url, {"username": "charlie", "role": "labeler"}, follow=True)
    assert Membership.objects.get(project=project, user=charlie).role == "labeler"
    assert "charlie is now labeler." in response.content.decode()


def test_it_says_next_to_the_field_when_the_username_is_unknown(client, project, alice):
    client.force_login(alice)
    url = reverse("project_members", args=[project.id])
    response = client.post(url, {"username": "nobody", "role": "labeler"})
    assert response.status_code == 400
    assert "There is no user named “nobody”." in response.content.decode()


def test_it_keeps_the_last_admin(client, project, alice):
    client.force_login(alice)
    own = Membership.objects.get(project=project, user=alice)
    url = reverse("project_members", args=[project.id])
    response = client.post(url, {"username": "alice", "role": "labeler"})
    assert "A project needs at least one admin" in response.content.decode()
    remove = reverse("project_member_remove", args=[project.id, own.id])
    client.post(remove)
    own.refresh_from_db()
    assert own.role == Membership.Role.ADMIN


def test_it_does_not_remove_members_of_other_projects(client, project, alice):
    other = Membership.objects.create(
        project=Project.objects.create(name="Other"), user=UserFactory(username="dave")
    )
    client.force_login(alice)
    client.post(reverse("project_member_remove", args=[project.id, other.id]))
    assert Membership.objects.filter(id=other.id).exists()


# --- Export ---------------------------------------------------------------------------------


def test_it_shows_rows_and_checksum_of_exactly_the_downloaded_bytes(
    client, project, alice, labelled
):
    client.force_login(alice)
    page = client.get(reverse("project_export", args=[project.id]), {"check": "1"})
    summary = page.context["summary"]
    assert summary["rows"] == 2
    html = page.content.decode()
    assert summary["sha256"] in html and ">2</dd>" in html
    download = client.get(page.context["download_url"])
    body = b"".join(download.streaming_content)
    assert download["Content-Disposition"].startswith("attachment;")
    assert hashlib.sha256(body).hexdigest() == summary["sha256"]
    assert body.count(b"\n") == 2


def test_it_passes_filters_and_format_to_the_export(client, project, alice, labelled):
    client.force_login(alice)
    url = reverse("project_export", args=[project.id])
    page = client.get(url, {"check": "1", "format": "csv", "split": "eval"})
    assert page.context["summary"]["rows"] == 0 and page.context["summary"]["format"] == "csv"
    assert "The file would be empty" in page.content.decode()


def test_it_puts_bad_export_choices_next_to_the_field(client, project, alice):
    client.force_login(alice)
    url = reverse("project_export", args=[project.id])
    page = client.get(url, {"check": "1", "min_agreement": "2"})
    assert "summary" not in page.context
    assert page.context["form"].errors["min_agreement"]
    bad = client.get(reverse("project_export_download", args=[project.id]), {"schema": "nope"})
    assert bad.status_code == 400 and b"schema" in bad.content


# --- Query budgets --------------------------------------------------------------------------


def test_it_renders_the_setup_pages_within_their_query_budget(
    client, project, alice, django_assert_max_num_queries
):
    for i in range(20):
        Membership.objects.create(project=project, user=UserFactory(username=f"member{i}"))
    client.force_login(alice)
    client.get(reverse("home"))  # session and user loaded once, like any later page
    with django_assert_max_num_queries(SETTINGS_MAX_QUERIES):
        assert client.get(reverse("project_settings", args=[project.id])).status_code == 200
    with django_assert_max_num_queries(MEMBERS_MAX_QUERIES):
        assert client.get(reverse("project_members", args=[project.id])).status_code == 200
    with django_assert_max_num_queries(SETTINGS_MAX_QUERIES):
        assert client.get(reverse("project_new")).status_code == 200


def test_it_checks_an_export_within_its_query_budget(
    client, project, alice, bob, labelled, django_assert_max_num_queries
):
    for i in range(30):  # the count does not grow with the rows
        task, (a, _b) = task_over(prompt_for(project, f"P{i}"), ["x", "y"], kind=Kind.PAIRWISE)
        pick(task, bob, a)
    client.force_login(alice)
    with django_assert_max_num_queries(EXPORT_MAX_QUERIES):
        page = client.get(reverse("project_export", args=[project.id]), {"check": "1"})
    assert page.context["summary"]["rows"] == 32
    with django_assert_max_num_queries(EXPORT_MAX_QUERIES):
        download = client.get(page.context["download_url"])
        assert b"".join(download.streaming_content).count(b"\n") == 32
