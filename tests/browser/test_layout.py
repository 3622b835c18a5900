"""The labeler's pages on a phone (390×844) and a laptop (1366×768), with long content: for
each task kind the responses and the answer controls are on the first screen together, and no
page scrolls sideways. Screenshots of every page at both sizes go to var/screenshots/.

Also: a labeler undoes an answer, changes another from My annotations, and the export carries
the latest answer."""

import json

import pytest
from django.urls import reverse

from annotator.models import Annotation, AnnotationRevision, Kind, Membership, Prompt
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, ProjectFactory, make_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
SIZES = {"phone": PHONE, "laptop": LAPTOP}

CODE = (
    "```python\n" + "\n".join(f"def step_{i}(x):\n    return x + {i}" for i in range(30)) + "\n```"
)
LONG = "\n\n".join(
    f"Paragraph {i}: the answer explains, at some length and with care, why this is so; "
    "it goes on for a while so that it takes more than one screen on any device."
    for i in range(25)
)
TRANSCRIPT = [  # 13 turns, ending with the user's question
    {
        "role": "user" if i % 2 == 0 else "assistant",
        "content": f"Turn {i}: " + "a fairly long message about the problem at hand. " * 4,
    }
    for i in range(13)
]


def log_in(page, live_server, *, username: str, next_url: str) -> None:
    page.goto(f"{live_server.url}{reverse('login')}?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}{next_url}")


def assert_no_sideways_scroll(page, name: str) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert max(widths[0], widths[2]) <= widths[1], f"{name} scrolls sideways: {widths}"


def assert_responses_and_answer_on_screen(page, name: str, viewport: dict) -> None:
    """Without any scrolling: the whole answer bar (with its submit button) is on screen, and
    above it the first response shows its label and a good part of its text."""
    assert page.evaluate("() => window.scrollY") == 0
    bar = page.locator("#answer-bar").bounding_box()
    submit = page.locator("#answer-form button[type=submit]").bounding_box()
    head = page.locator(".response-head").first.bounding_box()
    body = page.locator(".response-body").first.bounding_box()
    assert bar["y"] >= 0 and bar["y"] + bar["height"] <= viewport["height"] + 1, (name, bar)
    assert submit["y"] + submit["height"] <= viewport["height"], (name, submit)
    assert head["y"] >= 0 and head["y"] + head["height"] <= bar["y"], (name, head, bar)
    # At least 100 px of the response's text (several lines) between its label and the bar.
    assert bar["y"] - body["y"] >= 100, (name, body, bar)
    # The bar takes at most half the screen.
    assert bar["height"] <= viewport["height"] / 2, (name, bar)


# Scroll the first response box that can scroll; how many others can scroll too.
SCROLL_ONE = """() => {
  const boxes = [...document.querySelectorAll('[data-sync-scroll]')]
    .filter((b) => b.scrollHeight > b.clientHeight + 50);
  if (boxes.length) boxes[0].scrollTop = 200;
  return boxes.length;
}"""
# Every other box that can scroll has followed.
OTHERS_FOLLOWED = """() => {
  const boxes = [...document.querySelectorAll('[data-sync-scroll]')]
    .filter((b) => b.scrollHeight > b.clientHeight + 50);
  return boxes.slice(1).every((b) => b.scrollTop > 0);
}"""


def side_of(page, text: str) -> str:
    """ "a" or "b": where the response with this text is shown."""
    return page.locator(f'.response:has-text("{text}") .badge').inner_text().lower()


@pytest.fixture
def long_projects(bob):
    """One project per task kind, each with one long task (and Likert's 8 default flags)."""
    pairwise = ProjectFactory(name="Long pairwise", kind=Kind.PAIRWISE, ask_strength=True)
    likert = ProjectFactory(name="Long Likert", kind=Kind.LIKERT, aspects=["helpful", "honest"])
    ranking = ProjectFactory(name="Long ranking", kind=Kind.RANKING)
    for project in (pairwise, likert, ranking):
        MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    chat = make_task(pairwise, texts=[LONG + "\n\n" + CODE, LONG.replace("care", "caution")])
    Prompt.objects.filter(id=chat.prompt_id).update(messages=TRANSCRIPT, text="")
    make_task(likert, texts=[CODE + "\n\n" + LONG])
    make_task(ranking, texts=[LONG, CODE, LONG[:400], "Short."])
    return {"pairwise": pairwise, "likert": likert, "ranking": ranking}


