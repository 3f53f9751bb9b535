"""Browser fixtures: Playwright for Python driving Debian's Chromium (never a downloaded browser).

Screenshots go to `test-artifacts/console/` at the top of the checkout (`SLUICE_ARTIFACTS` to change), so a CI
run keeps pictures of the graph and the editor, and of any page a test failed on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("SLUICE_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts") / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API runs an event loop in this thread while it is open,
    # and the asyncio tests that follow need the thread without one.
    from playwright.sync_api import sync_playwright

    for old in ARTIFACTS.glob("FAILED-*.png"):  # from an earlier run
        old.unlink()
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/install-chromium.sh)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        page = getattr(item, "funcargs", {}).get("page")
        if page is not None:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(ARTIFACTS / f"FAILED-{item.name}.png"), full_page=True)
            except Exception:  # the page may be gone; the failure itself is what matters
                pass
    return report


def shot(page: Any, name: str) -> Path:
    """Save a screenshot artifact and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
