"""The review flow in Chromium: a reviewer sees two labelers disagree, overrides them with an
adjudicated answer, the overridden labeler reads the feedback on My annotations, and the
export carries the adjudicated answer."""

import json

import pytest
from django.urls import reverse

from annotator import services
from annotator.models import Membership, Task
from tests.browser.test_labeling_keyboard import log_in
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, UserFactory, make_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _answer(project, user, pick: str) -> None:
    lease = services.task_claim_next(project=project, labeler=user)
    texts = services.selectors.task_content(lease.task_id)["completions"]
    chosen = next(cid for cid, text in texts.items() if text == pick)
    task = Task.objects.select_related("project").get(id=lease.task_id)
    choice = "a" if lease.shown_order[0] == chosen else "b"
    services.annotation_submit(task=task, labeler=user, answer={"choice": choice})


def test_it_reviews_a_disagreement_end_to_end(
    browser, live_server, transactional_db, project, alice, bob, screenshot_dir
):
    from playwright.sync_api import expect

    project.overlap = 2
    project.save()
    carol, rita = UserFactory(username="carol"), UserFactory(username="rita")
    MembershipFactory(project=project, user=carol)
    MembershipFactory(project=project, user=rita, role=Membership.Role.REVIEWER)
    task = make_task(
        project, texts=["Water boils at 100 °C at sea level.", "Water boils at 50 °C."]
    )
    _answer(project, bob, "Water boils at 100 °C at sea level.")
    _answer(project, carol, "Water boils at 50 °C.")

    reviewer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    queue_url = reverse("review_queue", args=[project.id])
    log_in(reviewer, live_server, username="rita", next_url=queue_url)
    row = reviewer.locator(f"tr[data-task='{task.id}']")
    expect(row).to_contain_text("disagreement")
    row.get_by_role("link", name=str(task.id)).click()
    answers = reviewer.locator("table.review-answers")
    expect(answers).to_contain_text("bob")
    expect(answers).to_contain_text("carol")
    expect(reviewer.locator(".review-responses")).to_contain_text("Water boils at 50 °C.")
    reviewer.screenshot(path=str(screenshot_dir / "review-task.png"), full_page=True)
    right = task.task_completions.get(position=0).completion_id
    reviewer.locator(f"#override-form input[name=choice][value='{right}']").check()
    reviewer.fill("#adj-reason", "At sea level it is 100 °C.")
    reviewer.get_by_role("button", name="Override").click()
    expect(reviewer.locator(".messages")).to_contain_text("Review saved.")
    expect(answers).to_contain_text("Overridden: At sea level it is 100 °C.")
    reviewer.context.close()

    labeler = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(
        labeler,
        live_server,
        username="carol",
        next_url=reverse("my_annotations", args=[project.id]),
    )
    feedback = labeler.get_by_test_id("review-feedback")
    expect(feedback).to_contain_text("Reviewer: overridden")
    expect(feedback).to_contain_text("At sea level it is 100 °C.")
    expect(feedback).to_contain_text("“Water boils at 100 °C at sea level.” is better")
    labeler.screenshot(path=str(screenshot_dir / "review-feedback.png"), full_page=True)
    labeler.context.close()

    export = api_client_for(alice).get(f"/api/v1/projects/{project.id}/export/?schema=preference")
    rows = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines()]
    assert [(r["task_id"], r["chosen"], r["votes"]) for r in rows] == [
        (task.id, "Water boils at 100 °C at sea level.", 2)
    ]
