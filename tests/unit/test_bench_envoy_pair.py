"""The mesh bench's bare Envoy pair: minimal unless a feature is asked for, each feature the piece Sluice's
translation adds, and every variant a config the real Envoy accepts (`--mode validate`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from envoy_pair import SLUICE_FEATURES, AlsTarget, pair_configs  # noqa: E402

from sluice.xds.envoy import envoy_binary  # noqa: E402
from sluice.xds.translate.accesslog import ISTIO_TEXT_FORMAT  # noqa: E402

ADDRS = {"client_listen": ("127.0.0.1", 20001), "server_listen": ("127.0.0.1", 20002), "app": ("127.0.0.1", 20003)}


def _hcm(boot: dict[str, Any]) -> dict[str, Any]:
    [listener] = boot["static_resources"]["listeners"]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def test_bare_pair_is_a_router_and_nothing_else() -> None:
    client, server = pair_configs(**ADDRS)
    for boot in (client, server):
        hcm = _hcm(boot)
        assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]
        assert "access_log" not in hcm
        assert not {"admin", "stats_sinks", "stats_config", "dynamic_resources"} & boot.keys()
        assert [c["type"] for c in boot["static_resources"]["clusters"]] == ["STATIC"]
    # client-side Envoy is an HTTP proxy to the server-side one, which forwards to the app
    assert _hcm(client)["http_protocol_options"] == {"allow_absolute_url": True}
    to_server = client["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert to_server["endpoint"]["address"]["socket_address"]["port_value"] == 20002
    to_app = server["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert to_app["endpoint"]["address"]["socket_address"]["port_value"] == 20003


def test_each_feature_adds_what_sluice_has() -> None:
    client, server = pair_configs(**ADDRS, features=frozenset({"file_log"}))
    for boot in (client, server):
        [log] = _hcm(boot)["access_log"]
        assert log["typed_config"]["log_format"]["text_format_source"]["inline_string"] == ISTIO_TEXT_FORMAT
        assert [f["name"] for f in _hcm(boot)["http_filters"]] == ["envoy.filters.http.router"]

    client, server = pair_configs(**ADDRS, features=frozenset({"filters"}))
    assert [f["name"] for f in _hcm(client)["http_filters"]] == [
        "envoy.filters.http.cors", "envoy.filters.http.fault", "envoy.filters.http.router"]
    assert "access_log" not in _hcm(client)

    client, _ = pair_configs(**ADDRS, features=frozenset({"routes", "retries", "cluster"}))
    vhosts = _hcm(client)["route_config"]["virtual_hosts"]
    assert len(vhosts) == 201 and all(v["include_request_attempt_count"] for v in vhosts)
    assert vhosts[-1]["routes"][0]["route"]["retry_policy"]["num_retries"] == 2
    assert client["static_resources"]["clusters"][0]["lb_policy"] == "LEAST_REQUEST"

    client, _ = pair_configs(**ADDRS, features=frozenset({"istio_stats"}))
    patterns = client["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]
    assert patterns[0] == {"prefix": "reporter="} and {"prefix": "cluster_manager"} in patterns


def test_als_streams_as_the_pods_sidecar_would() -> None:
    def pod(name: str) -> dict[str, Any]:
        return {"node": {"id": f"sidecar~10.0.0.1~{name}.bench~bench.svc.cluster.local", "cluster": name},
                "static_resources": {"secrets": [{"name": "default"}, {"name": "ROOTCA"}]}}

    als = AlsTarget(("127.0.0.1", 15010), pod("client-1"), pod("server-1"))
    client, server = pair_configs(**ADDRS, features=frozenset({"als"}), als=als)
    for boot, name in ((client, "client-1"), (server, "server-1")):
        [log] = _hcm(boot)["access_log"]
        assert log["name"] == "envoy.access_loggers.http_grpc"
        assert log["typed_config"]["common_config"]["log_name"] == "http_envoy_accesslog"
        assert boot["node"]["cluster"] == name and boot["static_resources"]["secrets"]
        als_cluster = boot["static_resources"]["clusters"][-1]
        assert als_cluster["name"] == "envoy_accesslog_service" and "transport_socket" in als_cluster
    with pytest.raises(ValueError, match="needs an AlsTarget"):
        pair_configs(**ADDRS, features=frozenset({"als"}))
    # the tuning variants: another buffer size, no additional headers
    client, _ = pair_configs(**ADDRS, features=frozenset({"als1m", "als_noextra"}), als=als)
    [log] = _hcm(client)["access_log"]
    assert log["typed_config"]["common_config"]["buffer_size_bytes"] == 1 << 20
    assert not [k for k in log["typed_config"] if k.startswith("additional_")]


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        pair_configs(**ADDRS, features=frozenset({"tracing"}))


@pytest.mark.parametrize("features", [frozenset(), frozenset(SLUICE_FEATURES) - {"als"}, frozenset({"stats_log"})])
def test_real_envoy_accepts_the_configs(tmp_path: Path, features: frozenset[str]) -> None:
    for side, boot in zip(("client", "server"), pair_configs(**ADDRS, features=features), strict=True):
        path = tmp_path / f"{side}.json"
        path.write_text(json.dumps(boot))
        done = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
