"""The labeler's pages for correcting answers (undo after a submit, edit from My annotations)
and for long content (folded transcripts, A/B differences, highlighted code), and the small
things every page needs (favicon, local times, offline API docs, the "all done" pointer)."""

import re

import pytest
from django.http import QueryDict
from django.urls import reverse

from annotator import services
from annotator.forms import answer_from_post, answer_to_post
from annotator.models import Annotation, AnnotationRevision, Assignment, Kind, Prompt, Task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task

HTMX = {"HTTP_HX_REQUEST": "true"}


def label_url(project) -> str:
    return reverse("label", args=[project.id])


def submit_url(task) -> str:
    return reverse("label_submit", args=[task.project_id, task.id])


def edit_url(annotation) -> str:
    return reverse("annotation_edit", args=[annotation.task.project_id, annotation.id])


def answered(project, user, answer: dict) -> Annotation:
    lease = services.task_claim_next(project=project, labeler=user)
    return services.annotation_submit(task=lease.task, labeler=user, answer=answer).annotation


# --- Undo -----------------------------------------------------------------------------------


def test_it_offers_undo_after_a_submit_and_brings_the_answer_back(client, project, bob):
    first = make_task(project, priority=2, texts=["Paris.", "Lyon."])
    make_task(project, priority=1)
    client.force_login(bob)
    client.get(label_url(project))
    shown = Assignment.objects.get(labeler=bob).shown_order
    resp = client.post(submit_url(first), {"choice": "b", "notes": "B is right"}, **HTMX)
    page = resp.content.decode()
    annotation = Annotation.objects.get()
    undo_url = reverse("label_undo", args=[project.id, annotation.id])
    assert f'hx-post="{undo_url}"' in page and "Undo <kbd>u</kbd>" in page

    resp = client.post(undo_url, **HTMX)

    page = resp.content.decode()
    assert "Undone: your answer is back to change." in page
    assert not Annotation.objects.exists()
    assert AnnotationRevision.objects.get().action == "undo"
    # The same task, in the same order, with the answer that was given checked again.
    assert Assignment.objects.get(task=first).shown_order == shown
    assert submit_url(first) in page
    assert re.search(r'value="b" checked', page) and "B is right" in page


def test_it_says_when_the_undo_came_too_late(client, project, bob):
    make_task(project)
    annotation = answered(project, bob, {"choice": "a"})
    Annotation.objects.filter(id=annotation.id).update(
        created_at=annotation.created_at.replace(year=2000)
    )
    client.force_login(bob)
    resp = client.post(reverse("label_undo", args=[project.id, annotation.id]), **HTMX)
    assert "can be undone for 30 seconds only" in resp.content.decode()
    assert Annotation.objects.filter(id=annotation.id).exists()


def test_it_lets_nobody_else_undo_or_edit_an_answer(client, project, alice, bob, charlie):
    make_task(project)
    annotation = answered(project, bob, {"choice": "a"})
    undo_url = reverse("label_undo", args=[project.id, annotation.id])
    client.force_login(alice)  # the project's admin, but not the labeler
    assert client.post(undo_url).status_code == 403
    assert client.get(edit_url(annotation)).status_code == 403
    assert client.post(edit_url(annotation), {"choice": "b"}).status_code == 403
    client.force_login(charlie)  # an outsider
    assert client.post(undo_url).status_code == 404
    assert client.get(edit_url(annotation)).status_code == 404
    assert Annotation.objects.get().chosen_id == annotation.chosen_id
    assert not AnnotationRevision.objects.exists()


# --- Edit -----------------------------------------------------------------------------------


def test_it_edits_a_past_answer_from_my_annotations(client, project, bob):
    task = make_task(project, texts=["Paris.", "Lyon."])
    annotation = answered(project, bob, {"choice": "a", "strength": 1})
    client.force_login(bob)
    listing = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert edit_url(annotation) in listing

    page = client.get(edit_url(annotation)).content.decode()
    assert 'value="a" checked' in page  # the answer as given, to change
    # The responses in the order the labeler saw them.
    paris_first = annotation.shown_order[0] == task.completions.get(text="Paris.").id
    first, second = ("Paris.", "Lyon.") if paris_first else ("Lyon.", "Paris.")
    assert page.index(first) < page.index(second)

    resp = client.post(edit_url(annotation), {"choice": "x"})
    assert "Pick A, B, tie or both bad." in resp.content.decode()
    resp = client.post(edit_url(annotation), {"choice": "tie", "notes": "on reflection"})
    assert resp.status_code == 302 and resp.url == reverse("my_annotations", args=[project.id])
    stored = Annotation.objects.get()
    assert stored.verdict == "tie" and stored.notes == "on reflection"
    assert AnnotationRevision.objects.get().after["verdict"] == "tie"
    page = client.get(edit_url(annotation)).content.decode()
    assert "changed 1 time" in page
    listing = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert ">changed</span>" in listing


