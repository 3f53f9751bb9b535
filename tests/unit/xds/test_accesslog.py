"""The access loggers every HCM and TCP proxy carries: Istio's TEXT log to the file, and gRPC ALS batched so
that the collector gets few, larger messages without any entry waiting longer than Envoy's 1 s."""

from __future__ import annotations

from sluice.xds.translate.accesslog import (
    ALS_BUFFER_BYTES,
    ISTIO_TEXT_FORMAT,
    access_logs,
    tcp_access_logs,
)
from sluice.xds.translate.model import MeshOptions


def test_file_log_alone_without_a_collector() -> None:
    [log] = access_logs(MeshOptions(access_log_path="/dev/stdout"))
    assert log["name"] == "envoy.access_loggers.file"
    assert log["typed_config"]["path"] == "/dev/stdout"
    assert log["typed_config"]["log_format"]["text_format_source"]["inline_string"] == ISTIO_TEXT_FORMAT
    [tcp] = tcp_access_logs(MeshOptions(access_log_path="/dev/stdout"))  # Istio's TEXT line, at the end only
    assert tcp["name"] == "envoy.access_loggers.file"
    assert tcp["filter"] == {"log_type_filter": {"types": ["TcpConnectionEnd"]}}


def test_als_batches_entries_and_flushes_every_second() -> None:
    options = MeshOptions(als_address=("127.0.0.1", 15010))
    http = access_logs(options)[1]["typed_config"]["common_config"]
    tcp = tcp_access_logs(options)[1]["typed_config"]["common_config"]
    for common, name in ((http, "http_envoy_accesslog"), (tcp, "tcp_envoy_accesslog")):
        assert common["log_name"] == name
        assert common["grpc_service"] == {"envoy_grpc": {"cluster_name": "envoy_accesslog_service"}}
        assert common["buffer_flush_interval"] == "1s"
        assert common["buffer_size_bytes"] == ALS_BUFFER_BYTES > 16384  # above Envoy's default
