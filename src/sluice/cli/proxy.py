"""`sluice proxy-status` and `sluice proxy-config`: what the control plane sent, and what each Envoy holds.

`proxy-status` reads the daemon's `/debug/syncz` and `/debug/rejectedz` (see `sluice.xds.debug`) through the
API client.
`proxy-config` reads the pod's Envoy admin (`/config_dump`, `/clusters?format=json`) through the daemon's
`/debug/envoy/NS/POD/PATH` (the admin listens only inside the pod, or on a 0600 Unix socket in loopback mode,
as istioctl port-forwards to it), then prints it in istioctl's layouts.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Sequence
from typing import Any

import click

from sluice import mesh
from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError
from sluice.cli.printing import dump_json, dump_yaml
from sluice.client.errors import ApiError

__all__ = ["COMMANDS", "status_rows", "cluster_rows", "listener_rows", "route_rows", "endpoint_rows",
           "tab_table", "split_pod"]

_PAD = 5  # istioctl's tabwriter padding
_ISTIO_CONFIG = "istio"
_CONTROL_PLANE = "sluice"
_TYPES = ("CDS", "LDS", "EDS", "RDS")


def tab_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded like Go's tabwriter with padding 5 (the last column is not padded)."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = []
    for r in table:
        cells = [c.ljust(widths[i] + _PAD) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def split_pod(arg: str, s: Session) -> tuple[str, str]:
    """`pod.ns` → (pod, ns); `pod` → (pod, the current namespace, read only then)."""
    if "." in arg:
        pod, _, ns = arg.rpartition(".")
        return pod, ns
    return arg, s.namespace


# ------------------------------------------------------------------ proxy-status
def _state_text(view: dict[str, Any] | None) -> str:
    if not view:
        return "NOT SENT"
    state = str(view.get("state") or "NOT SENT")
    if state == "STALE" and not view.get("acked"):
        return "STALE (Never Acknowledged)"
    return state


def status_rows(syncz: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for p in sorted(syncz, key=lambda p: str(p.get("proxy"))):
        types = p.get("types") or {}
        rows.append([str(p.get("proxy")), str(p.get("cluster_id") or "Kubernetes"),
                     *[_state_text(types.get(t)) for t in _TYPES], "NOT SENT", _CONTROL_PLANE,
                     str(p.get("istio_version") or "")])
    return rows


def rejected_config(s: Session) -> list[dict[str, Any]]:
    """Config the daemon leaves out of every push (`/debug/rejectedz`); none from a daemon without it."""
    try:
        data = s.client.rest.request("GET", "/debug/rejectedz").json()
    except ApiError as e:
        if e.not_found:
            return []
        raise
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


@click.command("proxy-status")
@click.argument("proxy", required=False)
@global_options
def proxy_status_cmd(proxy: str | None) -> None:
    """The xDS sync state of every sidecar and gateway (or of one: POD[.NAMESPACE])."""
    s = session()
    data = s.client.rest.request("GET", "/debug/syncz").json() or []
    if proxy:
        pod, ns = split_pod(proxy, s)
        data = [p for p in data if p.get("pod") == pod and p.get("namespace") == ns]
        if not data:
            raise CliError(f"proxy {pod}.{ns} is not connected to the control plane")
    headers = ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]
    click.echo(tab_table(headers, status_rows(data)), nl=False)
    for p in data:
        if p.get("error"):
            click.echo(f"{p.get('proxy')}: its current config could not be generated (it keeps the previous "
                       f"one): {p.get('error')}", err=True)
        for short, view in (p.get("types") or {}).items():
            if view.get("state") == "NACK":
                click.echo(f"{p.get('proxy')}: {short} version {view.get('nack_version')} rejected: "
                           f"{view.get('nack_error')}", err=True)
    for r in rejected_config(s):
        click.echo(f"{r.get('kind')} {r.get('namespace')}/{r.get('name')} is not pushed to any proxy (the rest of "
                   f"the config is): {r.get('error')}", err=True)
    if proxy:
        [p] = data
        click.echo(f"\nConnected since {p.get('connected_since')} from {p.get('peer')}")
        for short, view in (p.get("types") or {}).items():
            click.echo(f"  {short}: sent {view.get('sent') or '-'}, acked {view.get('acked') or '-'}, "
                       f"latest {view.get('latest') or '-'}")


# ------------------------------------------------------------------ Envoy admin
class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _read_admin(admin: str, path: str) -> bytes:
    """GET `path` from an Envoy admin at `host:port` or on a Unix socket (a path)."""
    if admin.startswith("/"):
        conn: http.client.HTTPConnection = _UnixConnection(admin)
    else:
        host, _, port = admin.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}: {body[:200].decode(errors='replace')}")
        return body
    finally:
        conn.close()


def _admin_get(s: Session, pod_arg: str, path: str, admin: str | None) -> Any:
    pod, ns = split_pod(pod_arg, s)
    if admin is not None:  # a test or a debugging user pointing at an Envoy admin directly
        try:
            return json.loads(_read_admin(admin, path))
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise CliError(f"failed to read {path} from the Envoy admin at {admin}: {e}") from None
    obj = s.client.get(s.client.resolve("pods"), pod, ns)
    containers = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
    if mesh.SIDECAR_CONTAINER not in containers:
        raise CliError(f"pod {pod} in namespace {ns} has no {mesh.SIDECAR_CONTAINER} sidecar")
    # The admin listens inside the pod only (as istioctl, which port-forwards to it): the daemon reads it.
    try:
        return s.client.rest.request("GET", f"/debug/envoy/{ns}/{pod}{path}").json()
    except ApiError as e:
        raise CliError(f"failed to read {path} from the Envoy admin of {pod}.{ns}: {e}") from None


def _section(dump: dict[str, Any], suffix: str) -> dict[str, Any]:
    for section in dump.get("configs") or []:
        # Match the whole message name: "ScopedRoutesConfigDump" also ends with "RoutesConfigDump".
        if str(section.get("@type", "")).rsplit(".", 1)[-1] == suffix:
            return dict(section)
    return {}


def _istio_ref(metadata: dict[str, Any] | None, kind: str) -> str:
    """`name.namespace` of the Istio config a resource came from (filter metadata istio.config)."""
    path = str(((metadata or {}).get("filter_metadata") or {}).get(_ISTIO_CONFIG, {}).get("config") or "")
    parts = path.strip("/").split("/")
    if len(parts) >= 7 and parts[5] == kind:
        return f"{parts[6]}.{parts[4]}"
    return ""


def cluster_rows(clusters: list[dict[str, Any]], name: str | None = None, port: int | None = None) -> list[list[str]]:
    rows = []
    for c in clusters:
        cname = str(c.get("name"))
        parts = cname.split("|")
        if len(parts) == 4 and parts[0] in ("inbound", "outbound"):
            direction, cport, subset, fqdn = parts
        else:
            direction, cport, subset, fqdn = "-", "-", "-", cname
        if name and name not in (fqdn, cname):
            continue
        if port is not None and cport != str(port):
            continue
        ctype = c.get("type") or ("EDS" if "eds_cluster_config" in c else "STATIC")
        rows.append([fqdn, cport, subset or "-", direction, str(ctype),
                     _istio_ref(c.get("metadata"), "destination-rule")])
    return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3]))


def _listener_destination(chain: dict[str, Any]) -> str:
    for f in chain.get("filters") or []:
        cfg = f.get("typed_config") or {}
        if str(cfg.get("@type", "")).endswith("HttpConnectionManager"):
            if "rds" in cfg:
                return f"Route: {cfg['rds'].get('route_config_name')}"
            vhosts = (cfg.get("route_config") or {}).get("virtual_hosts") or []
            return f"Inline Route: {vhosts[0].get('name')}" if vhosts else "Inline Route"
        if str(cfg.get("@type", "")).endswith("TcpProxy"):
            return f"Cluster: {cfg.get('cluster')}"
    return "Non-HTTP/Non-TCP"


def _listener_match(chain: dict[str, Any]) -> str:
    m = chain.get("filter_chain_match") or {}
    parts = []
    if m.get("transport_protocol"):
        parts.append(f"Trans: {m['transport_protocol']}")
    if m.get("application_protocols"):
        parts.append("App: " + ",".join(m["application_protocols"]))
    if m.get("server_names"):
        parts.append("SNI: " + ",".join(m["server_names"]))
    if m.get("destination_port"):
        parts.append(f"Addr: *:{m['destination_port']}")
    return "; ".join(parts) or "ALL"


def listener_rows(listeners: list[dict[str, Any]], port: int | None = None) -> list[list[str]]:
    rows = []
    for lst in listeners:
        sock = (lst.get("address") or {}).get("socket_address") or {}
        addrs = [str(sock.get("address", ""))] + [
            str(((a.get("address") or {}).get("socket_address") or {}).get("address", ""))
            for a in lst.get("additional_addresses") or []]
        lport = str(sock.get("port_value", ""))
        if port is not None and lport != str(port):
            continue
        chains = list(lst.get("filter_chains") or [])
        if lst.get("default_filter_chain"):
            chains.append(lst["default_filter_chain"])
        for chain in chains or [{}]:
            rows.append([",".join(addrs), lport, _listener_match(chain), _listener_destination(chain)])
    return rows


def _domains(domains: list[str]) -> str:
    # istioctl hides the host:port twins and shows at most two names.
    names = [d for d in domains if not any(d == f"{o}:{d.rsplit(':', 1)[-1]}" for o in domains if o != d)]
    names = names or domains
    if len(names) <= 2:
        return ", ".join(names)
    return f"{', '.join(names[:2])} + {len(names) - 2} more..."


def _route_match(route: dict[str, Any]) -> str:
    m = route.get("match") or {}
    if "prefix" in m:
        return f"{m['prefix'] or '/'}*"
    if "path" in m:
        return str(m["path"])
    if "safe_regex" in m:
        return str(m["safe_regex"].get("regex"))
    if "path_separated_prefix" in m:
        return f"{m['path_separated_prefix']}*"
    return "/*"


def route_rows(configs: list[dict[str, Any]], name: str | None = None) -> list[list[str]]:
    rows = []
    for rc in configs:
        rname = str(rc.get("name", ""))
        if name and rname != name:
            continue
        for vh in rc.get("virtual_hosts") or []:
            for route in vh.get("routes") or [{}]:
                rows.append([rname, str(vh.get("name", "")), _domains(list(vh.get("domains") or [])),
                             _route_match(route), _istio_ref(route.get("metadata"), "virtual-service")])
    return rows


def endpoint_rows(clusters_json: dict[str, Any], name: str | None = None, port: int | None = None) -> list[list[str]]:
    rows = []
    for c in clusters_json.get("cluster_statuses") or []:
        cname = str(c.get("name"))
        if name and cname != name:
            continue
        for h in c.get("host_statuses") or []:
            sock = (h.get("address") or {}).get("socket_address") or {}
            hport = sock.get("port_value")
            if port is not None and str(hport) != str(port):
                continue
            health = h.get("health_status") or {}
            status = str(health.get("eds_health_status") or "HEALTHY")
            outlier = "FAILED" if health.get("failed_outlier_check") else "OK"
            rows.append([f"{sock.get('address')}:{hport}" if hport else str(sock.get("address")), status, outlier,
                         cname])
    return sorted(rows, key=lambda r: (r[3], r[0]))


def _out(obj: Any, output: str | None) -> None:
    click.echo(dump_yaml(obj) if output == "yaml" else dump_json(obj), nl=False)


def _show(kind: str, dump: dict[str, Any], s: Session, pod: str, admin: str | None, output: str | None,
          name: str | None, port: int | None) -> None:
    if kind == "clusters":
        items = [c.get("cluster") or {} for key in ("static_clusters", "dynamic_active_clusters")
                 for c in _section(dump, "ClustersConfigDump").get(key) or []]
        if output:
            _out([c for c in items if not name or name in str(c.get("name"))], output)
            return
        headers = ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
        click.echo(tab_table(headers, cluster_rows(items, name, port)), nl=False)
    elif kind == "listeners":
        section = _section(dump, "ListenersConfigDump")
        items = [lst.get("listener") or {} for lst in section.get("static_listeners") or []] + \
            [(lst.get("active_state") or {}).get("listener") or {} for lst in section.get("dynamic_listeners") or []]
        if output:
            _out(items, output)
            return
        headers = ["ADDRESSES", "PORT", "MATCH", "DESTINATION"]
        click.echo(tab_table(headers, listener_rows(items, port)), nl=False)
    elif kind == "routes":
        section = _section(dump, "RoutesConfigDump")
        items = [r.get("route_config") or {} for key in ("static_route_configs", "dynamic_route_configs")
                 for r in section.get(key) or []]
        if output:
            _out([r for r in items if not name or r.get("name") == name], output)
            return
        headers = ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
        click.echo(tab_table(headers, route_rows(items, name)), nl=False)
    elif kind == "endpoints":
        data = _admin_get(s, pod, "/clusters?format=json", admin)
        if output:
            _out(data, output)
            return
        headers = ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]
        click.echo(tab_table(headers, endpoint_rows(data, name, port)), nl=False)
    elif kind == "bootstrap":
        _out(_section(dump, "BootstrapConfigDump").get("bootstrap") or {}, output or "json")


_KINDS = {"routes": "routes", "route": "routes", "clusters": "clusters", "cluster": "clusters",
          "listeners": "listeners", "listener": "listeners", "endpoints": "endpoints", "endpoint": "endpoints",
          "bootstrap": "bootstrap", "all": "all"}


@click.command("proxy-config")
@click.argument("kind", type=click.Choice(sorted(_KINDS)))
@click.argument("pod")
@click.option("-o", "--output", type=click.Choice(["json", "yaml", "short"]), help="Output format.")
@click.option("--name", help="Only this cluster FQDN / route configuration / endpoint cluster.")
@click.option("--port", type=int, help="Only this port.")
@click.option("--admin-address", hidden=True,
              help="Read the Envoy admin at this HOST:PORT or Unix socket path directly.")
@global_options
def proxy_config_cmd(kind: str, pod: str, output: str | None, name: str | None, port: int | None,
                     admin_address: str | None) -> None:
    """What one sidecar's Envoy holds: routes|clusters|listeners|endpoints|bootstrap|all POD[.NAMESPACE]."""
    s = session()
    output = None if output == "short" else output
    what = _KINDS[kind]
    dump = {} if what == "endpoints" else _admin_get(s, pod, "/config_dump", admin_address)
    if what != "all":
        _show(what, dump, s, pod, admin_address, output, name, port)
        return
    if output:
        _out(dump, output)
        return
    for i, sub in enumerate(("clusters", "listeners", "routes")):
        if i:
            click.echo()
        _show(sub, dump, s, pod, admin_address, None, name, port)


COMMANDS = [proxy_status_cmd, proxy_config_cmd]