@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_the_screen_with_long_content(
    browser, live_server, transactional_db, bob, long_projects, screenshot_dir, size
):
    from playwright.sync_api import expect

    viewport = SIZES[size]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    missing = []
    page.on(
        "response",
        lambda r: missing.append(r.url) if r.status >= 400 and "/static/" in r.url else None,
    )
    try:
        log_in(page, live_server, username="bob", next_url=reverse("home"))
        assert_no_sideways_scroll(page, "home")
        page.screenshot(path=str(screenshot_dir / f"home-{size}.png"), full_page=True)

        for kind, project in long_projects.items():
            page.goto(f"{live_server.url}{reverse('label', args=[project.id])}")
            expect(page.locator("#answer-form")).to_be_visible()
            assert_no_sideways_scroll(page, kind)
            assert_responses_and_answer_on_screen(page, kind, viewport)
            page.screenshot(path=str(screenshot_dir / f"label-{kind}-{size}.png"))
            if kind == "pairwise":
                # 13 turns: only the last one, the question answered, shows; the rest fold.
                expect(page.locator("#earlier-turns")).not_to_have_attribute("open", "")
                expect(page.locator(".chat .turn:visible")).to_have_count(1)
                expect(page.locator(".chat .turn:visible")).to_contain_text("Turn 12")
                page.keyboard.press("d")
                expect(page.locator(".diff-view").first).to_be_visible()
                expect(page.locator("ins.diff").first).to_be_visible()
                page.screenshot(path=str(screenshot_dir / f"label-pairwise-diff-{size}.png"))
                page.keyboard.press("d")
                assert_no_sideways_scroll(page, "pairwise diff")
            if size == "laptop" and kind != "likert":
                # A and B (or all ranked responses) scroll together.
                scrolled = page.evaluate(SCROLL_ONE)
                assert scrolled >= 1, "no response long enough to scroll"
                page.wait_for_function(OTHERS_FOLLOWED)
            if size == "phone":
                # Reading down the responses, the prompt's last line and the A/B (or 1, 2, …)
                # label of the response under the pinned prompt stay on screen.
                expect(page.locator("#prompt-peek")).to_be_hidden()
                page.mouse.wheel(0, 1500)
                peek = page.locator("#prompt-peek")
                expect(peek).to_be_visible()
                page.wait_for_function("() => window.scrollY > 1000")
                page.wait_for_timeout(200)
                box = peek.bounding_box()
                assert abs(box["y"]) < 2, box
                # The response at the top of the screen shows its label just below the peek.
                top = box["height"] + 5
                boxes = [(r, r.bounding_box()) for r in page.locator(".response").all()]
                current = [r for r, b in boxes if b["y"] < top < b["y"] + b["height"]]
                assert len(current) == 1
                head = current[0].locator(".response-head").bounding_box()
                assert box["height"] - 2 <= head["y"] <= box["height"] + 2, (box, head)
                page.screenshot(path=str(screenshot_dir / f"label-{kind}-scrolled-{size}.png"))
                page.evaluate("() => window.scrollTo(0, 0)")
                expect(page.locator("#prompt-peek")).to_be_hidden()
                # Folding the answer away leaves nearly the whole screen to the responses.
                page.locator('[data-action="dock"]').click()
                bar = page.locator("#answer-bar").bounding_box()
                assert bar["height"] < 80, bar
                page.screenshot(path=str(screenshot_dir / f"label-{kind}-folded-{size}.png"))
                page.locator('[data-action="dock"]').click()

            # Answer it, so My annotations has something to show.
            if kind == "pairwise":
                page.keyboard.press("1")
            elif kind == "likert":
                page.keyboard.press("5")
                page.keyboard.press("6")
            else:
                for key in "1234":
                    page.keyboard.press(key)
            page.keyboard.press("Enter")
            expect(page.locator("#task-panel")).to_contain_text("All done")
            assert_no_sideways_scroll(page, f"{kind} all done")
            if kind == "ranking":
                page.screenshot(path=str(screenshot_dir / f"label-all-done-{size}.png"))

            page.goto(f"{live_server.url}{reverse('my_annotations', args=[project.id])}")
            assert_no_sideways_scroll(page, f"{kind} my annotations")
            page.screenshot(
                path=str(screenshot_dir / f"my-annotations-{kind}-{size}.png"), full_page=True
            )

        annotation = Annotation.objects.filter(task__project=long_projects["likert"]).get()
        edit = reverse("annotation_edit", args=[annotation.task.project_id, annotation.id])
        page.goto(f"{live_server.url}{edit}")
        assert_no_sideways_scroll(page, "edit")
        assert_responses_and_answer_on_screen(page, "edit", viewport)
        page.screenshot(path=str(screenshot_dir / f"edit-likert-{size}.png"))

        page.goto(f"{live_server.url}{reverse('api_token')}")
        page.get_by_role("button", name="Create a token").click()
        page.get_by_role("button", name="Copy").click()
        expect(page.locator("[data-copy-status]")).to_have_text("Copied.")
        assert_no_sideways_scroll(page, "token")
        page.screenshot(path=str(screenshot_dir / f"api-token-{size}.png"), full_page=True)
        assert not missing, missing
    finally:
        context.close()


