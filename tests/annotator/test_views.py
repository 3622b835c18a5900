"""The labeler's browser UI (annotator/views.py): access, labeling over htmx, import, XSS."""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotator import services
from annotator.models import Annotation, Assignment, Completion, Kind, Membership, Prompt, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task

HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
]


def label_url(project) -> str:
    return reverse("label", args=[project.id])


def submit_url(task) -> str:
    return reverse("label_submit", args=[task.project_id, task.id])


def skip_url(task) -> str:
    return reverse("label_skip", args=[task.project_id, task.id])


def lease(project, user) -> Assignment:
    return services.task_claim_next(project=project, labeler=user)


def assert_neutralised(html: str) -> None:
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x" not in html
    assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Access ---------------------------------------------------------------------------------


def project_urls(project, task) -> list[tuple[str, str]]:
    return [
        ("get", label_url(project)),
        ("get", reverse("my_annotations", args=[project.id])),
        ("get", reverse("project_admin", args=[project.id])),
        ("post", reverse("project_import", args=[project.id])),
        ("post", submit_url(task)),
        ("post", skip_url(task)),
    ]


def test_it_sends_anonymous_users_to_the_login_page(client, project):
    task = make_task(project)
    urls = [*project_urls(project, task), ("get", reverse("home")), ("get", reverse("api_token"))]
    for method, url in urls:
        resp = getattr(client, method)(url)
        assert resp.status_code == 302, url
        assert resp.url.startswith(reverse("login")), url


def test_it_sends_an_anonymous_htmx_request_to_the_login_page_as_a_whole_page(client, project):
    task = make_task(project)
    resp = client.post(submit_url(task), {"choice": "a"}, **HTMX)
    assert resp.status_code == 200
    assert resp["HX-Redirect"].startswith(reverse("login"))


def test_it_answers_404_to_outsiders_on_everything_of_the_project(client, project, charlie):
    task = make_task(project)
    client.force_login(charlie)
    for method, url in project_urls(project, task):
        assert getattr(client, method)(url).status_code == 404, url
    assert not Assignment.objects.exists()


def test_it_does_not_take_a_task_of_another_project_through_my_project(client, project, bob):
    other = ProjectFactory()
    MembershipFactory(project=other, user=UserFactory(username="dora"))
    foreign = make_task(other)
    client.force_login(bob)
    url = reverse("label_submit", args=[project.id, foreign.id])
    assert client.post(url, {"choice": "a"}).status_code == 404
    url = reverse("label_skip", args=[project.id, foreign.id])
    assert client.post(url).status_code == 404


def test_it_answers_403_to_labelers_on_admin_pages(client, project, bob):
    client.force_login(bob)
    assert client.get(reverse("project_admin", args=[project.id])).status_code == 403
    upload = SimpleUploadedFile("a.jsonl", b'{"prompt": "p", "completions": ["a", "b"]}\n')
    resp = client.post(reverse("project_import", args=[project.id]), {"file": upload})
    assert resp.status_code == 403
    assert not Prompt.objects.exists()


