"""`sluice exec` / `port-forward` helpers: kubectl's reading of the exit Status, port specs, service ports."""

from __future__ import annotations

import pytest

from sluice.cli.attachable import rank
from sluice.cli.errors import CliError
from sluice.cli.execute import exit_from_status
from sluice.cli.portforward import PortSpec, parse_port_spec, service_target_port
from sluice.runtime.streams import channels


def test_exit_status_as_kubectl_reads_it() -> None:
    assert exit_from_status(b"") == (0, "")
    assert exit_from_status(channels.success()) == (0, "")
    assert exit_from_status(channels.exit_code(42)) == (42, "command terminated with exit code 42")
    assert exit_from_status(channels.internal_error("x")) == (1, "error: Internal error occurred: x")
    assert exit_from_status(b'{"status":"Failure","reason":"NonZeroExitCode"}')[0] == 1


def test_port_specs() -> None:
    assert parse_port_spec("8080:80") == PortSpec(8080, "80")
    assert parse_port_spec("80") == PortSpec(80, "80")
    assert parse_port_spec(":http") == PortSpec(0, "http")
    with pytest.raises(CliError):
        parse_port_spec("x:80")


def test_service_ports_translate_to_pod_ports() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"ports": [{"name": "web", "containerPort": 8000}]}]}}
    svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"},
                                                         {"port": 90, "targetPort": 9000}, {"port": 70}]}}
    assert service_target_port(svc, pod, "80") == 8000
    assert service_target_port(svc, pod, "http") == 8000
    assert service_target_port(svc, pod, "90") == 9000
    assert service_target_port(svc, pod, "70") == 70
    with pytest.raises(CliError, match="Service s does not have a service port 81"):
        service_target_port(svc, pod, "81")


def test_most_active_pod_first() -> None:
    def pod(phase: str, ready: bool, created: str) -> dict[str, object]:
        cond = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}]
        return {"metadata": {"creationTimestamp": created}, "status": {"phase": phase, "conditions": cond}}

    pods = [pod("Pending", False, "1"), pod("Running", False, "2"), pod("Running", True, "3")]
    assert sorted(pods, key=rank)[0] is pods[2]
