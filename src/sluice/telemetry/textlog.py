"""Istio's TEXT access-log line (what every sidecar writes to its `istio-proxy` log) → the ALS entry it mirrors.

The catch-up (`sluice.telemetry.catchup`) reads these lines for requests whose gRPC ALS entries never reached
the daemon (it was down, or killed with the entries in flight) and turns each into an `HTTPAccessLogEntry`
carrying what telemetry reads, so the ALS servicer's own code counts it with the same labels.

The line format is `sluice.xds.translate.accesslog.ISTIO_TEXT_FORMAT`. What the line cannot carry: wire
bytes (it has body bytes, so the byte-size histograms of a recovered entry see bodies only) and the
`content-type`/`grpc-status` headers (a recovered gRPC request is labelled `http`).

`entry_key` and `line_key` give the identity both forms share — request id, start time in ms (Envoy's
`%START_TIME%` truncates to ms), downstream local address and response code — so an entry already counted
over ALS is never counted again from the file, and the other way round. The local address tells a sidecar's
inbound entry from its outbound one for the same request (an app that forwards x-request-id). Not the
cluster: a request that got no upstream host (503 UH) has none in ALS but has one in the line.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Any

from envoy.data.accesslog.v3 import accesslog_pb2

from .istio import _FLAG_ORDER

__all__ = ["Key", "RawLine", "TextLine", "split_line", "raw_key", "to_line", "parse_line", "key_of", "entry_key",
           "line_key", "to_entry"]

# Everything up to %DURATION% from the left (the request line holds no `"`: Envoy refuses such paths; a TCP
# connection's line, `"- - -" 0`, is no request and is left to the TCP metrics, which are not recovered) …
_HEAD = re.compile(
    r'\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z\] "(?!- - -")[^"]*" (\d+) (\S+) \S+ \S+ "[^"]*" '
    r"(\d+) (\d+) (\d+) ")
# … and the rest from the right, since user agent and request id are whatever the client sent: the fields
# after the last three quoted ones hold no quote, which pins those three to request id, authority, host.
_TAIL = re.compile(r'"([^"]*)" "([^"]*)" "([^"]*)" ([^\s"]+) ([^\s"]+) ([^\s"]+) ([^\s"]+) ([^\s"]+) ([^"]*)$')
_FLAG_FIELD = {short: name for name, short in _FLAG_ORDER}
_second_cache: list[Any] = ["", 0]  # lines come in time order: the last second's epoch, parsed once

# (request id, start ms, downstream local address, its port, response code)
Key = tuple[str, int, str, int, int]


@dataclass(frozen=True, slots=True)
class TextLine:
    start_ms: int
    code: int
    flags: str
    bytes_received: int
    bytes_sent: int
    duration_ms: int
    request_id: str
    authority: str
    upstream_host: str
    upstream_cluster: str
    downstream_local: str
    downstream_remote: str


def _dash(s: str) -> str:
    return "" if s == "-" else s


# The two matches of a line and its start time: enough for its key; `to_line` makes the rest of it.
RawLine = tuple["re.Match[str]", "re.Match[str]", int]


def split_line(text: str) -> RawLine | None:
    """Match one access-log line; None for anything else on the proxy's stdout."""
    head = _HEAD.match(text)
    if head is None:
        return None
    tail = _TAIL.search(text, head.end())
    if tail is None:
        return None
    second, frac = head.group(1, 2)
    if _second_cache[0] != second:
        y, mo, d, h, mi, s = int(second[:4]), int(second[5:7]), int(second[8:10]), int(second[11:13]), \
            int(second[14:16]), int(second[17:19])
        _second_cache[:] = [second, calendar.timegm((y, mo, d, h, mi, s)) * 1000]
    ms = int(frac[:3].ljust(3, "0")) if frac else 0
    return head, tail, _second_cache[1] + ms


def raw_key(raw: RawLine) -> Key:
    """`line_key` straight from the matches: the catch-up settles most lines with this alone."""
    head, tail, start_ms = raw
    rid = tail.group(1)
    host, port = _split(tail.group(6))
    return ("" if rid == "-" else rid), start_ms, host, port, int(head.group(3))


