"""The console's Rollout page in a real browser (Debian's Chromium), over the daemon's own rollouts controller:
a canary paused at 20 % shows its steps, weights and Events; the Promote button moves it to the next pause at
50 % (the VirtualService's weights follow); Abort puts everything back on stable (Degraded) and the page offers
Retry; the graph's legend has the rollout badge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.rollouts.helpers import NS, kubectl, rollout, rollout_status, subset_setup, vs_weights

pytestmark = pytest.mark.browser

STEPS = """      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("console-rollouts"))
    try:
        kubectl(d, "create", "namespace", NS)
        kubectl(d, "apply", "-f", "-", input=subset_setup("web"))
        kubectl(d, "apply", "-f", "-", input=rollout("web", STEPS, "v1"))
        wait_for(lambda: rollout_status(d, "web").get("phase") == "Healthy", timeout=60)
        kubectl(d, "apply", "-f", "-", input=rollout("web", STEPS, "v2"))
        wait_for(lambda: rollout_status(d, "web").get("phase") == "Paused", timeout=60)
        yield d
    finally:
        stop_daemon(d)


@pytest.fixture(scope="module")
def page(browser: Any, daemon: Daemon) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    cp = subprocess.run([sys.executable, "-m", "sluice.cli", "console", NS, "--page", "rollouts"], env=daemon.env,
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0 and "token=" in cp.stdout, cp.stderr
    p.goto(cp.stdout.strip())
    p.wait_for_url(re.compile(rf"/rollouts\?namespace={NS}$"))
    yield p
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def test_list_then_detail_of_a_paused_canary(page: Any) -> None:
    row = page.locator("[data-testid=row-web]")
    row.wait_for()
    assert "Paused" in row.inner_text() and "1/4" in row.inner_text()
    row.get_by_role("link", name="web").click()
    page.wait_for_selector("[data-testid=rollout-phase]")
    assert "Paused" in page.locator("[data-testid=rollout-phase]").inner_text()
    assert page.locator("[data-testid=rollout-set-weight]").inner_text() == "20"
    steps = page.locator("[data-testid=rollout-steps] li")
    assert [steps.nth(i).get_attribute("data-state") for i in range(4)] == ["done", "current", "pending", "pending"]
    assert steps.nth(0).inner_text().startswith("setWeight: 20")
    page.wait_for_selector("[data-testid=weight-chart]")  # the 0 → 20 update, from the controller's Events
    assert "RolloutPaused" in page.locator("[data-testid=rollout-events]").inner_text()


def test_promote_button_moves_to_the_next_pause(page: Any, daemon: Daemon) -> None:
    page.locator("[data-testid=rollout-promote]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=rollout-set-weight]')?.textContent === '50'", timeout=60000)
    wait_for(lambda: vs_weights(daemon, "web") == {"stable": 50, "canary": 50}, timeout=60)
    page.wait_for_function("() => document.querySelector('[data-testid=rollout-phase]')?.textContent"
                           "?.includes('Paused')", timeout=60000)


def test_abort_button_goes_back_to_stable_and_offers_retry(page: Any, daemon: Daemon) -> None:
    page.locator("[data-testid=rollout-abort]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=rollout-phase]')?.textContent"
                           "?.includes('Degraded')", timeout=60000)
    wait_for(lambda: vs_weights(daemon, "web") == {"stable": 100, "canary": 0}, timeout=60)
    page.locator("[data-testid=rollout-retry]").wait_for()
    status = rollout_status(daemon, "web")
    assert status.get("abort") is True and status["message"].startswith("RolloutAborted"), json.dumps(status)


def test_graph_legend_names_the_rollout_badge(page: Any) -> None:
    page.goto(page.url.split("/namespaces/")[0] + f"/graph?namespace={NS}")
    page.locator("[data-testid=legend-toggle]").click()
    assert "Under a rollout (Argo Rollouts)" in page.content()
