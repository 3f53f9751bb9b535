"""`sluice rollouts` verbs against the API, as `kubectl argo rollouts` sends them: what each changes in the
stored Rollout (spec or status subresource), what it prints, and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.cli_helpers import Sluice, with_namespace

NS = "rollouts-cli"
HOST_SPLIT = Path(__file__).resolve().parents[1] / "data" / "argo" / "istio-host-split.yaml"


@pytest.fixture(scope="module")
def sl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sluice]:
    env = with_namespace(sluice_daemon.env, sluice_daemon.kubeconfig, NS,
                         tmp_path_factory.mktemp("rollouts-cli") / "kubeconfig")
    s = Sluice(env)
    s.ok("create", "namespace", NS)
    s.ok("apply", "-f", str(HOST_SPLIT))
    yield s


def _rollout(sl: Sluice) -> dict[str, object]:
    out = json.loads(sl.ok("get", "rollout", "istio-host-split", "-o", "json"))
    assert isinstance(out, dict)
    return out


def test_pause_resume_abort_retry_promote(sl: Sluice) -> None:
    assert sl.ok("rollouts", "pause", "istio-host-split") == "rollout 'istio-host-split' paused\n"
    assert _rollout(sl)["spec"]["paused"] is True  # type: ignore[index]
    assert sl.ok("rollouts", "resume", "istio-host-split") == "rollout 'istio-host-split' resumed\n"
    assert _rollout(sl)["spec"]["paused"] is False  # type: ignore[index]
    assert sl.ok("rollouts", "abort", "istio-host-split") == "rollout 'istio-host-split' aborted\n"
    assert _rollout(sl)["status"]["abort"] is True  # type: ignore[index]
    assert sl.ok("rollouts", "retry", "rollout", "istio-host-split") == "rollout 'istio-host-split' retried\n"
    assert _rollout(sl)["status"]["abort"] is False  # type: ignore[index]
    sl.ok("rollouts", "pause", "istio-host-split")
    assert sl.ok("rollouts", "promote", "istio-host-split") == "rollout 'istio-host-split' promoted\n"
    assert _rollout(sl)["spec"]["paused"] is False  # type: ignore[index]


def test_get_list_and_set_image(sl: Sluice) -> None:
    out = sl.ok("rollouts", "get", "rollout", "istio-host-split").splitlines()
    assert out[0] == "Name:            istio-host-split"
    assert out[1] == f"Namespace:       {NS}"
    assert "Strategy:        Canary" in out
    assert any(line.startswith("⟳ istio-host-split") and "Rollout" in line for line in out), out
    listing = sl.ok("rollouts", "list", "rollouts").splitlines()
    assert listing[0].split() == ["NAME", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "READY", "DESIRED",
                                  "UP-TO-DATE", "AVAILABLE"]
    assert listing[1].split()[:2] == ["istio-host-split", "Canary"]
    container = _rollout(sl)["spec"]["template"]["spec"]["containers"][0]["name"]  # type: ignore[index]
    assert sl.ok("rollouts", "set", "image", "istio-host-split", f"{container}=argoproj/rollouts-demo:yellow") == \
        'rollout "istio-host-split" image updated\n'
    image = _rollout(sl)["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
    assert image == "argoproj/rollouts-demo:yellow"


def test_errors_name_what_is_missing(sl: Sluice) -> None:
    cp = sl("rollouts", "promote", "nope")
    assert cp.returncode == 1 and cp.stderr == 'error: rollouts.argoproj.io "nope" not found\n', cp.stderr
    cp = sl("rollouts", "set", "image", "istio-host-split", "nosuch=x:1")
    assert cp.returncode == 1 and 'unable to find container named "nosuch"' in cp.stderr, cp.stderr
    cp = sl("rollouts", "undo", "istio-host-split", "--to-revision", "7")
    assert cp.returncode == 1 and "Traceback" not in cp.stderr, cp.stderr