def to_line(raw: RawLine) -> TextLine:
    head, tail, start_ms = raw
    return TextLine(
        start_ms=start_ms, code=int(head.group(3)), flags=head.group(4), bytes_received=int(head.group(5)),
        bytes_sent=int(head.group(6)), duration_ms=int(head.group(7)), request_id=_dash(tail.group(1)),
        authority=_dash(tail.group(2)), upstream_host=_dash(tail.group(3)), upstream_cluster=_dash(tail.group(4)),
        downstream_local=_dash(tail.group(6)), downstream_remote=_dash(tail.group(7)))


def parse_line(text: str) -> TextLine | None:
    """One access-log line, or None for anything else on the proxy's stdout."""
    raw = split_line(text)
    return None if raw is None else to_line(raw)


def key_of(request_id: str, cp: Any, code: int) -> Key:
    """The identity of an ALS entry from what the servicer has read anyway (request id, common properties,
    response code): on the ALS hot path every field read of a upb message costs."""
    t = cp.start_time
    local = cp.downstream_local_address.socket_address
    return request_id, t.seconds * 1000 + t.nanos // 1_000_000, local.address, local.port_value, code


def entry_key(e: Any) -> Key:
    """The identity of an ALS `HTTPAccessLogEntry` (see the module docstring)."""
    return key_of(e.request.request_id, e.common_properties, e.response.response_code.value)


def line_key(line: TextLine) -> Key:
    """The identity of a text line; equal to `entry_key` of the ALS entry for the same request."""
    host, port = _split(line.downstream_local)
    return line.request_id, line.start_ms, host, port, line.code


_split_cache: dict[str, tuple[str, int]] = {}


def _split(text: str) -> tuple[str, int]:
    """`ip:port` / `[v6]:port` → (ip, port); ("", 0) for anything else (`-`)."""
    got = _split_cache.get(text)
    if got is None:
        host, sep, port = text.rpartition(":")
        got = ((host[1:-1] if host.startswith("[") else host), int(port)) if sep and port.isdigit() else ("", 0)
        if len(_split_cache) > 4096:  # local and upstream addresses repeat; client ports mostly do not
            _split_cache.clear()
        _split_cache[text] = got
    return got


def _address(target: Any, text: str) -> None:
    host, port = _split(text)
    if host:
        sa = target.socket_address
        sa.address = host
        sa.port_value = port


def to_entry(line: TextLine) -> accesslog_pb2.HTTPAccessLogEntry:
    """The ALS entry Envoy would have sent for this line (the fields telemetry reads)."""
    e = accesslog_pb2.HTTPAccessLogEntry()
    cp = e.common_properties
    cp.start_time.seconds, cp.start_time.nanos = divmod(line.start_ms, 1000)
    cp.start_time.nanos *= 1_000_000
    cp.duration.seconds, cp.duration.nanos = divmod(line.duration_ms, 1000)
    cp.duration.nanos *= 1_000_000
    if line.upstream_cluster and line.upstream_host:
        # As ALS reports it: no cluster for a request that got no upstream host (the line names the route's).
        cp.upstream_cluster = line.upstream_cluster
    if line.flags != "-":
        for short in line.flags.split(","):
            name = _FLAG_FIELD.get(short)
            if name is None:
                continue
            if name == "unauthorized_details":  # a message, not a bool
                cp.response_flags.unauthorized_details.SetInParent()
            else:
                setattr(cp.response_flags, name, True)
    if line.downstream_local:
        _address(cp.downstream_local_address, line.downstream_local)
    if line.downstream_remote:
        _address(cp.downstream_remote_address, line.downstream_remote)
    if line.upstream_host:
        _address(cp.upstream_remote_address, line.upstream_host)
    e.request.request_id = line.request_id
    if line.authority:
        e.request.authority = line.authority
    e.request.request_body_bytes = line.bytes_received
    if line.code:
        e.response.response_code.value = line.code
    e.response.response_body_bytes = line.bytes_sent
    return e