def test_it_refuses_get_on_post_only_views(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    assert client.get(submit_url(task)).status_code == 405
    assert client.get(skip_url(task)).status_code == 405
    assert client.get(reverse("api_token_regenerate")).status_code == 405


def test_it_logs_in_through_the_form_and_logs_out_by_post(client, bob):
    page = client.get(reverse("login")).content.decode()
    assert "csrfmiddlewaretoken" in page
    assert "sign up" not in page.lower().replace("no sign-up", "")
    resp = client.post(reverse("login"), {"username": "bob", "password": "pw-for-tests-1"})
    assert resp.status_code == 302
    home = client.get(reverse("home")).content.decode()
    assert 'action="/accounts/logout/"' in home
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_it_lists_only_my_projects_with_role_and_progress(client, project, bob, charlie):
    other = ProjectFactory(name="Not bob's")
    MembershipFactory(project=other, user=charlie)
    for _ in range(3):
        make_task(project)
    assignment = lease(project, bob)
    services.annotation_submit(task=assignment.task, labeler=bob, answer={"choice": "a"})
    lease(project, bob)  # held, not answered: still remaining
    client.force_login(bob)
    page = client.get(reverse("home")).content.decode()
    assert project.name in page
    assert "Not bob&#x27;s" not in page and "Not bob's" not in page
    assert '<td data-label="Your role">Labeler</td>' in page
    assert '<td class="num" data-label="Done">1</td>' in page
    assert '<td class="num" data-label="Remaining">2</td>' in page


# --- Labeling -------------------------------------------------------------------------------


def test_it_shows_the_leased_task_and_shows_it_again_on_reload(client, project, bob):
    task = make_task(project, texts=["First answer", "Second answer"])
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assignment = Assignment.objects.get(labeler=bob)
    assert assignment.task == task
    assert task.prompt.text in page
    shown = [task.completions.get(id=cid).text for cid in assignment.shown_order]
    assert page.index(shown[0]) < page.index(shown[1])  # A then B, in the lease's order
    assert '<span class="badge">A</span>' in page and '<span class="badge">B</span>' in page
    assert f'hx-post="{submit_url(task)}"' in page
    assert 'data-kind="pairwise"' in page
    assert "htmx.min.js" in page and "label.js" in page

    again = client.get(label_url(project)).content.decode()
    assert Assignment.objects.filter(labeler=bob).count() == 1
    assert task.prompt.text in again


def test_it_renders_chat_prompts_as_turns_with_roles(client, project, bob):
    task = make_task(project)
    task.prompt.messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is **2+2**?"},
    ]
    task.prompt.text = ""
    task.prompt.save()
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'class="turn turn-system"' in page and 'class="turn turn-user"' in page
    assert '<span class="role">user</span>' in page
    assert "<strong>2+2</strong>" in page


def test_it_hides_tie_and_both_bad_when_the_project_does_not_allow_them(client, project, bob):
    project.allow_tie = False
    project.allow_both_bad = False
    project.ask_strength = True
    project.save()
    make_task(project)
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'value="tie"' not in page and 'value="both_bad"' not in page
    assert 'name="strength" value="3"' in page


def test_it_stores_a_pairwise_answer_against_completion_ids_and_returns_the_next_task(
    client, project, bob
):
    first = make_task(project, priority=1)
    second = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    assignment = Assignment.objects.get(labeler=bob, task=first)

    resp = client.post(
        submit_url(first),
        {"choice": "a", "notes": "A is clearer", "time_spent_ms": "4321"},
        **HTMX,
    )
    assert resp.status_code == 200
    annotation = Annotation.objects.get(labeler=bob, task=first)
    assert annotation.chosen_id == assignment.shown_order[0]
    assert annotation.rejected_id == assignment.shown_order[1]
    assert annotation.verdict == Annotation.Verdict.PREFERRED
    assert annotation.notes == "A is clearer"
    assert annotation.time_spent_ms == 4321

    fragment = resp.content.decode()
    assert "<html" not in fragment and 'id="task-panel"' in fragment
    assert second.prompt.text in fragment
    assert "Saved." in fragment
    assert "<strong>1</strong> done" in fragment
    assert "<strong>1</strong> remaining" in fragment  # the one on screen


def test_it_stores_choice_b_with_strength(client, project, bob):
    project.ask_strength = True
    project.save()
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    shown = Assignment.objects.get(labeler=bob).shown_order
    client.post(submit_url(task), {"choice": "b", "strength": "3"}, **HTMX)
    annotation = Annotation.objects.get()
    assert (annotation.chosen_id, annotation.rejected_id) == (shown[1], shown[0])
    assert annotation.strength == 3


