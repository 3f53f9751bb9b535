"""istiod-style debug endpoints over the xDS server: `/debug/syncz`, `/debug/config_dump` and
`/debug/rejectedz`.

`routes(xds)` is mounted by the API server (behind its authentication); `sluice proxy-status` reads
`/debug/syncz`, `sluice analyze` reads `/debug/rejectedz` (the Istio config left out of pushes because
translating it failed). `config_dump` answers what the control plane last published for a proxy, shaped like
Envoy's admin `/config_dump` (snake_case field names, one section per resource type) so one parser
reads either.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf import json_format

from sluice import mesh
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from sluice.xds.server import XdsServer

__all__ = ["routes", "config_dump", "find_node", "syncz", "GENERATION_HEADER", "SYNCED_HEADER"]

_ADMIN = "type.googleapis.com/envoy.admin.v3."


def find_node(xds: XdsServer, proxy_id: str) -> str | None:
    """The node id for `<pod>.<namespace>` (or a full node id) among connected and cached proxies."""
    candidates = set(xds.cache.nodes()) | {p.node_id for p in xds.status}
    if proxy_id in candidates:
        return proxy_id
    for node_id in sorted(candidates):
        parsed = mesh.parse_node_id(node_id)
        if parsed and f"{parsed[2]}.{parsed[3]}" == proxy_id:
            return node_id
    return None


def _as_dict(packed: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(packed, preserving_proto_field_name=True)
    redacted: dict[str, Any] = _redacted(out)
    return redacted


def _redacted(node: Any) -> Any:
    """Private keys (a gateway's credentials) shown as Envoy's admin shows them: `[redacted]`."""
    if isinstance(node, dict):
        return {k: {"inline_string": "[redacted]"} if k == "private_key" else _redacted(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_redacted(v) for v in node]
    return node


def config_dump(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot as an Envoy-admin-shaped config dump."""
    configs: list[dict[str, Any]] = []
    ts = snapshot.types.get(CLUSTER)
    if ts is not None:
        configs.append({"@type": _ADMIN + "ClustersConfigDump", "version_info": ts.version,
                        "dynamic_active_clusters": [{"version_info": ts.version, "cluster": _as_dict(r)}
                                                    for r in ts.resources.values()]})
    ts = snapshot.types.get(LISTENER)
    if ts is not None:
        configs.append({"@type": _ADMIN + "ListenersConfigDump", "version_info": ts.version,
                        "dynamic_listeners": [{"name": name, "active_state": {"version_info": ts.version,
                                                                              "listener": _as_dict(r)}}
                                              for name, r in ts.resources.items()]})
    ts = snapshot.types.get(ROUTE)
    if ts is not None:
        configs.append({"@type": _ADMIN + "RoutesConfigDump",
                        "dynamic_route_configs": [{"version_info": ts.version, "route_config": _as_dict(r)}
                                                  for r in ts.resources.values()]})
    ts = snapshot.types.get(ENDPOINT)
    if ts is not None:
        configs.append({"@type": _ADMIN + "EndpointsConfigDump",
                        "dynamic_endpoint_configs": [{"version_info": ts.version, "endpoint_config": _as_dict(r)}
                                                     for r in ts.resources.values()]})
    return {"configs": configs}


GENERATION_HEADER = "X-Sluice-Status-Generation"
SYNCED_HEADER = "X-Sluice-Synced"  # `?until=synced`: whether the wait ended synced (else it timed out)
_LONG_POLL = 10.0  # seconds a `?after=` request waits at most


def syncz(xds: XdsServer, proxies: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Every proxy's sync state (of the `proxies` named `<pod>.<namespace>` only, when given); a proxy whose
    current config could not be generated carries the reason in `error`, and a type it holds at the latest
    version the cache has is STALE, not SYNCED (the cache is behind the store for it)."""
    out = []
    for p in xds.status_of(proxies):
        row = p.to_json()
        error = xds.pusher.node_errors.get(p.node_id)
        if error:
            row["error"] = error
            for view in row["types"].values():
                if view["state"] == "SYNCED":
                    view["state"] = "STALE"
        out.append(row)
    return out


def routes(xds: XdsServer) -> list[web.RouteDef]:
    async def sync_status(request: web.Request) -> web.Response:
        # `?proxy=<pod>.<namespace>,…` narrows the answer (watching a few proxies of many stays cheap);
        # `?after=<generation>` waits (up to 10 s) for a status change after the one the header of an earlier
        # answer named, so a watcher need not poll; `?until=synced` (below) waits for the sync itself.
        wanted = request.query.get("proxy")
        names = frozenset(n.strip() for n in wanted.split(",") if n.strip()) if wanted is not None else None
        after = request.query.get("after")
        until = request.query.get("until")
        if after is not None and not after.isdigit():
            return web.json_response({"error": "after must be a status generation (a number)"}, status=400)
        if until is not None and until != "synced":
            return web.json_response({"error": "until must be \"synced\""}, status=400)
        if until is not None:
            # `?until=synced`: answer once no change waits to be pushed and the proxies asked about (all without
            # `proxy=`) hold the latest config, or after 10 s, with the ones that do not (none, unless it timed
            # out): one request per change for a watcher (`istioctl x wait`'s question), however many pushes and
            # ACKs it takes, and a small answer.
            synced = await xds.wait_proxies_synced(names, _LONG_POLL)
            rows = [] if synced else [r for r in syncz(xds, names)
                                      if any(t["state"] != "SYNCED" for t in r["types"].values())]
            return web.json_response(rows, headers={GENERATION_HEADER: str(xds.status_generation),
                                                    SYNCED_HEADER: "true" if synced else "false"})
        if after is not None:
            await xds.status_changed(int(after), _LONG_POLL)
        return web.json_response(syncz(xds, names),
                                 headers={GENERATION_HEADER: str(xds.status_generation)})

    async def rejected(_request: web.Request) -> web.Response:
        items = sorted(xds.pusher.rejected.values(), key=lambda r: r.key)
        return web.json_response([r.to_json() for r in items])

    async def dump(request: web.Request) -> web.Response:
        proxy_id = request.query.get("proxyID", "")
        if not proxy_id:
            return web.json_response({"error": "proxyID is required: ?proxyID=<pod>.<namespace>"}, status=400)
        node_id = find_node(xds, proxy_id)
        snapshot = xds.cache.get_snapshot(node_id) if node_id else None
        if snapshot is None:
            return web.json_response({"error": f"proxy {proxy_id} is not connected or has no config"}, status=404)
        return web.json_response(config_dump(snapshot))

    return [web.get("/debug/syncz", sync_status), web.get("/debug/config_dump", dump),
            web.get("/debug/rejectedz", rejected)]
