"""Access logs on every HTTP connection manager and TCP proxy: Istio's file access log, plus gRPC ALS.

The file log is what `kubectl logs <pod> -c istio-proxy` shows, as the mesh config says (`sluice.meshconfig`:
`accessLogFile` on or off, `accessLogEncoding` TEXT or JSON, `accessLogFormat`), built as istiod builds it; the
ALS stream (when the mesh options name a collector) is what telemetry turns into Istio's metrics, whatever
the file log does. Istio logs TCP connections with the same format (in TEXT its request fields print `-`, the
protocol `-`, the response code 0: `"- - -" 0 - - -`), one line when the connection ends. Called by
`network_filters`.
"""

from __future__ import annotations

import functools
import json

from sluice.meshconfig import JSON, MeshConfig

from .clusters import ALS_CLUSTER
from .model import MeshOptions
from .protos import typed
from .spec import Obj

__all__ = ["ISTIO_TEXT_FORMAT", "ISTIO_JSON_FORMAT", "ALS_LOG_NAME", "TCP_ALS_LOG_NAME", "ALS_BUFFER_BYTES",
           "ALS_FLUSH_INTERVAL", "access_logs", "tcp_access_logs"]

# Istio's EnvoyTextLogFormat (Istio >= 1.24: %UPSTREAM_CLUSTER_RAW%), see reference/istio.md §3.4.
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% '
    '%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)
# Istio's EnvoyJSONLogFormatIstio (the same keys and operators; Envoy writes the keys in its own order).
ISTIO_JSON_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%", "route_name": "%ROUTE_NAME%", "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%", "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%", "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%", "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}
# `%REQ_WITHOUT_QUERY(...)%` is an extension formatter: Istio adds it to the log format when a format uses it.
_REQ_WITHOUT_QUERY = {"name": "envoy.formatter.req_without_query",
                      "typed_config": typed("envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery")}
ALS_LOG_NAME = "http_envoy_accesslog"  # the log name Istio's envoy ALS provider uses
TCP_ALS_LOG_NAME = "tcp_envoy_accesslog"
# Envoy sends its buffered ALS entries when they pass this size or every flush interval, whichever comes first.
# Envoy's default 16 KiB is ~30 HTTP entries, so at 1000 rps each sidecar sent ~35 messages a second and the
# collector paid Python gRPC's per-message cost on each; 64 KiB cuts the messages fourfold (collector CPU per
# 1000 rps 0.043 → 0.027 vCPU in bench/mesh_bench.py, the Envoys' own a little lower too) while one message
# stays a few ms of collector work. The interval stays Envoy's 1 s, written out because metric freshness rests
# on it: no entry waits longer than it did.
ALS_BUFFER_BYTES = 64 * 1024
ALS_FLUSH_INTERVAL = "1s"


def _common(log_name: str) -> Obj:
    return {"log_name": log_name, "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": ALS_CLUSTER}},
            "buffer_size_bytes": ALS_BUFFER_BYTES, "buffer_flush_interval": ALS_FLUSH_INTERVAL}


@functools.lru_cache(maxsize=16)
def _file_log(path: str, encoding: str, fmt: str) -> Obj:
    """The file access log of the mesh config's settings (shared: callers copy before changing it)."""
    log_format: Obj
    if encoding == JSON:
        log_format = {"json_format": json.loads(fmt) if fmt else ISTIO_JSON_FORMAT,
                      "json_format_options": {"sort_properties": False}}
        uses = json.dumps(log_format["json_format"])
    else:
        log_format = {"text_format_source": {"inline_string": fmt or ISTIO_TEXT_FORMAT}}
        uses = fmt
    if "%REQ_WITHOUT_QUERY" in uses:
        log_format["formatters"] = [_REQ_WITHOUT_QUERY]
    return {"name": "envoy.access_loggers.file", "typed_config": typed(
        "envoy.extensions.access_loggers.file.v3.FileAccessLog", {"path": path, "log_format": log_format})}


def _file_logs(mesh: MeshConfig) -> list[Obj]:
    if not mesh.access_log_file:
        return []
    return [_file_log(mesh.access_log_file, mesh.access_log_encoding, mesh.access_log_format)]


def access_logs(options: MeshOptions, mesh: MeshConfig) -> list[Obj]:
    logs = _file_logs(mesh)
    if options.als_address is not None:
        logs.append({"name": "envoy.access_loggers.http_grpc", "typed_config": typed(
            "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            {"common_config": _common(ALS_LOG_NAME),
             # What Istio's stats filter reads besides the stream info: whether a request is gRPC
             # and its grpc-status (trailers, or headers for a trailers-only response).
             "additional_request_headers_to_log": ["content-type"],
             "additional_response_headers_to_log": ["grpc-status"],
             "additional_response_trailers_to_log": ["grpc-status"]})})
    return logs


def tcp_access_logs(options: MeshOptions, mesh: MeshConfig, als: bool = True) -> list[Obj]:
    """A TCP proxy's logs (`TcpProxy.access_log`): the file log's line when the connection ends and, with `als`,
    the ALS entries from which telemetry derives the istio_tcp_* metrics. Pair ALS with `access_log_options:
    {flush_access_log_on_connected: true}` on the TcpProxy so that a connection counts as opened when it
    opens, not when it closes (the file log keeps to the end's line only, as Istio's)."""
    at_end: Obj = {"log_type_filter": {"types": ["TcpConnectionEnd"]}}
    logs: list[Obj] = [{**f, "filter": at_end} for f in _file_logs(mesh)]
    if als and options.als_address is not None:
        logs.append({"name": "envoy.access_loggers.tcp_grpc", "typed_config": typed(
            "envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig",
            {"common_config": _common(TCP_ALS_LOG_NAME)})})
    return logs
