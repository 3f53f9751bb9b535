"""`sluice describe`: kubectl-style key/value sections, with specific describers for the story's kinds plus Events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sluice.cli import printing
from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.targets import parse_targets
from sluice.client.discovery import ResourceInfo
from sluice.client.errors import ApiError, ClientError

__all__ = ["COMMANDS", "Writer", "describe_object"]

SKIP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}


class Writer:
    """kubectl's PrefixWriter: `Key:  value` lines, nested sections indented by two spaces, values aligned."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, str | None]] = []  # (level, key-or-text, value)

    def kv(self, level: int, key: str, value: Any, *, raw: bool = False) -> None:
        """A `Key:  value` line; `raw` prints the value as is (an empty string stays empty, not `<none>`)."""
        self.lines.append((level, f"{key}:" if key else "", str(value) if raw else _text(value)))

    def section(self, level: int, key: str) -> None:
        self.lines.append((level, f"{key}:", None))

    def text(self, level: int, text: str) -> None:
        self.lines.append((level, text, None))

    def render(self) -> str:
        # Like kubectl's tabwriter (padding 2): values line up across each run of consecutive
        # key/value lines, whatever their nesting; a line without a value ends the run.
        out: list[str] = []
        i = 0
        while i < len(self.lines):
            j = i
            while j < len(self.lines) and self.lines[j][2] is not None:
                j += 1
            if j > i:
                width = max(len("  " * lv + k) for lv, k, _ in self.lines[i:j]) + 2
                for lv, k, v in self.lines[i:j]:
                    out.append(("  " * lv + k).ljust(width) + (v or ""))
                i = j
            else:
                lv, k, _ = self.lines[i]
                out.append("  " * lv + k)
                i += 1
        return "\n".join(out) + "\n"


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def _map_lines(w: Writer, level: int, key: str, values: Any, skip: set[str] | None = None) -> None:
    """`Labels:  a=b` then continuation lines aligned under the first value, `<none>` when empty."""
    items = sorted((k, v) for k, v in (values or {}).items() if k not in (skip or set()))
    if not items:
        w.kv(level, key, "<none>")
        return
    sep = "=" if key in ("Labels", "Selector", "Node-Selectors") else ": "
    w.kv(level, key, f"{items[0][0]}{sep}{items[0][1]}")
    for k, v in items[1:]:
        w.kv(level, "", f"{k}{sep}{v}")


def _generic_value(w: Writer, level: int, key: str, value: Any) -> None:
    """Describe arbitrary JSON as nested `Key:` sections (kubectl's describer for custom resources)."""
    title = _title(key)
    if isinstance(value, dict):
        if not value:
            w.kv(level, title, "<none>")
            return
        w.section(level, title)
        for k in sorted(value):
            _generic_value(w, level + 1, k, value[k])
    elif isinstance(value, list):
        if not value:
            w.kv(level, title, "<none>")
        elif all(not isinstance(v, dict | list) for v in value):
            w.section(level, title)
            for v in value:
                w.text(level + 1, _text(v))
        else:
            w.section(level, title)
            for v in value:
                if isinstance(v, dict):
                    for k in sorted(v):
                        _generic_value(w, level + 1, k, v[k])
                else:
                    w.text(level + 1, _text(v))
    else:
        w.kv(level, title, _text(value))


_ACRONYMS = {"uid": "UID", "api": "API", "ip": "IP", "ips": "IPs", "url": "URL", "id": "ID", "http": "HTTP",
             "tcp": "TCP", "tls": "TLS", "dns": "DNS", "cidr": "CIDR"}


def _title(key: str) -> str:
    """kubectl's smartLabelFor: `creationTimestamp` → `Creation Timestamp`, `uid` → `UID`."""
    import re

    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[^A-Za-z0-9]+", key) or [key]
    out = []
    for w in words:
        low = w.lower()
        out.append(_ACRONYMS.get(low, w[:1].upper() + w[1:]))
    return " ".join(x for x in out if x.strip()) or key