def test_it_redirects_after_a_plain_post_submit(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    resp = client.post(submit_url(task), {"choice": "tie"})
    assert resp.status_code == 302 and resp.url == label_url(project)
    assert Annotation.objects.get().verdict == Annotation.Verdict.TIE
    page = client.get(resp.url).content.decode()
    assert "Saved." in page and "All done" in page


def test_it_creates_no_second_annotation_on_a_double_submit(client, project, bob):
    task = make_task(project)
    make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    client.post(submit_url(task), {"choice": "a"}, **HTMX)
    resp = client.post(submit_url(task), {"choice": "b"}, **HTMX)
    assert resp.status_code == 200
    assert Annotation.objects.filter(task=task).count() == 1
    assert Annotation.objects.get(task=task).chosen_id is not None
    page = resp.content.decode()
    assert "already answered" in page
    assert Assignment.objects.filter(labeler=bob, status=Assignment.Status.ACTIVE).count() == 1


def test_it_shows_an_invalid_answer_naming_the_field_and_keeps_the_notes(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    resp = client.post(submit_url(task), {"notes": "half-written thought"}, **HTMX)
    page = resp.content.decode()
    assert resp.status_code == 200
    # Said for people, beside the question it is about.
    choices = re.search(r"<legend>Which response is better\?</legend>(.*?)</fieldset>", page, re.S)
    assert '<p class="field-error" role="alert">Pick A, B, tie or both bad.</p>' in choices[1]
    assert "half-written thought" in page
    assert task.prompt.text in page  # the same task, not the next one
    assert not Annotation.objects.exists()


def test_it_says_the_answer_was_not_stored_when_the_lease_was_lost(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    Assignment.objects.filter(labeler=bob).update(expires_at=timezone.now() - timedelta(seconds=1))
    dora = UserFactory(username="dora")
    MembershipFactory(project=project, user=dora)
    assert lease(project, dora).task == task

    resp = client.post(submit_url(task), {"choice": "a"}, **HTMX)
    page = resp.content.decode()
    assert resp.status_code == 200
    assert 'role="alert"' in page
    assert "not stored" in page
    assert not Annotation.objects.exists()


def test_it_skips_a_task_and_never_serves_it_again(client, project, bob):
    task = make_task(project, priority=5)
    other = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    resp = client.post(skip_url(task), {"reason": "Can't judge"}, **HTMX)
    assert resp.status_code == 200
    assignment = Assignment.objects.get(task=task, labeler=bob)
    assert assignment.status == Assignment.Status.SKIPPED
    assert assignment.skip_reason == "Can't judge"
    assert other.prompt.text in resp.content.decode()

    client.post(submit_url(other), {"choice": "a"}, **HTMX)
    page = client.get(label_url(project)).content.decode()
    assert "All done" in page
    assert task.prompt.text not in page


def test_it_skips_without_javascript_too(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    resp = client.post(skip_url(task), {"reason": "x" * 500})
    assert resp.status_code == 302 and resp.url == label_url(project)
    assignment = Assignment.objects.get(task=task, labeler=bob)
    assert assignment.status == Assignment.Status.SKIPPED
    assert assignment.skip_reason == "x" * 200
    assert "Skipped." in client.get(resp.url).content.decode()


def test_it_stores_likert_scores_and_flags(client, bob, alice):
    project = ProjectFactory(kind=Kind.LIKERT, likert_points=5, flags=["Harmful", "Rude"])
    MembershipFactory(project=project, user=bob)
    task = make_task(project)
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'name="score" value="5"' in page and 'name="score" value="6"' not in page
    assert "Rude" in page and "<kbd>⇧2</kbd>" in page
    client.post(submit_url(task), {"score": "4", "flag": ["1"], "time_spent_ms": "900"}, **HTMX)
    annotation = Annotation.objects.get()
    assert (annotation.score, annotation.flags) == (4, ["Rude"])


def test_it_stores_one_score_per_aspect(client, bob):
    project = ProjectFactory(kind=Kind.LIKERT, aspects=["helpful", "honest"], flags=[])
    MembershipFactory(project=project, user=bob)
    task = make_task(project)
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'name="score__0"' in page and 'name="score__1"' in page
    resp = client.post(submit_url(task), {"score__0": "7"}, **HTMX)
    aspects = re.search(r'<fieldset class="aspects">(.*?)</fieldset>', resp.content.decode(), re.S)
    assert "Give “honest” a score from 1 to 7." in aspects[1]
    assert not Annotation.objects.exists()
    client.post(submit_url(task), {"score__0": "7", "score__1": "2"}, **HTMX)
    assert Annotation.objects.get().scores == {"helpful": 7, "honest": 2}


def test_it_stores_a_ranking_as_completion_ids_best_first(client, bob):
    project = ProjectFactory(kind=Kind.RANKING)
    MembershipFactory(project=project, user=bob)
    task = make_task(project, k=3)
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'name="rank__3"' in page
    shown = Assignment.objects.get().shown_order
    # The response shown third is best, then the first, then the second.
    resp = client.post(submit_url(task), {"rank__1": "2", "rank__2": "3", "rank__3": "1"}, **HTMX)
    assert resp.status_code == 200
    assert Annotation.objects.get().ranking == [shown[2], shown[0], shown[1]]


def test_it_refuses_an_incomplete_ranking(client, bob):
    project = ProjectFactory(kind=Kind.RANKING)
    MembershipFactory(project=project, user=bob)
    task = make_task(project, k=3)
    client.force_login(bob)
    client.get(label_url(project))
    resp = client.post(submit_url(task), {"rank__1": "1", "rank__2": "1"}, **HTMX)
    page = resp.content.decode()
    assert (
        '<p class="field-error" role="alert">Give every response its own rank, from 1 (best) '
        "to 3 (worst).</p>"
    ) in page
    assert "ranking:" not in page
    assert not Annotation.objects.exists()


def test_it_falls_back_to_the_lease_age_for_time_spent(client, project, bob):
    task = make_task(project)
    client.force_login(bob)
    client.get(label_url(project))
    Assignment.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    client.post(submit_url(task), {"choice": "a", "time_spent_ms": "nonsense"}, **HTMX)
    assert 29_000 <= Annotation.objects.get().time_spent_ms <= 60_000


def test_it_says_all_done_when_nothing_is_left(client, project, bob):
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert "All done" in page
    assert f'hx-get="{label_url(project)}"' in page
    assert f'href="{label_url(project)}"' in page
    fragment = client.get(label_url(project), **HTMX).content.decode()
    assert "<html" not in fragment and "All done" in fragment


def test_it_lists_only_my_own_annotations_paginated(client, project, bob):
    dora = UserFactory(username="dora")
    MembershipFactory(project=project, user=dora)
    for _ in range(28):
        make_task(project)
    for user in (bob, dora):
        for i in range(27 if user == bob else 1):
            assignment = lease(project, user)
            services.annotation_submit(
                task=assignment.task, labeler=user, answer={"choice": "a", "notes": f"{user} {i}"}
            )
    client.force_login(bob)
    url = reverse("my_annotations", args=[project.id])
    page = client.get(url).content.decode()
    assert page.count("<tr>") == 1 + 25
    assert "dora" not in page
    assert "Page 1 of 2" in page
    page2 = client.get(url, {"page": 2}).content.decode()
    assert page2.count("<tr>") == 1 + 2
    assert "A is better" in page2


def test_it_summarises_answers_in_the_labels_the_labeler_saw(client, bob):
    project = ProjectFactory(kind=Kind.RANKING)
    MembershipFactory(project=project, user=bob)
    make_task(project, k=3)
    assignment = lease(project, bob)
    shown = assignment.shown_order
    services.annotation_submit(
        task=assignment.task, labeler=bob, answer={"ranking": [shown[1], shown[2], shown[0]]}
    )
    client.force_login(bob)
    page = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    # The judged responses, best first, each with the number it was shown under.
    texts = dict(Completion.objects.filter(id__in=shown).values_list("id", "text"))
    judged = re.search(r'<ol class="judged ranked">(.*?)</ol>', page, re.S)[1]
    items = re.findall(
        r'<span class="badge">(\d)</span> <span class="excerpt hint">([^<]*)<', judged
    )
    assert items == [("2", texts[shown[1]]), ("3", texts[shown[2]]), ("1", texts[shown[0]])]


# --- Project admin: import ------------------------------------------------------------------


def test_it_shows_admins_stats_and_members(client, project, alice, bob):
    make_task(project)
    client.force_login(alice)
    page = client.get(reverse("project_admin", args=[project.id])).content.decode()
    assert "alice" in page and "bob" in page
    assert 'enctype="multipart/form-data"' in page


def test_it_imports_a_file_through_the_ui(client, project, alice):
    client.force_login(alice)
    data = b'{"prompt": "Hi?", "completions": ["Hello!", "Go away."]}\n' * 2
    upload = SimpleUploadedFile("batch.jsonl", data)
    resp = client.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "auto"}
    )
    assert resp.status_code == 302
    assert Task.objects.filter(project=project).count() == 2
    assert "Imported 2 task(s)." in client.get(resp.url).content.decode()


def test_it_imports_csv_through_the_ui(client, project, alice):
    client.force_login(alice)
    upload = SimpleUploadedFile("batch.csv", b"prompt,completion_1,completion_2\nHi?,Yo,Hey\n")
    resp = client.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "auto"}
    )
    assert resp.status_code == 302
    assert Task.objects.filter(project=project).count() == 1