@pytest.mark.parametrize("kind", [Kind.PAIRWISE, Kind.LIKERT, Kind.RANKING])
def test_it_shows_a_stored_answer_as_the_form_that_gives_it(bob, kind):
    project = ProjectFactory(
        kind=kind, aspects=["helpful", "honest"] if kind == Kind.LIKERT else [],
        flags=["rude", "wrong"], ask_strength=True,
    )  # fmt: skip
    MembershipFactory(project=project, user=bob)
    make_task(project, k=3 if kind == Kind.RANKING else None)
    lease = services.task_claim_next(project=project, labeler=bob)
    shown = lease.shown_order
    if kind == Kind.PAIRWISE:
        answer = {"choice": "b", "strength": 3, "notes": "n"}
    elif kind == Kind.LIKERT:
        answer = {"scores": {"helpful": 4, "honest": 6}, "flags": ["wrong"], "notes": "n"}
    else:
        answer = {"ranking": [shown[2], shown[0], shown[1]], "notes": "n"}
    stored = services.annotation_submit(task=lease.task, labeler=bob, answer=answer).annotation
    posted = answer_to_post(
        kind=kind, project=project, shown_order=shown, fields=services.answer_fields(stored)
    )
    assert isinstance(posted, QueryDict)
    again = answer_from_post(kind=kind, project=project, shown_order=shown, data=posted)
    assert {k: v for k, v in again.items() if v not in (None, [])} == answer


def test_it_shows_the_responses_a_likert_answer_judged(client, bob):
    project = ProjectFactory(kind=Kind.LIKERT)
    MembershipFactory(project=project, user=bob)
    make_task(project, texts=["The rated response."])
    answered(project, bob, {"score": 5})
    client.force_login(bob)
    page = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert "Score 5" in page and "The rated response." in page


# --- Long content ---------------------------------------------------------------------------


def test_it_folds_the_earlier_turns_of_a_long_transcript(client, project, bob):
    task = make_task(project)
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}"} for i in range(13)
    ]
    Prompt.objects.filter(id=task.prompt_id).update(messages=turns, text="")
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    earlier = re.search(r'<details class="earlier" id="earlier-turns">(.*?)</details>', page, re.S)[
        1
    ]
    assert "Show 12 earlier turns" in earlier
    assert "Turn 0" in earlier and "Turn 11" in earlier and "Turn 12" not in earlier
    after = page[page.index("</details>", page.index("earlier-turns")) :]
    assert "Turn 12" in after


def test_it_offers_the_word_differences_of_a_and_b(client, project, bob):
    make_task(project, texts=["The cat sat on the mat.", "The dog sat on the mat."])
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert 'id="show-diff"' in page and 'id="sync-scroll" checked' in page
    assert '<del class="diff">cat </del>' in page or '<del class="diff">dog </del>' in page
    assert '<ins class="diff">' in page


def test_it_highlights_code_in_responses(client, project, bob):
    make_task(project, texts=["```python\ndef f():\n    pass\n```", "No."])
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert '<span class="k">def</span>' in page and "css/pygments.css" in page


# --- Everywhere -----------------------------------------------------------------------------


def test_it_points_all_done_to_the_next_project_with_work(client, project, bob):
    other = ProjectFactory(name="Another project")
    MembershipFactory(project=other, user=bob)
    make_task(other)
    empty = ProjectFactory(name="Empty project")
    MembershipFactory(project=empty, user=bob)
    client.force_login(bob)
    page = client.get(label_url(project)).content.decode()
    assert "All done" in page
    assert f'href="{label_url(other)}">Label Another project</a>' in page
    assert "Empty project" not in page


