"""`sluice load`: --via resolution from a pod object, and argument errors before any request."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sluice.cli.errors import CliError
from sluice.cli.load import load_cmd, proxy_for_pod, split_pod_ref


def pod(ip: str | None, containers: tuple[str, ...] = ("sleep", "istio-proxy")) -> dict[str, object]:
    status: dict[str, object] = {"phase": "Running"}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": "sleep-1"}, "spec": {"containers": [{"name": c} for c in containers]},
            "status": status}


def test_split_pod_ref() -> None:
    assert split_pod_ref("sleep-1", "default") == ("sleep-1", "default")
    assert split_pod_ref("sleep-1.tutorial", "default") == ("sleep-1", "tutorial")
    with pytest.raises(CliError):
        split_pod_ref("sleep-1.", "default")


def test_proxy_for_pod() -> None:
    assert proxy_for_pod(pod("127.1.0.9")) == "http://127.1.0.9:15001"
    with pytest.raises(CliError, match="no IP yet"):
        proxy_for_pod(pod(None))
    with pytest.raises(CliError, match="no istio-proxy sidecar"):
        proxy_for_pod(pod("127.1.0.9", containers=("sleep",)))


@pytest.mark.parametrize(("args", "message"), [
    (["http://example.com/"], "refusing target"),
    (["http://127.0.0.1:1/", "--duration", "soon"], "invalid duration"),
    (["http://127.0.0.1:1/", "-H", "bad"], "invalid header"),
    (["http://127.0.0.1:1/", "--proxy", "http://127.0.0.1:2", "--via", "x"], "mutually exclusive"),
])
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(load_cmd, args, standalone_mode=False)
    assert isinstance(result.exception, CliError)
    assert message in result.exception.message
