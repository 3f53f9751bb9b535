"""What one proxy's access log may create: label values checked before they make a series, and a
per-workload series limit.

A sidecar reports entries about its own traffic, but every field of an entry is the proxy's word. The few
fields that become label values verbatim are checked here (`http_labels_valid`): `response_code` must be
an HTTP status code (RFC 9110: 100–599; 0 when no response was sent), `grpc_response_status` one of gRPC's
17 codes, `destination_service`/`_name` a host name (the cluster's host or the `:authority`). The response
flags and the protocol are built by the collector from enumerated fields, and the peers from the server's
own pod index, so they cannot carry arbitrary text.

`SeriesBudget` is Prometheus's `sample_limit` for one reporting workload: it counts the series a scrape
of the workload's metrics would store (an HTTP label set is `istio_requests_total` plus three histograms of
22 series each: 67; a TCP label set 4), with one difference: Prometheus
refuses a whole scrape that exceeds it, because a scrape is one snapshot and a partial one would be
misleading. An access-log batch is not a snapshot: it mixes entries for series that already exist (the
workload's real traffic) with new ones, so refusing it whole would stop counting the real traffic to
punish the extra. Here only entries that would create a series beyond the limit are dropped, and counted
per workload (`sluice_telemetry_series_limit_exceeded_total`); entries for existing series keep counting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["SeriesBudget", "WorkloadKey", "valid_response_code", "valid_grpc_status", "valid_host",
           "DEFAULT_SERIES_LIMIT"]

# Series per workload, as stored: the story's busiest workload (productpage: both reporters, a few peers,
# codes and flags, a few dozen label sets) stores a few thousand; 20,000 (about 300 HTTP label sets) leaves
# room for real variety and caps what one forging workload can add to the store.
DEFAULT_SERIES_LIMIT = 20_000

WorkloadKey = tuple[str, str]  # (namespace, workload) of the reporting proxy

# A DNS name or IP literal, optionally with a port: what a Host header or a cluster's host may be. `*` for
# wildcard ServiceEntry hosts, `_` as resolvers accept it.
_HOST = re.compile(r"(?:[A-Za-z0-9_*](?:[A-Za-z0-9_.*-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_MAX_HOST = 261


def valid_response_code(code: int) -> bool:
    return code == 0 or 100 <= code <= 599


def valid_grpc_status(status: str) -> bool:
    """"" (not gRPC) or one of gRPC's codes 0 (OK) … 16 (UNAUTHENTICATED), written as Envoy writes them."""
    return status == "" or (status.isdigit() and len(status) <= 2 and int(status) <= 16
                            and str(int(status)) == status)


def valid_host(value: str) -> bool:
    """"" (unset), `unknown`, or a host[:port]."""
    return value == "" or (len(value) <= _MAX_HOST and _HOST.fullmatch(value) is not None)


@dataclass
class SeriesBudget:
    """Series per reporting workload, against `limit` (0: no limit)."""

    limit: int = DEFAULT_SERIES_LIMIT
    used: dict[WorkloadKey, int] = field(default_factory=dict)
    exceeded: dict[WorkloadKey, int] = field(default_factory=dict)  # entries dropped, by workload

    def take(self, key: WorkloadKey, series: int) -> bool:
        """Reserve `series` new series for `key`; False (nothing reserved) when that would pass the limit."""
        used = self.used.get(key, 0)
        if self.limit and used + series > self.limit:
            return False
        self.used[key] = used + series
        return True

    def refuse(self, key: WorkloadKey, entries: int = 1) -> None:
        self.exceeded[key] = self.exceeded.get(key, 0) + entries

    def recount(self, owners: Iterable[tuple[WorkloadKey, int]]) -> None:
        """Start again from the series that exist (after series were removed): (owner, series) per label set."""
        used: dict[WorkloadKey, int] = {}
        for key, series in owners:
            used[key] = used.get(key, 0) + series
        self.used = used
