"""A workload's logs in the console (pure): which containers to read, the `sinceTime` cursor, the merge.

Role: the console shows the app containers and the `istio-proxy` sidecar of every pod of a workload as one
stream in time order. Reading a container's log file is the runtime's job (the daemon passes
`Kubelet.read_log_lines` as the `LogReader`); this module picks the (pod, container) pairs, turns a
client's RFC3339 `sinceTime` into the runtime's fixed timestamp format (nine fraction digits, UTC, so
timestamps compare as text) and merges the per-container lines.

Callers: `sluice.console.api` (`GET /api/namespaces/{ns}/workloads/{name}/logs`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sluice.console.params import Fail

__all__ = ["LogReader", "DEFAULT_TAIL", "MAX_TAIL", "SIDECAR", "parse_since", "log_targets", "merge"]

# (namespace, pod, container, tail lines, after) → [(time, line)], oldest first: the last `tail lines` lines
# of the container's current log, then only those strictly after `after` (a timestamp as `parse_since`
# writes it). A container that has not started yet has no lines.
LogReader = Callable[[str, str, str, int, str | None], Awaitable[list[tuple[str, str]]]]

DEFAULT_TAIL = 500
MAX_TAIL = 5000
SIDECAR = "istio-proxy"

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def parse_since(text: str) -> str:
    """An RFC3339 time (any number of fraction digits) → `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in UTC."""
    # An unencoded `+` in a query string arrives as a space: `...T04:40:00 01:00` means `+01:00`.
    m = _RFC3339.match(re.sub(r" (\d\d:\d\d)$", r"+\1", text.strip()))
    when = None
    if m:
        zone = "+00:00" if m.group(4) in ("Z", "z") else m.group(4)
        try:
            when = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{zone}")
        except ValueError:
            when = None
    if m is None or when is None:
        raise Fail(400, f"sinceTime {text!r} is not an RFC3339 time (want e.g. 2026-11-28T03:40:00.123456789Z)")
    frac = (m.group(3) or "")[:9].ljust(9, "0")
    seconds = int(when.timestamp())
    if seconds < 0:
        raise Fail(400, f"sinceTime {text!r} is before 1970")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac}Z"


def _containers(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c["name"]) for c in spec.get("containers") or [] if isinstance(c, dict) and c.get("name")]


def log_targets(pods: Sequence[Mapping[str, Any]], container: str | None, workload: str) -> list[tuple[str, str]]:
    """(pod, container) pairs to read: every container of every pod (app containers and `istio-proxy`), or only
    the one named. A container no pod has is a `Fail(400)` listing the ones there are."""
    out: list[tuple[str, str]] = []
    known: set[str] = set()
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        name = str((pod.get("metadata") or {}).get("name"))
        for c in _containers(pod):
            known.add(c)
            if container is None or c == container:
                out.append((name, c))
    if container is not None and pods and container not in known:
        raise Fail(400, f"container {container!r} is not in the pods of workload {workload!r} "
                        f"(containers: {', '.join(sorted(known)) or 'none'})")
    return out


def merge(chunks: Iterable[tuple[str, str, Sequence[tuple[str, str]]]]) -> list[dict[str, Any]]:
    """One list in time order from (pod, container, [(time, line)]) chunks; equal times keep chunk order."""
    rows: list[tuple[str, int, int, dict[str, Any]]] = []
    for i, (pod, container, lines) in enumerate(chunks):
        for j, (ts, text) in enumerate(lines):
            rows.append((ts, i, j, {"pod": pod, "container": container, "time": ts, "line": text,
                                    "proxy": container == SIDECAR}))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [r[3] for r in rows]