def test_a_labeler_undoes_and_changes_answers_and_the_export_has_the_latest(
    browser, live_server, transactional_db, project, alice, bob, screenshot_dir
):
    from playwright.sync_api import expect

    first = make_task(project, priority=2, texts=["Paris is the capital.", "Lyon, I think."])
    second = make_task(project, priority=1, texts=["Two plus two is four.", "Five."])
    context = browser.new_context(viewport=PHONE, permissions=["clipboard-read"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        log_in(page, live_server, username="bob", next_url=reverse("label", args=[project.id]))
        expect(page.locator("#task-panel")).to_contain_text("Paris is the capital.")
        # A wrong key, then undo with u: the task comes back with that answer checked.
        page.keyboard.press("2")
        page.keyboard.press("Enter")
        expect(page.locator("#undo-button")).to_be_visible()
        expect(page.locator("#task-panel")).to_contain_text("Two plus two")
        page.screenshot(path=str(screenshot_dir / "label-undo-phone.png"))
        page.keyboard.press("u")
        expect(page.locator("#task-panel")).to_contain_text("Undone")
        expect(page.locator("#task-panel")).to_contain_text("Paris is the capital.")
        expect(page.locator('input[name="choice"][value="b"]')).to_be_checked()
        assert not Annotation.objects.exists()
        page.locator(f'label.opt:has(input[value="{side_of(page, "Paris")}"])').click()
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#task-panel")).to_contain_text("Two plus two")
        page.locator(f'label.opt:has(input[value="{side_of(page, "Two plus")}"])').click()
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#task-panel")).to_contain_text("All done")

        # Later: change the second answer from My annotations.
        page.goto(f"{live_server.url}{reverse('my_annotations', args=[project.id])}")
        answer = Annotation.objects.get(task=second)
        page.locator(f"a[href$='/annotations/{answer.id}/edit/']").click()
        expect(page.locator(f'input[value="{side_of(page, "Two plus")}"]')).to_be_checked()
        page.screenshot(path=str(screenshot_dir / "edit-pairwise-phone.png"))
        page.locator(f'label.opt:has(input[value="{side_of(page, "Five.")}"])').click()
        page.get_by_role("button", name="Save the change").click()
        expect(page.locator(".messages")).to_contain_text(f"answer to task {second.id} was changed")
        page.screenshot(
            path=str(screenshot_dir / "my-annotations-after-edit-phone.png"), full_page=True
        )
    finally:
        context.close()

    changed = Annotation.objects.get(task=second)
    assert changed.chosen.text == "Five."
    assert [r.action for r in AnnotationRevision.objects.order_by("id")] == ["undo", "edit"]
    assert Annotation.objects.get(task=first).chosen.text == "Paris is the capital."
    export = api_client_for(alice).get(f"/api/v1/projects/{project.id}/export/")
    rows = [json.loads(line) for line in b"".join(export.streaming_content).splitlines()]
    chosen = {row["task_id"]: row["chosen"] for row in rows}
    assert chosen == {first.id: "Paris is the capital.", second.id: "Five."}