def test_it_shows_times_in_the_viewers_time_zone_and_copies_the_token(client, project, bob):
    make_task(project)
    answered(project, bob, {"choice": "a"})
    client.force_login(bob)
    page = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+" data-local>', page)
    assert "js/app.js" in page
    client.post(reverse("api_token_regenerate"))
    page = client.get(reverse("api_token")).content.decode()
    assert '<button type="button" data-copy="#token"' in page


def test_it_has_a_favicon(client, bob):
    client.force_login(bob)
    page = client.get(reverse("home")).content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    resp = client.get("/favicon.ico")
    assert resp.status_code == 302 and resp.url == "/static/favicon.svg"


def test_the_api_docs_load_swagger_ui_from_this_server(client):
    page = client.get(reverse("api-docs")).content.decode()
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui" in s for s in scripts)
    assert all(s.startswith("/") for s in scripts), scripts


# --- Query budgets --------------------------------------------------------------------------

MY_ANNOTATIONS_MAX_QUERIES = 8
EDIT_MAX_QUERIES = 10
UNDO_MAX_QUERIES = 31  # + giving back a swap repeat the labeler was served
ALL_DONE_MAX_QUERIES = 13  # + on PostgreSQL: an empty claim checks no task is only being leased
HOME_MAX_QUERIES = 6


@pytest.mark.parametrize("kind", [Kind.PAIRWISE, Kind.LIKERT, Kind.RANKING])
def test_my_annotations_take_a_fixed_number_of_queries(
    client, bob, django_assert_max_num_queries, kind
):
    project = ProjectFactory(kind=kind)
    MembershipFactory(project=project, user=bob)
    for _ in range(12):
        make_task(project, k=4 if kind == Kind.RANKING else None)
    while (lease := services.task_claim_next(project=project, labeler=bob)) is not None:
        answer = {
            Kind.PAIRWISE: {"choice": "a"}, Kind.LIKERT: {"score": 3},
            Kind.RANKING: {"ranking": lease.shown_order},
        }[kind]  # fmt: skip
        services.annotation_submit(
            task=Task.objects.get(id=lease.task_id), labeler=bob, answer=answer
        )
    client.force_login(bob)
    with django_assert_max_num_queries(MY_ANNOTATIONS_MAX_QUERIES):
        assert client.get(reverse("my_annotations", args=[project.id])).status_code == 200


def test_the_edit_page_and_undo_take_a_fixed_number_of_queries(
    client, project, bob, django_assert_max_num_queries
):
    for _ in range(3):
        make_task(project)
    annotation = answered(project, bob, {"choice": "a"})
    client.force_login(bob)
    with django_assert_max_num_queries(EDIT_MAX_QUERIES):
        assert client.get(edit_url(annotation)).status_code == 200
    with django_assert_max_num_queries(EDIT_MAX_QUERIES + 4):
        assert client.post(edit_url(annotation), {"choice": "b"}).status_code == 302
    second = answered(project, bob, {"choice": "a"})
    with django_assert_max_num_queries(UNDO_MAX_QUERIES):
        resp = client.post(reverse("label_undo", args=[project.id, second.id]), **HTMX)
    assert resp.status_code == 200 and not Annotation.objects.filter(id=second.id).exists()


def test_another_labeler_cannot_see_my_answers_on_my_annotations(client, project, bob):
    carol = UserFactory(username="carol")
    MembershipFactory(project=project, user=carol)
    make_task(project, texts=["Bob's pick.", "Other."])
    answered(project, bob, {"choice": "a"})
    client.force_login(carol)
    page = client.get(reverse("my_annotations", args=[project.id])).content.decode()
    assert "You have not answered any task in this project yet." in page
    assert "Bob&#x27;s pick." not in page and "/edit/" not in page


def test_all_done_and_home_take_a_fixed_number_of_queries(
    client, project, bob, django_assert_max_num_queries
):
    for n in range(5):
        other = ProjectFactory(name=f"Other {n}")
        MembershipFactory(project=other, user=bob)
        make_task(other)
    client.force_login(bob)
    with django_assert_max_num_queries(ALL_DONE_MAX_QUERIES):
        page = client.get(label_url(project)).content.decode()
    assert "All done" in page and "Label Other 0" in page
    with django_assert_max_num_queries(HOME_MAX_QUERIES):
        assert client.get(reverse("home")).status_code == 200
