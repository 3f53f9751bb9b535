"""Turning the builders' plain dicts into Envoy protobuf messages.

The builders write resources as dicts in Envoy's proto3 JSON shape (field names as in Envoy's docs), which
reads like the config dumps users compare against; `message` parses one into the typed message, so a
misspelt field fails at build time, in tests, not as a NACK. Importing this module registers every Envoy
type the builders put inside `Any` fields (`"@type": ...`), which `json_format` needs to resolve them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2  # noqa: F401  (registers the type)
from envoy.extensions.access_loggers.grpc.v3 import als_pb2  # noqa: F401
from envoy.extensions.filters.http.cors.v3 import cors_pb2  # noqa: F401
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2  # noqa: F401
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2  # noqa: F401
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.formatter.req_without_query.v3 import req_without_query_pb2  # noqa: F401
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format
from google.protobuf.message import Message

from .model import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE

__all__ = ["message", "cached_message", "typed", "MESSAGE_CLASSES"]

MESSAGE_CLASSES: dict[str, Any] = {
    TYPE_LISTENER: listener_pb2.Listener,
    TYPE_ROUTE: route_pb2.RouteConfiguration,
    TYPE_CLUSTER: cluster_pb2.Cluster,
    TYPE_ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
}


def message(type_url: str, body: dict[str, Any]) -> Message:
    """Parse one resource dict into its Envoy message; raises `json_format.ParseError` on a bad field."""
    msg: Message = MESSAGE_CLASSES[type_url]()
    json_format.ParseDict(body, msg)
    return msg


# Parsed messages by content, across pushes: a proxy's listeners and inbound clusters are rebuilt as dicts on
# every push that touches it, and parsing (json_format) costs ~20x what hashing the dict's JSON does, so a
# resource whose content did not change is not parsed again. Bounded by entries and by the JSON size of what
# it keeps; the messages are shared, read-only.
_PARSED_LIMIT = 8192
_PARSED_SIZE = 64 * 1024 * 1024
_parsed: OrderedDict[tuple[str, bytes], tuple[Message, int]] = OrderedDict()
_parsed_size = 0
_parsed_lock = threading.Lock()


def cached_message(type_url: str, body: dict[str, Any]) -> Message:
    """`message(type_url, body)`, the same (shared, read-only) message object for content seen before."""
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # not plain JSON: parse it every time
        return message(type_url, body)
    global _parsed_size
    key = (type_url, hashlib.blake2b(text.encode(), digest_size=20).digest())
    with _parsed_lock:
        found = _parsed.get(key)
        if found is not None:
            _parsed.move_to_end(key)
            return found[0]
    msg = message(type_url, body)
    with _parsed_lock:
        if key not in _parsed:
            _parsed[key] = (msg, len(text))
            _parsed_size += len(text)
        while _parsed and (len(_parsed) > _PARSED_LIMIT or _parsed_size > _PARSED_SIZE):
            _parsed_size -= _parsed.popitem(last=False)[1][1]
    return msg


def typed(full_name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `Any` field's JSON form: `{"@type": "type.googleapis.com/<full_name>", ...body}`."""
    return {"@type": f"type.googleapis.com/{full_name}", **(body or {})}