def test_it_reports_every_bad_line_and_imports_nothing(client, project, alice):
    client.force_login(alice)
    data = (
        b'{"prompt": "fine", "completions": ["a", "b"]}\n'
        b"not json\n"
        b'{"prompt": "<script>alert(1)</script>", "completions": ["only one"]}\n'
    )
    upload = SimpleUploadedFile("bad.jsonl", data)
    resp = client.post(
        reverse("project_import", args=[project.id]), {"file": upload, "format": "jsonl"}
    )
    page = resp.content.decode()
    assert resp.status_code == 200
    assert "Nothing was imported." in page
    assert '<td class="num">2</td>' in page and '<td class="num">3</td>' in page
    assert "invalid JSON" in page
    assert "needs at least 2 completions" in page
    assert not Prompt.objects.exists() and not Task.objects.exists()


# --- API token ------------------------------------------------------------------------------


def test_it_creates_and_regenerates_my_api_token(client, bob):
    client.force_login(bob)
    assert "no API token yet" in client.get(reverse("api_token")).content.decode()
    assert client.post(reverse("api_token_regenerate")).status_code == 302
    first = Token.objects.get(user=bob).key
    page = client.get(reverse("api_token"))
    assert first in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    client.post(reverse("api_token_regenerate"))
    assert Token.objects.get(user=bob).key != first