def _header(w: Writer, obj: dict[str, Any], *, namespaced: bool = True, with_timestamp: bool = False) -> None:
    meta = obj.get("metadata") or {}
    w.kv(0, "Name", meta.get("name"))
    if namespaced:
        w.kv(0, "Namespace", meta.get("namespace"))
    if with_timestamp:
        w.kv(0, "CreationTimestamp", _timestamp(meta.get("creationTimestamp")))
    _map_lines(w, 0, "Labels", meta.get("labels"))
    _map_lines(w, 0, "Annotations", meta.get("annotations"), SKIP_ANNOTATIONS)


def _timestamp(value: Any) -> str:
    import datetime as dt

    if not isinstance(value, str):
        return "<unknown>"
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return when.strftime("%a, %d %b %Y %H:%M:%S %z")


def _describe_generic(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    _header(w, obj, namespaced=info.namespaced)
    w.kv(0, "API Version", obj.get("apiVersion"))
    w.kv(0, "Kind", obj.get("kind"))
    meta = obj.get("metadata") or {}
    w.section(0, "Metadata")
    for key in ("creationTimestamp", "generation", "resourceVersion", "uid"):
        if key in meta:
            w.kv(1, _title(key), meta[key])
    for key in sorted(obj):
        if key not in ("apiVersion", "kind", "metadata"):
            _generic_value(w, 0, key, obj[key])


def _describe_virtualservice(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    _header(w, obj)
    w.kv(0, "API Version", obj.get("apiVersion"))
    w.kv(0, "Kind", obj.get("kind"))
    spec = obj.get("spec") or {}
    w.section(0, "Spec")
    w.kv(1, "Hosts", spec.get("hosts"))
    w.kv(1, "Gateways", spec.get("gateways") or "mesh")
    for proto in ("http", "tcp", "tls"):
        for i, rule in enumerate(spec.get(proto) or []):
            if not isinstance(rule, dict):
                continue
            name = f" ({rule['name']})" if rule.get("name") else ""
            w.section(1, f"{proto.upper()} Route {i}{name}")
            for m in rule.get("match") or []:
                w.kv(2, "Match", _match_text(m))
            for d in rule.get("route") or []:
                if isinstance(d, dict):
                    w.kv(2, "Destination", _destination_text(d))
            for key in ("timeout", "retries", "fault", "mirror", "redirect", "rewrite"):
                if key in rule:
                    w.kv(2, _title(key), _compact(rule[key]))
    _generic_status(w, obj)


def _destination_text(d: dict[str, Any]) -> str:
    dest = d.get("destination") or {}
    text = str(dest.get("host") or "")
    port = (dest.get("port") or {}).get("number")
    if port:
        text += f":{port}"
    if dest.get("subset"):
        text += f" subset {dest['subset']}"
    if "weight" in d:
        text += f" weight {d['weight']}"
    return text


def _match_text(m: Any) -> str:
    return _compact(m)


def _compact(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, separators=(",", ":")) if isinstance(v, dict | list) else _text(v)


def _describe_destinationrule(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    _header(w, obj)
    w.kv(0, "API Version", obj.get("apiVersion"))
    w.kv(0, "Kind", obj.get("kind"))
    spec = obj.get("spec") or {}
    w.section(0, "Spec")
    w.kv(1, "Host", spec.get("host"))
    if spec.get("trafficPolicy"):
        w.kv(1, "Traffic Policy", _compact(spec["trafficPolicy"]))
    subsets = spec.get("subsets") or []
    if not subsets:
        w.kv(1, "Subsets", "<none>")
    else:
        w.section(1, "Subsets")
        for sub in subsets:
            if not isinstance(sub, dict):
                continue
            w.section(2, f"Name {sub.get('name')}")
            _map_lines(w, 3, "Labels", sub.get("labels"))
            if sub.get("trafficPolicy"):
                w.kv(3, "Traffic Policy", _compact(sub["trafficPolicy"]))
    _generic_status(w, obj)


def _generic_status(w: Writer, obj: dict[str, Any]) -> None:
    if obj.get("status"):
        _generic_value(w, 0, "status", obj["status"])


def _describe_service(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    _header(w, obj)
    spec = obj.get("spec") or {}
    _map_lines(w, 0, "Selector", spec.get("selector"))
    w.kv(0, "Type", spec.get("type") or "ClusterIP")
    if spec.get("ipFamilyPolicy"):
        w.kv(0, "IP Family Policy", spec["ipFamilyPolicy"])
    w.kv(0, "IP Families", spec.get("ipFamilies") or "<none>")
    w.kv(0, "IP", spec.get("clusterIP") or "", raw=True)
    w.kv(0, "IPs", spec.get("clusterIPs") or "<none>")
    for p in spec.get("ports") or []:
        if not isinstance(p, dict):
            continue
        name = p.get("name") or "<unset>"
        w.kv(0, "Port", f"{name}  {p.get('port')}/{p.get('protocol') or 'TCP'}")
        w.kv(0, "TargetPort", f"{p.get('targetPort', p.get('port'))}/{p.get('protocol') or 'TCP'}")
        w.kv(0, "Endpoints", _endpoint_text(obj.get("__endpoints__"), p))
    w.kv(0, "Session Affinity", spec.get("sessionAffinity") or "None")


def _endpoint_text(endpoints: Any, port: dict[str, Any]) -> str:
    """`127.0.1.4:9080,127.0.1.5:9080` for the ready addresses of the Service's Endpoints on this port."""
    if not isinstance(endpoints, dict):
        return "<none>"
    out = []
    for subset in endpoints.get("subsets") or []:
        ports = [p for p in subset.get("ports") or [] if not port.get("name") or p.get("name") == port.get("name")]
        for addr in subset.get("addresses") or []:
            for p in ports:
                out.append(f"{addr.get('ip')}:{p.get('port')}")
    return ",".join(out) or "<none>"


def _describe_deployment(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    _header(w, obj, with_timestamp=True)
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    w.kv(0, "Selector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>")
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    unavailable = status.get("unavailableReplicas", 0)
    w.kv(0, "Replicas", f"{desired} desired | {updated} updated | {total} total | {available} available | "
                        f"{unavailable} unavailable")
    strategy = spec.get("strategy") or {}
    w.kv(0, "StrategyType", strategy.get("type") or "RollingUpdate")
    w.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
    ru = strategy.get("rollingUpdate") or {}
    if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
        w.kv(0, "RollingUpdateStrategy",
             f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge")
    _pod_template(w, (spec.get("template") or {}))
    _conditions(w, status.get("conditions"), ("Type", "Status", "Reason"))
    del meta


def _pod_template(w: Writer, template: dict[str, Any]) -> None:
    spec = template.get("spec") or {}
    w.section(0, "Pod Template")
    _map_lines(w, 1, "Labels", (template.get("metadata") or {}).get("labels"))
    if spec.get("serviceAccountName"):
        w.kv(1, "Service Account", spec["serviceAccountName"])
    if spec.get("initContainers"):
        _containers(w, 1, spec["initContainers"], {}, "Init Containers")
    _containers(w, 1, spec.get("containers") or [], {})
    volumes = [str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, dict)]
    w.kv(1, "Volumes", volumes or "<none>")
    w.kv(1, "Node-Selectors", spec.get("nodeSelector") or "<none>")
    w.kv(1, "Tolerations", spec.get("tolerations") or "<none>")


def _containers(w: Writer, level: int, containers: list[Any], statuses: dict[str, dict[str, Any]],
                title: str = "Containers") -> None:
    """Pods list containers at level 0, pod templates at level 1; names and fields sit at fixed
    levels either way (kubectl's describer writes them at LEVEL_1/LEVEL_2). `title`: "Init Containers" for
    the init containers, which kubectl lists first."""
    w.section(level, title)
    name_prefix = " " if level else ""
    level = 0
    for c in containers:
        if not isinstance(c, dict):
            continue
        st = statuses.get(str(c.get("name")), {})
        w.text(1, f"{name_prefix}{c.get('name')}:")
        if statuses:
            w.kv(level + 2, "Container ID", st.get("containerID"))
        w.kv(level + 2, "Image", c.get("image"))
        ports = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in c.get("ports") or []
                 if isinstance(p, dict)]
        w.kv(level + 2, "Port", ", ".join(ports) or "<none>")
        if c.get("command"):
            w.kv(level + 2, "Command", " ".join(str(x) for x in c["command"]))
        if c.get("args"):
            w.kv(level + 2, "Args", " ".join(str(x) for x in c["args"]))
        if statuses:
            state = st.get("state") or {}
            phase = next(iter(state), "Waiting")
            w.kv(level + 2, "State", _title(phase))
            detail = state.get(phase) or {}
            if detail.get("reason"):
                w.kv(level + 3, "Reason", detail["reason"])
            if phase == "terminated":
                w.kv(level + 3, "Exit Code", detail.get("exitCode", 0))
            if detail.get("startedAt"):
                w.kv(level + 3, "Started", _timestamp(detail["startedAt"]))
            if detail.get("finishedAt"):
                w.kv(level + 3, "Finished", _timestamp(detail["finishedAt"]))
            w.kv(level + 2, "Ready", bool(st.get("ready")))
            w.kv(level + 2, "Restart Count", st.get("restartCount", 0))
        env = [e for e in c.get("env") or [] if isinstance(e, dict)]
        if env:
            w.section(level + 2, "Environment")
            for e in env:
                w.kv(level + 3, str(e.get("name")), e.get("value") if "value" in e else "<set from source>")
        else:
            w.kv(level + 2, "Environment", "<none>")
        mounts = [f"{m.get('mountPath')} from {m.get('name')}" for m in c.get("volumeMounts") or []
                  if isinstance(m, dict)]
        w.kv(level + 2, "Mounts", mounts or "<none>")


def _conditions(w: Writer, conditions: Any, columns: tuple[str, ...]) -> None:
    if not conditions:
        return
    w.section(0, "Conditions")
    rows = [list(columns), ["-" * len(c) for c in columns]]
    for c in conditions:
        if isinstance(c, dict):
            rows.append([str(c.get(col[0].lower() + col[1:]) or "") for col in columns])
    for line in printing.layout(rows):
        w.text(1, line.rstrip())


def _describe_pod(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    w.kv(0, "Name", meta.get("name"))
    w.kv(0, "Namespace", meta.get("namespace"))
    w.kv(0, "Node", spec.get("nodeName") or "<none>")
    w.kv(0, "Start Time", _timestamp(status.get("startTime")) if status.get("startTime") else "<unset>")
    _map_lines(w, 0, "Labels", meta.get("labels"))
    _map_lines(w, 0, "Annotations", meta.get("annotations"), SKIP_ANNOTATIONS)
    w.kv(0, "Status", "Terminating" if meta.get("deletionTimestamp") else status.get("phase") or "Pending")
    w.kv(0, "IP", status.get("podIP"))
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict) and o.get("controller")]
    if owners:
        w.kv(0, "Controlled By", f"{owners[0].get('kind')}/{owners[0].get('name')}")
    statuses: dict[str, dict[str, Any]] = {
        str(s.get("name")): s for s in status.get("containerStatuses") or [] if isinstance(s, dict)}
    if spec.get("initContainers"):
        inits: dict[str, dict[str, Any]] = {
            str(s.get("name")): s for s in status.get("initContainerStatuses") or [] if isinstance(s, dict)}
        _containers(w, 0, spec["initContainers"], inits or {"": {}}, "Init Containers")
    # A placeholder entry makes the container section show state lines even before the first status.
    _containers(w, 0, spec.get("containers") or [], statuses or {"": {}})
    _conditions(w, status.get("conditions"), ("Type", "Status"))


def _describe_namespace(w: Writer, obj: dict[str, Any], info: ResourceInfo) -> None:
    _header(w, obj, namespaced=False)
    w.kv(0, "Status", (obj.get("status") or {}).get("phase") or "Active")


DESCRIBERS: dict[tuple[str, str], Callable[[Writer, dict[str, Any], ResourceInfo], None]] = {
    ("", "Pod"): _describe_pod,
    ("apps", "Deployment"): _describe_deployment,
    ("", "Service"): _describe_service,
    ("", "Namespace"): _describe_namespace,
    ("networking.istio.io", "VirtualService"): _describe_virtualservice,
    ("networking.istio.io", "DestinationRule"): _describe_destinationrule,
}


def _events(s: Session, obj: dict[str, Any], info: ResourceInfo) -> list[dict[str, Any]] | None:
    """Events about this object (filtered client-side, so any server field-selector support is enough)."""
    meta = obj.get("metadata") or {}
    try:
        events_info = s.client.resolve("events")
        items = s.client.list(events_info, meta.get("namespace") or None).get("items") or []
    except (ApiError, ClientError):
        return None
    uid, name = meta.get("uid"), meta.get("name")
    out = []
    for e in items:
        ref = e.get("involvedObject") or e.get("regarding") or {}
        if ref.get("kind") == info.kind and ref.get("name") == name and (not ref.get("uid") or ref.get("uid") == uid):
            out.append(e)
    return sorted(out, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _write_events(w: Writer, events: list[dict[str, Any]] | None) -> None:
    if events is None:
        return
    if not events:
        w.kv(0, "Events", "<none>")
        return
    w.section(0, "Events")
    rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
    for e in events:
        when = e.get("lastTimestamp") or e.get("eventTime") or (e.get("metadata") or {}).get("creationTimestamp")
        count = e.get("count") or 1
        age = printing.age(when)
        if count > 1:
            age = f"{age} (x{count} over {printing.age(e.get('firstTimestamp') or when)})"
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        rows.append([str(e.get("type") or ""), str(e.get("reason") or ""), age, str(source),
                     str(e.get("message") or "").strip()])
    for line in printing.layout(rows):
        w.text(1, line)


def _related(s: Session, type_: str, name: str, ns: str | None) -> dict[str, Any] | None:
    try:
        return s.client.get(s.client.resolve(type_), name, ns)
    except (ApiError, ClientError):
        return None


def describe_object(obj: dict[str, Any], info: ResourceInfo, events: list[dict[str, Any]] | None) -> str:
    w = Writer()
    DESCRIBERS.get((info.group, info.kind), _describe_generic)(w, obj, info)
    if info.kind != "Namespace":
        _write_events(w, events)
    return w.render()


@click.command("describe")
@click.argument("args", nargs=-1, required=True)
@click.option("-l", "--selector", help="Label selector.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Across all namespaces.")
@click.option("--show-events/--no-show-events", default=True, show_default=True, help="Show events.")
@global_options
def describe_cmd(args: tuple[str, ...], selector: str | None, all_namespaces: bool, show_events: bool) -> None:
    """Show details of a resource or group of resources (`sluice describe vs reviews`)."""
    s = session()
    objects: list[tuple[dict[str, Any], ResourceInfo]] = []
    errors: list[str] = []
    for t in parse_targets(s, args):
        ns = s.namespace if t.info.namespaced else None
        if t.name is not None:
            try:
                obj = s.client.get(t.info, t.name, ns)
                if t.info.kind == "Service":
                    obj["__endpoints__"] = _related(s, "endpoints", t.name, ns)
                objects.append((obj, t.info))
            except ApiError as e:
                errors.append(format_api_error(e))
        else:
            scope = None if all_namespaces else ns
            listed = s.client.list(t.info, scope, label_selector=selector).get("items") or []
            objects.extend((o, t.info) for o in listed)
    if not objects and not errors:
        click.echo(f"No resources found in {s.namespace} namespace.", err=True)
    for i, (obj, info) in enumerate(objects):
        if i:
            click.echo("\n")
        events = _events(s, obj, info) if show_events else None
        click.echo(describe_object(obj, info, events), nl=False)
    if errors:
        raise CliError("\n".join(errors), raw=True)


COMMANDS = [describe_cmd]
