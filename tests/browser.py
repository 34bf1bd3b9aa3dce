"""What the browser tests share: Debian's chromium driven by Playwright, its launch flags and the two page sizes.

A test module calls `chromium_or_skip()` before it imports anything that needs the browser: without a `chromium`
on the PATH the whole module is skipped, and the summary says why. Import the `browser` fixture by name
(`from tests.browser import browser  # noqa: F401`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

# Playwright's sync API runs an event loop in this thread; the live server and the ORM are used from it too.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The machine's network is closed: without these, chromium keeps trying to reach Google's services.
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_or_skip() -> str:
    """The path of Debian's chromium; without one the calling test module is skipped, with the reason."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "browser tests need Debian's chromium on the PATH (apt-get install chromium; .ci/run installs it)",
            allow_module_level=True,
        )
    return chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_or_skip(), args=LAUNCH_ARGS)
        yield launched
        launched.close()


def shoot(page: Page, folder: Path, name: str) -> None:
    """A full-page screenshot, checked to be written."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 0
