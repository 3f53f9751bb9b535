"""Which incoming headers each Bookinfo service copies onto its outgoing calls.

The lists are the originals' (`getForwardHeaders` in productpage.py, `get_forward_headers` in details.rb,
`headers_to_propagate` in reviews' LibertyRestEndpoint.java). Propagation is what lets Envoy stitch traces
together and what makes `end-user`-based routing work one hop further down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["PROPAGATED", "PRODUCTPAGE_COPIED", "B3_HEADERS", "copy_headers", "b3_headers"]

B3_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")

# details and reviews copy these verbatim when present.
PROPAGATED: tuple[str, ...] = (
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    *B3_HEADERS,
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
)

# productpage copies the same list minus the B3 headers (re-encoded by its B3 propagator, see b3_headers)
# and minus end-user (taken from the session instead).
PRODUCTPAGE_COPIED: tuple[str, ...] = tuple(h for h in PROPAGATED if h not in B3_HEADERS and h != "end-user")


def copy_headers(incoming: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The `names` present in `incoming` (a case-insensitive mapping such as aiohttp's request headers)."""
    out: dict[str, str] = {}
    for name in names:
        value = incoming.get(name)
        if value is not None:
            out[name] = value
    return out


_TRACE_ID = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_SAMPLED_VALUES = frozenset({"1", "True", "true", "d"})


def b3_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """What productpage's OpenTelemetry `B3MultiFormat` extract-then-inject produces from the incoming headers.

    A valid trace id / span id pair (multi-header or single `b3` header) comes out as `x-b3-traceid` (128-bit,
    zero-padded), `x-b3-spanid` and `x-b3-sampled` (`1`/`0`); `x-b3-parentspanid` and `x-b3-flags` are not
    re-emitted. Anything invalid or absent yields nothing, as the original does.
    """
    trace_id = incoming.get("x-b3-traceid")
    span_id = incoming.get("x-b3-spanid")
    sampled = incoming.get("x-b3-sampled")
    flags = incoming.get("x-b3-flags")
    single = incoming.get("b3")
    if single:
        # b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]
        parts = single.split("-")
        if len(parts) >= 2:
            trace_id, span_id = parts[0], parts[1]
            sampled = parts[2] if len(parts) >= 3 else sampled
    if not trace_id or not span_id or not _TRACE_ID.match(trace_id) or not _SPAN_ID.match(span_id):
        return {}
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:  # all-zero ids are invalid in OpenTelemetry
        return {}
    is_sampled = (sampled in _SAMPLED_VALUES) or flags == "1"
    return {
        "x-b3-traceid": f"{int(trace_id, 16):032x}",
        "x-b3-spanid": f"{int(span_id, 16):016x}",
        "x-b3-sampled": "1" if is_sampled else "0",
    }
