"""`proxy-status` table layout, the sidecar bootstrap's identity, and finding the Envoy binary."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from sluice.cli.proxy import status_rows, tab_table
from sluice.xds.bootstrap import proxy_bootstrap, workload_name
from sluice.xds.envoy import envoy_binary, envoy_command

POD: dict[str, Any] = {"metadata": {"name": "reviews-v2-7f9c8d5b4-x2x7k", "namespace": "tutorial",
                    "labels": {"app": "reviews", "version": "v2", "pod-template-hash": "7f9c8d5b4"}},
       "spec": {"serviceAccountName": "bookinfo-reviews",
                "containers": [{"name": "reviews", "ports": [{"containerPort": 9080}]}, {"name": "istio-proxy"}]}}


def test_proxy_status_table_is_istioctls() -> None:
    syncz = [{"proxy": "reviews-v2-7f9c8d5b4-x2x7k.tutorial", "cluster_id": "Kubernetes", "istio_version": "1.24.0",
              "types": {"CDS": {"state": "SYNCED", "acked": "3"}, "LDS": {"state": "SYNCED", "acked": "1"},
                        "EDS": {"state": "STALE", "acked": None}, "RDS": {"state": "NACK", "acked": "2"}}}]
    text = tab_table(["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"], status_rows(syncz))
    header, row = text.splitlines()
    assert header.startswith("NAME" + " " * (len("reviews-v2-7f9c8d5b4-x2x7k.tutorial") + 1))
    assert row.split("     ") == ["reviews-v2-7f9c8d5b4-x2x7k.tutorial", "Kubernetes", "SYNCED", "SYNCED",
                                  "STALE (Never Acknowledged)", "NACK", "NOT SENT", "sluice", "1.24.0"]


def test_workload_name_strips_the_template_hash() -> None:
    assert workload_name(POD) == "reviews-v2"
    owned = {"metadata": {**POD["metadata"], "ownerReferences": [{"kind": "Deployment", "name": "reviews-v2"}]}}
    assert workload_name(owned) == "reviews-v2"
    assert workload_name({"metadata": {"name": "solo"}}) == "solo"


def test_bootstrap_carries_istio_node_metadata_and_ads() -> None:
    b = proxy_bootstrap(node_id="sidecar~127.1.0.5~reviews-v2-7f9c8d5b4-x2x7k.tutorial~tutorial.svc.cluster.local",
                        pod=POD, pod_ip="127.1.0.5", xds_address=("127.0.0.1", 15010),
                        admin_address="/home/u/.sluice/runtime/admin/127.1.0.5.sock", cluster="reviews-v2.tutorial")
    # Loopback mode: the admin on a Unix socket only the daemon's user may open (no TCP port on the shared loopback).
    assert b["admin"]["address"] == {"pipe": {"path": "/home/u/.sluice/runtime/admin/127.1.0.5.sock", "mode": 0o600}}
    md = b["node"]["metadata"]
    assert md["NAMESPACE"] == "tutorial" and md["NAME"] == "reviews-v2-7f9c8d5b4-x2x7k"
    assert md["WORKLOAD_NAME"] == "reviews-v2" and md["SERVICE_ACCOUNT"] == "bookinfo-reviews"
    assert md["APP_CONTAINERS"] == "reviews" and md["INTERCEPTION_MODE"] == "NONE"
    assert md["INSTANCE_IPS"] == "127.1.0.5" and md["CLUSTER_ID"] == "Kubernetes" and md["LABELS"]["version"] == "v2"
    ads = b["dynamic_resources"]["ads_config"]
    assert ads["set_node_on_first_message_only"] and ads["grpc_services"][0]["envoy_grpc"]["cluster_name"] == "xds-grpc"


def test_envoy_validates_the_bootstrap(tmp_path: os.PathLike[str]) -> None:
    import json
    from pathlib import Path

    path = Path(tmp_path) / "b.json"
    path.write_text(json.dumps(proxy_bootstrap(
        node_id="sidecar~127.1.0.5~p.ns~ns.svc.cluster.local", pod=POD, pod_ip="127.1.0.5",
        xds_address=("127.0.0.1", 15010), admin_address=str(Path(tmp_path) / "admin.sock"), cluster="c")))
    assert os.access(envoy_binary(), os.X_OK)
    cmd = envoy_command(path)
    out = subprocess.run([*cmd, "--mode", "validate"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout + out.stderr, out.stderr


def _netns_bootstrap() -> dict[str, Any]:
    return proxy_bootstrap(node_id="sidecar~10.244.0.5~reviews-v2-7f9c8d5b4-x2x7k.tutorial~tutorial.svc.cluster.local",
                           pod=POD, pod_ip="10.244.0.5", xds_address="/run/sluice/xds.sock",
                           cluster="reviews-v2.tutorial", network="netns")


def test_netns_bootstrap_is_istios_for_a_captured_pod() -> None:
    b = _netns_bootstrap()
    assert b["node"]["metadata"]["INTERCEPTION_MODE"] == "REDIRECT"
    assert b["admin"]["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}
    assert "cluster_manager" not in b  # the pod's own namespace gives upstream connections the pod IP
    [xds, admin] = b["static_resources"]["clusters"]
    assert xds["name"] == "xds-grpc" and "upstream_connection_options" not in xds
    assert xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "pipe": {"path": "/run/sluice/xds.sock"}}
    assert admin["name"] == "prometheus_stats"
    routes = {}
    for listener in b["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        [route] = hcm["route_config"]["virtual_hosts"][0]["routes"]
        routes[listener["address"]["socket_address"]["port_value"]] = (route["match"]["prefix"], route["route"])
    assert routes == {15090: ("/stats/prometheus", {"cluster": "prometheus_stats"}),
                      15021: ("/healthz/ready", {"cluster": "prometheus_stats", "prefix_rewrite": "/ready"})}


def test_loopback_bootstrap_needs_an_admin_address() -> None:
    import pytest

    with pytest.raises(ValueError, match="admin_address"):
        proxy_bootstrap(node_id="sidecar~127.1.0.5~p.ns~ns.svc.cluster.local", pod=POD, pod_ip="127.1.0.5",
                        xds_address=("127.0.0.1", 15010), cluster="c")


def test_envoy_validates_the_netns_bootstrap(tmp_path: os.PathLike[str]) -> None:
    import json
    from pathlib import Path

    path = Path(tmp_path) / "b.json"
    path.write_text(json.dumps(_netns_bootstrap()))
    out = subprocess.run([*envoy_command(path), "--mode", "validate"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout + out.stderr, out.stderr