# --- XSS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_it_neutralises_markup_in_prompts_responses_and_guidelines(client, bob, payload):
    project = ProjectFactory(name=f"P {payload}", guidelines=f"Read this: {payload}")
    MembershipFactory(project=project, user=bob)
    make_task(project, texts=[f"A says {payload}", f"B says {payload}"])
    prompt = Prompt.objects.get()
    prompt.text = f"Q {payload}"
    prompt.save()
    client.force_login(bob)
    for url in (label_url(project), reverse("home")):
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
        assert 'href="javascript:' not in html


def test_it_escapes_everything_users_write(client, bob):
    payload = XSS[0] + XSS[1]
    project = ProjectFactory(
        name=payload,
        guidelines=payload + "\n\n" + XSS[2],
        kind=Kind.LIKERT,
        flags=[f"flag {payload}"],
        aspects=[f"aspect {payload}"],
    )
    MembershipFactory(project=project, user=bob)
    task = make_task(project, texts=[payload])
    task.prompt.messages = [{"role": "user", "content": payload}]
    task.prompt.save()
    client.force_login(bob)
    assert_neutralised(client.get(label_url(project)).content.decode())
    assert_neutralised(client.get(reverse("home")).content.decode())

    # Notes come back escaped: in the re-shown form after an error, and in "my annotations".
    resp = client.post(submit_url(task), {"notes": payload, "flag": ["0"]}, **HTMX)
    assert_neutralised(resp.content.decode())
    client.post(submit_url(task), {"notes": payload, "score__0": "3", "flag": ["0"]}, **HTMX)
    assert Annotation.objects.get().notes == payload
    page = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert_neutralised(page)


