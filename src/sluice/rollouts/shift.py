"""The seed story's weight edits, as pure functions over a VirtualService's `spec.http`.

`sluice rollouts shift reviews --from v2 --to v3 --steps 10,20,30,100` drives the user's own VirtualService:
every HTTP route whose destinations are all the service's `from`/`to` subsets (the story's single route, or
each of several) gets `from` at 100 − w and `to` at w; a route that sends only to `from` gains a `to`
destination. Nothing else in the object changes (matches, retries, timeouts, other routes), as Argo Rollouts
edits only the weights of the routes it manages.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

__all__ = ["ShiftError", "host_names", "managed_routes", "with_weight", "parse_steps", "current_weight"]


class ShiftError(ValueError):
    """The VirtualService cannot be driven as asked (said in kubectl's style by the caller)."""


def host_names(service: str, namespace: str) -> frozenset[str]:
    """The names a destination `host` may use for a Service in `namespace` (short, namespaced, FQDN)."""
    return frozenset({service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                      f"{service}.{namespace}.svc.cluster.local"})


def _ours(dest: Any, hosts: frozenset[str], subsets: tuple[str, str]) -> bool:
    d = dest.get("destination") if isinstance(dest, dict) else None
    return isinstance(d, dict) and d.get("host") in hosts and d.get("subset") in subsets


def managed_routes(http: Sequence[Any], hosts: frozenset[str], stable: str, canary: str) -> list[int]:
    """Indexes of the HTTP routes whose every destination is the service's stable or canary subset."""
    out = []
    for i, route in enumerate(http):
        dests = route.get("route") if isinstance(route, dict) else None
        if isinstance(dests, list) and dests and all(_ours(d, hosts, (stable, canary)) for d in dests):
            out.append(i)
    return out


def with_weight(http: Sequence[Any], hosts: frozenset[str], stable: str, canary: str, weight: int) -> list[Any]:
    """`http` with `weight` % to the canary subset (the rest to stable) on every managed route."""
    if not 0 <= weight <= 100:
        raise ShiftError(f"a weight must be between 0 and 100, not {weight}")
    routes = managed_routes(http, hosts, stable, canary)
    if not routes:
        raise ShiftError(f"no HTTP route sends only to subsets {stable!r}/{canary!r} of the service")
    out = copy.deepcopy(list(http))
    for i in routes:
        dests = out[i]["route"]
        by_subset = {d["destination"]["subset"]: d for d in dests}
        template = by_subset.get(stable) or dests[0]
        new = []
        for subset, w in ((stable, 100 - weight), (canary, weight)):
            d = copy.deepcopy(by_subset.get(subset) or template)
            d["destination"] = {**d["destination"], "subset": subset}
            d["weight"] = w
            new.append(d)
        out[i]["route"] = new
    return out


def current_weight(http: Sequence[Any], hosts: frozenset[str], stable: str, canary: str) -> int | None:
    """The canary's weight on the first managed route (None when there is none)."""
    routes = managed_routes(http, hosts, stable, canary)
    if not routes:
        return None
    dests = http[routes[0]]["route"]
    if len(dests) == 1:
        return 100 if dests[0]["destination"]["subset"] == canary else 0
    return sum(int(d.get("weight") or 0) for d in dests if d["destination"]["subset"] == canary)


def parse_steps(text: str) -> list[int]:
    """`10,20,30,100` → [10, 20, 30, 100]: increasing weights between 1 and 100, ending at 100."""
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ShiftError(f'invalid --steps "{text}": expected comma-separated weights such as 10,20,30,100') from None
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
        raise ShiftError(f'invalid --steps "{text}": weights must increase, lie in 1..100 and end at 100')
    return steps
