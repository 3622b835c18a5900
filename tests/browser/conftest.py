"""A headless Chromium for browser tests (Debian's package; Playwright's own download does not
work on the build machines)."""

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # Inside sync_playwright the test runs in another contextvars context, so Django
            # opened other connections there; close them here, or PostgreSQL cannot drop the
            # test database at the end of the run ("accessed by other users").
            connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def screenshot_dir() -> Path:
    """Where the tests save screenshots of the pages for a reviewer to look at:
    var/screenshots/ (git ignores var/), or PREFLOOP_SCREENSHOT_DIR."""
    directory = Path(os.environ.get("PREFLOOP_SCREENSHOT_DIR") or SCREENSHOTS)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
