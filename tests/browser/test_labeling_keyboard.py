"""A labeler works through pairwise and Likert tasks in Chromium with the keyboard alone."""

import re

import pytest
from django.urls import reverse

from annotator.models import Annotation, Assignment, Kind, Membership
from tests.factories import MembershipFactory, ProjectFactory, make_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in(page, live_server, *, username: str, next_url: str) -> None:
    page.goto(f"{live_server.url}{reverse('login')}?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}{next_url}")


def current_assignment(user) -> Assignment:
    return Assignment.objects.get(labeler=user, status=Assignment.Status.ACTIVE)


def wait_for_done(page, n: int) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("progress")).to_contain_text(re.compile(rf"^{n} done"))


def test_it_labels_pairwise_tasks_with_the_keyboard_alone(
    page, live_server, transactional_db, project, bob, screenshot_dir
):
    from playwright.sync_api import expect

    project.ask_strength = True
    project.guidelines = "Prefer the **honest** answer."
    project.save()
    tasks = [
        make_task(project, priority=3, texts=["Paris is the capital.", "Lyon, I think."]),
        make_task(project, priority=2, texts=["```python\nprint(1)\n```", "No idea."]),
        make_task(project, priority=1),
    ]
    url = reverse("label", args=[project.id])
    log_in(page, live_server, username="bob", next_url=url)
    expect(page.locator("#task-panel")).to_contain_text("Paris is the capital.")
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "pairwise.png"), full_page=True)

    # Help overlay and guidelines, one key each.
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.keyboard.press("g")
    expect(page.locator("#guidelines .md strong")).to_have_text("honest")
    page.keyboard.press("g")

    # Task 1: A, clearly better, with a note whose keys must not act as shortcuts.
    first = current_assignment(bob)
    assert first.task_id == tasks[0].id
    page.keyboard.press("1")
    page.keyboard.press("w")
    page.keyboard.press("n")
    page.keyboard.type("2 s g 9 q")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_for_done(page, 1)
    expect(page.locator("#task-panel")).to_contain_text("print(1)")
    annotation = Annotation.objects.get(task=tasks[0], labeler=bob)
    assert annotation.chosen_id == first.shown_order[0]
    assert annotation.rejected_id == first.shown_order[1]
    assert annotation.strength == 2
    assert annotation.notes == "2 s g 9 q"
    assert annotation.time_spent_ms is not None and annotation.time_spent_ms > 0

    # Task 2: B, then changed to a tie (strength does not apply to a tie).
    second = current_assignment(bob)
    assert second.task_id == tasks[1].id
    page.keyboard.press("2")
    page.keyboard.press("e")
    page.keyboard.press("0")
    page.keyboard.press("Enter")
    wait_for_done(page, 2)
    annotation = Annotation.objects.get(task=tasks[1], labeler=bob)
    assert annotation.verdict == Annotation.Verdict.TIE
    assert annotation.chosen_id is None and annotation.strength is None

    # Task 3: skipped with a typed reason, keyboard only.
    third = current_assignment(bob)
    assert third.task_id == tasks[2].id
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.type("Not sure")
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel")).to_contain_text("All done")
    third.refresh_from_db()
    assert third.status == Assignment.Status.SKIPPED
    assert third.skip_reason == "Not sure"
    assert Annotation.objects.filter(labeler=bob).count() == 2

    # The whole run was one page: htmx swapped the panels.
    assert page.url == f"{live_server.url}{url}"


def test_it_labels_likert_tasks_with_the_keyboard_alone(
    page, live_server, transactional_db, bob, screenshot_dir
):
    from playwright.sync_api import expect

    flags = ["Fails to follow the instruction", "Harmful advice", "Made-up facts"]
    plain = ProjectFactory(name="Scores", kind=Kind.LIKERT, likert_points=7, flags=flags)
    aspects = ProjectFactory(
        name="Aspects",
        kind=Kind.LIKERT,
        likert_points=5,
        flags=flags,
        aspects=["helpful", "honest", "harmless"],
    )
    for project in (plain, aspects):
        MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    plain_tasks = [make_task(plain, priority=1), make_task(plain)]
    aspect_task = make_task(aspects, texts=["Take **two** pills, then call a doctor."])

    url = reverse("label", args=[plain.id])
    log_in(page, live_server, username="bob", next_url=url)
    expect(page.locator("#task-panel")).to_contain_text(plain_tasks[0].prompt.text)
    if screenshot_dir:
        page.keyboard.press("Shift+Digit3")
        page.screenshot(path=str(screenshot_dir / "likert.png"), full_page=True)
        page.keyboard.press("Shift+Digit3")

    # Score 6 with flags 1 and 3; flag 3 toggled on, off and on again.
    page.keyboard.press("6")
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Enter")
    wait_for_done(page, 1)
    annotation = Annotation.objects.get(task=plain_tasks[0], labeler=bob)
    assert annotation.score == 6
    assert annotation.flags == [flags[0], flags[2]]

    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel")).to_contain_text("All done")
    annotation = Annotation.objects.get(task=plain_tasks[1], labeler=bob)
    assert (annotation.score, annotation.flags) == (2, [])

    # Aspects: each digit scores the highlighted aspect and moves to the next.
    page.goto(f"{live_server.url}{reverse('label', args=[aspects.id])}")
    expect(page.locator("#task-panel")).to_contain_text("two")
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "likert-aspects.png"), full_page=True)
    page.keyboard.press("5")
    page.keyboard.press("3")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("4")  # re-scores "honest"
    page.keyboard.press("1")
    page.keyboard.press("Shift+Digit2")
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel")).to_contain_text("All done")
    annotation = Annotation.objects.get(task=aspect_task, labeler=bob)
    assert annotation.scores == {"helpful": 5, "honest": 4, "harmless": 1}
    assert annotation.flags == [flags[1]]


def test_it_ranks_responses_with_the_keyboard_alone(page, live_server, transactional_db, bob):
    from playwright.sync_api import expect

    project = ProjectFactory(name="Ranks", kind=Kind.RANKING)
    MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    task = make_task(project, k=3)
    log_in(page, live_server, username="bob", next_url=reverse("label", args=[project.id]))
    expect(page.locator("#rank-order")).to_have_text("–")
    shown = current_assignment(bob).shown_order

    for key in ("3", "2", "Backspace", "1", "2"):
        page.keyboard.press(key)
    expect(page.locator("#rank-order")).to_have_text("3 › 1 › 2")
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel")).to_contain_text("All done")
    annotation = Annotation.objects.get(task=task, labeler=bob)
    assert annotation.ranking == [shown[2], shown[0], shown[1]]