def test_it_escapes_import_errors_and_member_names(client, project, alice):
    MembershipFactory(project=project, user=UserFactory(username="<script>alert(1)</script>"))
    client.force_login(alice)
    upload = SimpleUploadedFile("bad.jsonl", b'{"prompt": "x", "<script>alert(1)</script>": 1}\n')
    resp = client.post(reverse("project_import", args=[project.id]), {"file": upload})
    assert_neutralised(resp.content.decode())


# --- Queries --------------------------------------------------------------------------------

# Session, user, project and role; the claim (user lock, resume, candidate, lease); the task
# with its completions; progress. None of it grows with the number of responses, flags or
# aspects: the same bound holds for 1, 2 and 8 responses.
LABEL_PAGE_MAX_QUERIES = 18
# Plus the submit itself (task lock, checks, insert, two updates) before the next task.
SUBMIT_MAX_QUERIES = 30


@pytest.mark.parametrize("kind,k", [(Kind.PAIRWISE, 2), (Kind.RANKING, 8), (Kind.LIKERT, 1)])
def test_it_shows_the_labeling_page_in_a_fixed_number_of_queries(
    client, bob, django_assert_max_num_queries, kind, k
):
    project = ProjectFactory(kind=kind, aspects=["a", "b", "c"] if kind == Kind.LIKERT else [])
    MembershipFactory(project=project, user=bob)
    for _ in range(3):
        make_task(project, k=k)
    client.force_login(bob)
    with django_assert_max_num_queries(LABEL_PAGE_MAX_QUERIES):
        assert client.get(label_url(project)).status_code == 200  # takes a new lease
    with django_assert_max_num_queries(LABEL_PAGE_MAX_QUERIES):
        assert client.get(label_url(project)).status_code == 200  # resumes it


@pytest.mark.parametrize("kind,k", [(Kind.PAIRWISE, 2), (Kind.RANKING, 8)])
def test_it_submits_and_shows_the_next_task_in_a_fixed_number_of_queries(
    client, bob, django_assert_max_num_queries, kind, k
):
    project = ProjectFactory(kind=kind)
    MembershipFactory(project=project, user=bob)
    for _ in range(3):
        make_task(project, k=k)
    client.force_login(bob)
    client.get(label_url(project))
    task = Assignment.objects.get().task
    answer = (
        {"choice": "a"}
        if kind == Kind.PAIRWISE
        else {f"rank__{p}": str(p) for p in range(1, k + 1)}
    )
    with django_assert_max_num_queries(SUBMIT_MAX_QUERIES):
        resp = client.post(submit_url(task), answer, **HTMX)
    assert resp.status_code == 200
    assert Annotation.objects.count() == 1


def test_it_opens_the_admin_page_to_a_labeler_made_admin(client, project, bob):
    Membership.objects.filter(user=bob).update(role=Membership.Role.ADMIN)
    client.force_login(bob)
    assert client.get(reverse("project_admin", args=[project.id])).status_code == 200
