"""An admin sets up a project in Chromium and exports its labels; the reward-job form launches
with its defaults. At desktop (1366×768) and phone (390×844) sizes, with no page scrolling
sideways; screenshots of every page go to var/screenshots/ (or PREFLOOP_SCREENSHOT_DIR)."""

import hashlib
import json
import os
from pathlib import Path
from unittest import mock

import pytest
from django.urls import reverse

from annotator import services
from annotator.models import Membership, Project
from tests.browser.test_labeling_keyboard import log_in
from tests.factories import make_task
from trainer.models import TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZES = {"desktop": (1366, 768), "phone": (390, 844)}
ROOT = Path(__file__).resolve().parents[2]


def shots_dir() -> Path:
    directory = Path(os.environ.get("PREFLOOP_SCREENSHOT_DIR") or ROOT / "var" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(params=sorted(SIZES))
def sized_page(request, browser):
    width, height = SIZES[request.param]
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.size_name = request.param
    yield page
    context.close()


def look(page, name: str) -> None:
    """Screenshot the page and check that it does not scroll sideways."""
    page.screenshot(path=str(shots_dir() / f"admin-{name}-{page.size_name}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {page.size_name}"


def lines(n: int) -> bytes:
    rows = [
        {"prompt": f"Question {i}?", "completions": [f"Yes {i}.", f"No {i}."]} for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_an_admin_creates_a_project_imports_adds_a_labeler_and_exports(
    sized_page, live_server, transactional_db, alice, bob
):
    from playwright.sync_api import expect

    page = sized_page
    log_in(page, live_server, username="alice", next_url=reverse("home"))
    page.get_by_role("link", name="New project").click()
    page.wait_for_url(f"{live_server.url}{reverse('project_new')}")
    look(page, "project-new")

    # A missing name is said next to the field; nothing is created.
    page.get_by_role("button", name="Create project").click()
    expect(page.locator(".field.has-error").first).to_contain_text("This field is required.")
    assert not Project.objects.exists()

    page.get_by_label("Name").fill("Helpful answers")
    page.get_by_label("Kind").select_option("likert")  # only the chosen kind's settings show
    expect(page.get_by_role("group", name="Likert settings")).to_be_visible()
    expect(page.get_by_role("group", name="Pairwise settings")).to_be_hidden()
    page.get_by_label("Kind").select_option("pairwise")
    expect(page.get_by_role("group", name="Pairwise settings")).to_be_visible()
    page.get_by_label("Guidelines").fill("Prefer the **honest** answer.")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#guidelines-preview strong")).to_have_text("honest")
    look(page, "project-new-preview")
    page.get_by_role("button", name="Create project").click()
    project = Project.objects.get(name="Helpful answers")
    page.wait_for_url(f"{live_server.url}{reverse('project_admin', args=[project.id])}")

    # Import.
    page.set_input_files(
        "#id_file",
        files=[{"name": "data.jsonl", "mimeType": "application/json", "buffer": lines(3)}],
    )
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Imported 3 task(s).")
    look(page, "project-page")

    # Add a labeler by username.
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Members").click()
    page.get_by_label("Username").fill("nobody")
    page.get_by_role("button", name="Add or change role").click()
    expect(page.locator(".field.has-error")).to_contain_text("There is no user named “nobody”.")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Role").select_option("labeler")
    page.get_by_role("button", name="Add or change role").click()
    expect(page.locator(".messages")).to_contain_text("bob is now labeler.")
    assert Membership.objects.get(project=project, user=bob).role == "labeler"
    look(page, "project-members")

    # bob labels two tasks (the labeling page has its own browser tests).
    for _ in range(2):
        lease = services.task_claim_next(project=project, labeler=bob)
        services.annotation_submit(task=lease.task, labeler=bob, answer={"choice": "a"})

    # Export from the page: count and checksum first, then the same bytes.
    page.goto(f"{live_server.url}{reverse('project_export', args=[project.id])}")
    look(page, "project-export")
    page.get_by_role("button", name="Check rows and checksum").click()
    expect(page.get_by_test_id("export-rows")).to_have_text("2")
    sha = page.get_by_test_id("export-sha256").inner_text()
    look(page, "project-export-checked")
    with page.expect_download() as download_info:
        page.get_by_test_id("export-download").click()
    body = Path(download_info.value.path()).read_bytes()
    assert hashlib.sha256(body).hexdigest() == sha
    assert body.count(b"\n") == 2 and b"Question" in body

    page.goto(f"{live_server.url}{reverse('project_settings', args=[project.id])}")
    look(page, "project-settings")


def test_the_reward_job_form_launches_with_its_defaults(
    sized_page, live_server, transactional_db, project, alice, bob
):
    from playwright.sync_api import expect

    page = sized_page
    log_in(
        page, live_server, username="alice", next_url=reverse("training_models", args=[project.id])
    )
    page.get_by_label("Name").fill("base")
    page.get_by_label("Path or hub id").fill("Qwen/Qwen2.5-0.5B-Instruct")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".messages")).to_contain_text("Registered base")
    look(page, "models")

    for _ in range(3):  # three labelled pairs, all of train prompts
        make_task(project)
        lease = services.task_claim_next(project=project, labeler=bob)
        services.annotation_submit(task=lease.task, labeler=bob, answer={"choice": "a"})
    page.goto(f"{live_server.url}{reverse('training_job_new', args=[project.id, 'reward'])}")
    expect(page.locator("label[for=config-model_name_or_path] .required")).to_be_visible()
    expect(page.get_by_test_id("data-rows")).to_have_text("3")
    expect(page.get_by_test_id("data-warning")).to_contain_text("Only 3 labelled rows")
    page.locator("#dataset-round").fill("99")  # the count follows the fields
    page.locator("#dataset-round").blur()
    expect(page.get_by_test_id("data-rows")).to_have_text("0")
    expect(page.get_by_test_id("data-warning")).to_contain_text("No labelled rows match")
    page.locator("#dataset-round").fill("")
    page.locator("#dataset-round").blur()
    expect(page.get_by_test_id("data-rows")).to_have_text("3")
    # Eval-split prompts are held out of training: the form says so instead of counting.
    page.locator("#dataset-split").select_option("eval")
    expect(page.locator("#data-size")).to_contain_text("trains on train-split prompts only")
    page.locator("#dataset-split").select_option("")
    expect(page.get_by_test_id("data-rows")).to_have_text("3")
    look(page, "job-new-reward")
    with mock.patch("trainer.tasks.run_training_job.delay"):
        page.get_by_role("button", name="Launch Reward model job").click()
        page.wait_for_url(f"{live_server.url}/training/jobs/**")
    job = TrainingJob.objects.get()
    assert job.kind == "reward" and job.config["model_name_or_path"] == "Qwen/Qwen2.5-0.5B-Instruct"
    expect(page.locator(".messages")).to_contain_text(f"Reward model job #{job.id} launched.")
    look(page, "job-queued")


def test_job_pages_show_samples_logs_and_compared_runs(
    sized_page, live_server, transactional_db, project, alice
):
    from playwright.sync_api import expect

    metrics = [
        {"step": s, "reward": 0.1 * s + (s % 3) * 0.05, "kl": 0.01 * s, "kl_coef": 0.05}
        for s in range(1, 41)
    ]
    metrics.append({"step": 40, "samples": [
        {"prompt": "user: Capital of France?", "response": "Paris. " * 30, "score": 1.7},
        {"prompt": "user: Name a prime.", "response": "7", "score": 0.4},
    ]})  # fmt: skip
    first = TrainingJob.objects.create(
        project=project, kind="ppo", status="succeeded", metrics=metrics, snapshot_rows=40,
        log_tail="\x1b[32mINFO\x1b[0m start\nStep: 50%|█| 1/2 [00:01<00:01]\rStep: 100%|█| 2/2\n",
    )  # fmt: skip
    second = TrainingJob.objects.create(
        project=project, kind="raft", status="running",
        metrics=[{"step": s, "reward": 0.05 * s} for s in range(1, 30)],
    )  # fmt: skip
    page = sized_page
    log_in(page, live_server, username="alice", next_url=reverse("training_job", args=[first.id]))
    expect(page.get_by_test_id("samples")).to_contain_text("Capital of France?")
    expect(page.get_by_test_id("constants")).to_contain_text("kl_coef")
    assert "\x1b" not in page.get_by_test_id("log").inner_text()
    look(page, "job-samples")
    page.goto(f"{live_server.url}{reverse('training_jobs', args=[project.id])}")
    look(page, "job-list")
    page.locator(f"input[name=job][value='{first.id}']").check()
    page.locator(f"input[name=job][value='{second.id}']").check()
    page.wait_for_timeout(3500)  # the table refreshed (a job runs): the ticks are kept
    expect(page.locator("input[name=job]:checked")).to_have_count(2)
    page.get_by_role("button", name="Compare selected runs").click()
    # reward from both runs, kl from the PPO run only (kl_coef is constant: not drawn)
    expect(page.locator("svg.overlay-chart polyline")).to_have_count(3)
    look(page, "job-compare")
