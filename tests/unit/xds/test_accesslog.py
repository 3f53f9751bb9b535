"""The access loggers every HCM and TCP proxy carries: the file log as the mesh config says (Istio's TEXT or JSON
format, a custom format, or none), and gRPC ALS batched so that the collector gets few, larger messages without
any entry waiting longer than Envoy's 1 s, whatever the file log does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sluice.meshconfig import MeshConfig, parse_mesh_config
from sluice.xds.envoy import envoy_binary
from sluice.xds.translate.accesslog import (
    ALS_BUFFER_BYTES,
    ISTIO_JSON_FORMAT,
    ISTIO_TEXT_FORMAT,
    access_logs,
    tcp_access_logs,
)
from sluice.xds.translate.model import MeshOptions

ALS = MeshOptions(als_address=("127.0.0.1", 15010))


def _mesh(text: str) -> MeshConfig:
    config, problems = parse_mesh_config(text)
    assert problems == []
    return config


def test_file_log_alone_without_a_collector() -> None:
    [log] = access_logs(MeshOptions(), MeshConfig())
    assert log["name"] == "envoy.access_loggers.file"
    assert log["typed_config"]["path"] == "/dev/stdout"
    assert log["typed_config"]["log_format"]["text_format_source"]["inline_string"] == ISTIO_TEXT_FORMAT
    [tcp] = tcp_access_logs(MeshOptions(), MeshConfig())  # Istio's TEXT line, at the end only
    assert tcp["name"] == "envoy.access_loggers.file"
    assert tcp["filter"] == {"log_type_filter": {"types": ["TcpConnectionEnd"]}}


def test_als_batches_entries_and_flushes_every_second() -> None:
    http = access_logs(ALS, MeshConfig())[1]["typed_config"]["common_config"]
    tcp = tcp_access_logs(ALS, MeshConfig())[1]["typed_config"]["common_config"]
    for common, name in ((http, "http_envoy_accesslog"), (tcp, "tcp_envoy_accesslog")):
        assert common["log_name"] == name
        assert common["grpc_service"] == {"envoy_grpc": {"cluster_name": "envoy_accesslog_service"}}
        assert common["buffer_flush_interval"] == "1s"
        assert common["buffer_size_bytes"] == ALS_BUFFER_BYTES > 16384  # above Envoy's default


def test_access_log_file_off_leaves_als_alone() -> None:
    off = _mesh('accessLogFile: ""\n')
    assert [a["name"] for a in access_logs(ALS, off)] == ["envoy.access_loggers.http_grpc"]
    assert [a["name"] for a in tcp_access_logs(ALS, off)] == ["envoy.access_loggers.tcp_grpc"]
    assert access_logs(MeshOptions(), off) == [] and tcp_access_logs(ALS, off, als=False) == []
    [log] = access_logs(MeshOptions(), _mesh("accessLogFile: /dev/stderr\n"))
    assert log["typed_config"]["path"] == "/dev/stderr"


def test_json_encoding_is_istios_json_format() -> None:
    [log, _] = access_logs(ALS, _mesh("accessLogEncoding: JSON\n"))
    fmt = log["typed_config"]["log_format"]
    assert fmt["json_format"] == ISTIO_JSON_FORMAT and len(ISTIO_JSON_FORMAT) == 24  # the 24 keys of Istio's source
    assert fmt["json_format_options"] == {"sort_properties": False}
    assert ISTIO_JSON_FORMAT["upstream_cluster"] == "%UPSTREAM_CLUSTER_RAW%"


def test_custom_formats() -> None:
    [log] = access_logs(MeshOptions(), _mesh('accessLogFormat: "%REQ(:METHOD)% %RESPONSE_CODE%"\n'))
    assert log["typed_config"]["log_format"] == {"text_format_source": {"inline_string": "%REQ(:METHOD)% %RESPONSE_CODE%\n"}}
    mesh = _mesh("accessLogEncoding: JSON\naccessLogFormat: '{\"p\": \"%REQ_WITHOUT_QUERY(:PATH)%\", \"n\": {\"c\": 1}}'\n")
    [log] = access_logs(MeshOptions(), mesh)
    fmt = log["typed_config"]["log_format"]
    assert fmt["json_format"] == {"p": "%REQ_WITHOUT_QUERY(:PATH)%", "n": {"c": 1}}
    assert [f["name"] for f in fmt["formatters"]] == ["envoy.formatter.req_without_query"]


@pytest.mark.parametrize("mesh", [
    "accessLogFile: /dev/stdout\n", 'accessLogFile: ""\n', "accessLogEncoding: JSON\n",
    "accessLogEncoding: 1\naccessLogFormat: '{\"a\": \"%REQ_WITHOUT_QUERY(:PATH)%\", \"b\": [1, true]}'\n",
    "accessLogFormat: '[%START_TIME(%s)%] %REQ(:PATH):10% 100%% %REQ_WITHOUT_QUERY(:PATH)% %CEL(request.path)%'\n",
])
def test_envoy_accepts_every_variant(mesh: str, tmp_path: Path) -> None:
    config = _mesh(mesh)
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "x", "route_config": {}, "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "access_log": access_logs(MeshOptions(), config)}
    tcp = {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "t",
           "cluster": "c", "access_log": tcp_access_logs(MeshOptions(), config)}

    def listener(name: str, port: int, filt: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": filt, "typed_config": body}]}]}

    boot = {"static_resources": {
        "listeners": [listener("h", 1, "envoy.filters.network.http_connection_manager", hcm),
                      listener("t", 2, "envoy.filters.network.tcp_proxy", tcp)],
        "clusters": [{"name": "c", "connect_timeout": "1s", "type": "STATIC", "load_assignment": {
            "cluster_name": "c", "endpoints": []}}]}}
    path = tmp_path / "boot.json"
    path.write_text(json.dumps(boot))
    r = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                        "-l", "critical"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
