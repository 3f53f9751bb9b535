"""Proven decommission: an old version is scaled down only when two independent witnesses say it is idle.

The seed story ends with "check that no more requests were sent to reviews v2 (in real life you would wait a
while to be sure), then delete it". Argo Rollouts scales the old ReplicaSet down after a fixed
`scaleDownDelaySeconds`, whatever traffic it still gets. Here the version must be proven idle over a window:

* **the metrics**: Istio's counters for requests and TCP connections whose destination is the workload did not
  grow over the window (`increase`), and no series of them appeared in it (a series first seen inside the
  window carries requests `increase` cannot see: Prometheus never counts a counter's first sample);
* **the sidecars' own access logs**: no inbound line (Istio's TEXT or JSON format, upstream cluster `inbound|…`)
  in any of the workload's pods' `istio-proxy` logs over the same window, so traffic the metrics have not taken
  in yet (ALS flush, scrape interval) or never will (the daemon down) still counts. With the mesh config's
  access log off (`accessLogFile: ""`) this witness has no lines to see: the metrics alone decide.

Pure: `idle_queries` names the PromQL, `decide` turns the answers into a `Proof`; `prove` asks both witnesses
through the functions it is given (`sluice rollouts decommission`'s clients, the rollouts controller's).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Witness", "LogWitness", "Proof", "idle_queries", "inbound_lines", "decide", "prove", "PROOF_ANNOTATION",
           "SIDECAR"]

PROOF_ANNOTATION = "sluice.dev/decommission-proof"
SIDECAR = "istio-proxy"

# An inbound request or connection in Istio's TEXT or JSON access log: the upstream cluster is `inbound|PORT||`.
_INBOUND = re.compile(r"(?:^|[\s\"])inbound\|\d+\|")


@dataclass(frozen=True)
class Witness:
    """One PromQL query of the proof and its answer (None: no series at all)."""

    what: str
    query: str
    value: float | None

    @property
    def idle(self) -> bool:
        return self.value is None or self.value == 0

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "query": self.query, "value": self.value}


@dataclass(frozen=True)
class LogWitness:
    """One pod's `istio-proxy` log over the window: how many inbound lines, and the last one."""

    pod: str
    lines: int
    last: str = ""

    @property
    def idle(self) -> bool:
        return self.lines == 0

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "inboundLines": self.lines, **({"last": self.last} if self.last else {})}


@dataclass(frozen=True)
class Proof:
    namespace: str
    workload: str
    window_s: int
    at: float  # unix time the window ends
    metrics: tuple[Witness, ...]
    logs: tuple[LogWitness, ...] = field(default=())

    @property
    def idle(self) -> bool:
        return all(w.idle for w in self.metrics) and all(w.idle for w in self.logs)

    def summary(self) -> str:
        """One line: what was proven, or what still reaches the workload."""
        if self.idle:
            pods = f" and the istio-proxy logs of {len(self.logs)} pod(s)" if self.logs else ""
            return (f"{self.workload} received no requests or connections in the last {self.window_s}s "
                    f"(Istio's metrics{pods} agree)")
        busy = [f"{w.what}: {_number(w.value)}" for w in self.metrics if not w.idle]
        busy += [f"{w.pod}: {w.lines} inbound access-log line(s)" for w in self.logs if not w.idle]
        return f"{self.workload} is not idle over the last {self.window_s}s: " + "; ".join(busy)

    def details(self) -> str:
        """The proof in words: its window, every query with its answer, every pod's log count."""
        end = dt.datetime.fromtimestamp(self.at, dt.UTC)
        start = end - dt.timedelta(seconds=self.window_s)
        parts = [f"window {_rfc3339(start)} to {_rfc3339(end)} ({self.window_s}s)"]
        parts += [f"{w.query} = {_number(w.value)}" for w in self.metrics]
        parts += [f"{SIDECAR} log of {w.pod}: {w.lines} inbound line(s)" for w in self.logs]
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        end = dt.datetime.fromtimestamp(self.at, dt.UTC)
        start = end - dt.timedelta(seconds=self.window_s)
        return {"workload": self.workload, "namespace": self.namespace, "idle": self.idle,
                "window": {"start": _rfc3339(start), "end": _rfc3339(end), "seconds": self.window_s},
                "metrics": [w.to_json() for w in self.metrics], "accessLogs": [w.to_json() for w in self.logs]}

    def annotation(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)


def _rfc3339(t: dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _number(v: float | None) -> str:
    if v is None:
        return "no series"
    return f"{v:.0f}" if v == int(v) or abs(v) >= 100 else f"{v:.3g}"


def _label_value(s: str) -> str:
    # not sluice.metrics.exposition's escaper: importing it loads the PromQL engine into every `sluice` command
    return s.replace("\\", "\\\\").replace('"', '\\"')


def idle_queries(namespace: str, workload: str, window_s: int) -> list[tuple[str, str]]:
    """(what, PromQL) pairs whose answers are all zero or empty exactly when the metrics show no traffic."""
    sel = (f'destination_workload="{_label_value(workload)}",'
           f'destination_workload_namespace="{_label_value(namespace)}"')
    out = []
    for what, metric in (("requests", "istio_requests_total"), ("TCP connections", "istio_tcp_connections_opened_total")):
        out.append((f"{what} (increase of {metric})", f"sum(increase({metric}{{{sel}}}[{window_s}s]))"))
        out.append((f"{what} (new {metric} series)",
                    f"count({metric}{{{sel}}} unless {metric}{{{sel}}} offset {window_s}s)"))
    return out


def scalar_of(result: Sequence[Mapping[str, Any]]) -> float | None:
    """The value of a one-element instant vector (`sum(...)`/`count(...)`), None when it is empty."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def inbound_lines(lines: Iterable[str]) -> tuple[int, str]:
    """How many of an `istio-proxy` log's lines are inbound requests or connections, and the last one."""
    n, last = 0, ""
    for line in lines:
        if _INBOUND.search(line):
            n, last = n + 1, line.strip()
    return n, last


def decide(namespace: str, workload: str, window_s: int, at: float,
           answers: Sequence[tuple[str, str, Sequence[Mapping[str, Any]]]],
           logs: Mapping[str, Iterable[str]]) -> Proof:
    """The proof from the queries' answers ((what, query, data.result)) and each pod's log lines in the window."""
    metrics = tuple(Witness(what, q, scalar_of(result)) for what, q, result in answers)
    witnesses = []
    for pod, lines in sorted(logs.items()):
        n, last = inbound_lines(lines)
        witnesses.append(LogWitness(pod, n, last))
    return Proof(namespace, workload, window_s, at, metrics, tuple(witnesses))


def prove(namespace: str, workload: str, window_s: int, at: float,
          query: Callable[[str], Sequence[Mapping[str, Any]]], pods: Iterable[Mapping[str, Any]],
          sidecar_log: Callable[[str], Iterable[str] | None]) -> Proof:
    """The proof that `workload` was idle over the `window_s` seconds up to `at`: `query` answers an instant
    PromQL query at `at` (its `data.result`); `sidecar_log` gives a pod's `istio-proxy` lines over the window
    (None: the pod is gone); `pods` are the workload's pods, of which those with a sidecar are asked."""
    answers = [(what, q, query(q)) for what, q in idle_queries(namespace, workload, window_s)]
    logs: dict[str, list[str]] = {}
    for pod in pods:
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
        if SIDECAR not in containers:
            continue
        name = str((pod.get("metadata") or {}).get("name") or "")
        lines = sidecar_log(name)
        if lines is not None:
            logs[name] = list(lines)
    return decide(namespace, workload, window_s, at, answers, logs)
