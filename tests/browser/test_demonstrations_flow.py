"""A labeler writes a demonstration with the keyboard (a reload mid-way keeps the draft) and
critiques and revises a response (the diff shows); both reach the sft export, and the revision
the preference export."""

import json
import re

import pytest
from django.urls import reverse

from annotator.export import ExportParams, export_start
from annotator.models import Annotation, Kind, Membership
from tests.browser.test_labeling_keyboard import log_in
from tests.factories import MembershipFactory, ProjectFactory, make_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def exported(project, schema: str) -> list[dict]:
    job = export_start(project=project, params=ExportParams(schema=schema))
    return [json.loads(line) for line in b"".join(job.chunks()).splitlines()]


def test_it_writes_a_demonstration_and_revises_a_response(
    page, live_server, transactional_db, alice, bob, screenshot_dir
):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # the preview is a server round trip on a busy machine
    demo = ProjectFactory(kind=Kind.DEMONSTRATION, min_chars=10, created_by=alice)
    edit = ProjectFactory(kind=Kind.EDIT, principles=["Be accurate", "Be brief"], created_by=alice)
    for project in (demo, edit):
        MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    task = make_task(demo)
    make_task(edit, texts=["The sky is green on clear days."])

    # A demonstration, typed; the page is reloaded half-way and the draft comes back.
    url = reverse("label", args=[demo.id])
    log_in(page, live_server, username="bob", next_url=url)
    expect(page.locator("#task-panel")).to_contain_text(task.prompt.text)
    page.focus("#written")
    page.keyboard.type("Hello **world**")
    expect(page.locator("#written-preview strong")).to_have_text("world")
    page.reload()
    expect(page.locator("#written")).to_have_value("Hello **world**")
    expect(page.locator("[data-draft-state]")).to_have_text("your draft was restored")
    expect(page.locator("#written-preview strong")).to_have_text("world")
    page.focus("#written")
    page.keyboard.press("End")
    page.keyboard.type(", and more.")
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "demonstration.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("progress")).to_contain_text(re.compile(r"^1 done"))
    assert Annotation.objects.get(task=task).text == "Hello **world**, and more."
    # The stored answer's draft is gone (dropped when the next panel is swapped in).
    page.wait_for_function("localStorage.length === 0", timeout=5_000)

    # An edit: a critique, a principle, the revision typed over the original, the diff.
    page.goto(f"{live_server.url}{reverse('label', args=[edit.id])}")
    expect(page.locator("#written")).to_have_value("The sky is green on clear days.")
    page.focus("#critique")
    page.keyboard.type("The colour is wrong.")
    page.select_option("#principle", label="Be accurate")
    page.focus("#written")
    page.keyboard.press("Control+a")
    page.keyboard.type("The sky is blue on clear days.")
    diff = page.get_by_test_id("diff")
    expect(diff.locator("del")).to_contain_text("green")
    expect(diff.locator("ins")).to_contain_text("blue")
    if screenshot_dir:
        page.screenshot(path=str(screenshot_dir / "edit.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("progress")).to_contain_text(re.compile(r"^1 done"))
    revision = Annotation.objects.get(task__project=edit)
    assert (revision.critique, revision.principle) == ("The colour is wrong.", "Be accurate")

    # Both in the sft export; the revision in preference, flagged.
    assert [r["completion"] for r in exported(demo, "sft")] == ["Hello **world**, and more."]
    assert [r["completion"] for r in exported(edit, "sft")] == ["The sky is blue on clear days."]
    prefs = exported(edit, "preference")
    assert [(r["chosen"], r["rejected"], r["source"]) for r in prefs] == [
        ("The sky is blue on clear days.", "The sky is green on clear days.", "edit")
    ]
