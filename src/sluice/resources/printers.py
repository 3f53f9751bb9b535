"""`kubectl get` tables: column definitions and row cells per kind, as kube-apiserver renders them.

Callers: the API server answers `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` with
:func:`table` (a `meta.k8s.io/v1` `Table`); the `sluice` CLI prints the same columns client-side
with :func:`columns` and :func:`row_cells`.

Built-in kinds follow `kubernetes/pkg/printers/internalversion/printers.go` (generated with
`Wide: true`, as the server does, so priority-1 cells are always present); Istio kinds follow
the CRDs' `additionalPrinterColumns` (istio/api `kubernetes/customresourcedefinitions.gen.yaml`)
rendered like apiextensions' table convertor; ages use :func:`human_duration`
(`apimachinery/pkg/util/duration.HumanDuration`). Pure functions: the caller passes `now`.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sluice.kube.selectors import SelectorError, format_labels, from_label_selector_dict
from sluice.objects import mapping as _map

__all__ = ["human_duration", "columns", "row_cells", "table", "parse_time", "format_endpoints"]

# --------------------------------------------------------------------------------------------------
# Durations and timestamps
# --------------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """`duration.HumanDuration`: a succinct duration with ~2-3 significant figures (`5m10s`, `2d3h`)."""
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`2024-01-01T00:00:00Z`, fractional seconds allowed) or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    """`translateTimestampSince`: `<unknown>` for a missing timestamp."""
    ts = parse_time(value)
    if ts is None:
        return "<unknown>"
    return human_duration((_aware(now) - ts).total_seconds())


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------------------------------

_NAME_DOC: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CRD_AGE_DOC: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC. Populated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/api-conventions.md#metadata"
)

_Col = tuple[str, str, str, str, int]  # name, type, format, description, priority


def _name(description: str = _NAME_DOC) -> _Col:
    return ("Name", "string", "name", description, 0)


def _col(name: str, description: str, type_: str = "string", priority: int = 0) -> _Col:
    return (name, type_, "", description, priority)


_AGE: Final = _col("Age", _AGE_DOC)
_CRD_AGE: Final = _col("Age", _CRD_AGE_DOC, "date")
_ARGO_AGE: Final = _col("Age", "Time since resource was created", "date")
_CONTAINERS: Final = _col("Containers", "Names of each container in the template.", priority=1)
_IMAGES: Final = _col("Images", "Images referenced by each container in the template.", priority=1)

_COLUMNS: Final[dict[str, tuple[_Col, ...]]] = {
    "Pod": (
        _name(),
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last container "
            "in this pod has restarted.",
        ),
        _AGE,
        _col("IP", "podIP address allocated to the pod. Routable at least within the cluster.", priority=1),
        _col("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node.", priority=1),
        _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", priority=1),
    ),
    "Deployment": (
        _name(),
        _col("Ready", "Number of the pod with ready state"),
        _col("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        _col("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", priority=1),
    ),
    "ReplicaSet": (
        _name(),
        _col("Desired", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#what-is-a-replicaset", "integer"),
        _col("Current", "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#what-is-a-replicaset", "integer"),
        _col("Ready", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.", "integer"),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", priority=1),
    ),
    "Service": (
        _name(),
        _col("Type", "type determines how the Service is exposed."),
        _col("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
        _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        _col("Port(s)", "The list of ports that are exposed by this service."),
        _AGE,
        _col("Selector", "Route service traffic to pods with label keys and values matching this selector.", priority=1),
    ),
    "Endpoints": (
        _name(),
        _col("Endpoints", "The set of all endpoints is the union of all subsets."),
        _AGE,
    ),
    "Namespace": (_name(), _col("Status", "The status of the namespace"), _AGE),
    "ServiceAccount": (
        _name(),
        _col("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        _AGE,
    ),
    "ConfigMap": (_name(), _col("Data", "Data contains the configuration data."), _AGE),
    "Secret": (
        _name(),
        _col("Type", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
        _col("Data", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
        _AGE,
    ),
    "Event": (
        _col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        _col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        _col("Reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        _col("Object", "The object that this event is about."),
        _col("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.", priority=1),
        _col("Source", "The component reporting this event. Should be a short machine understandable string.", priority=1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", priority=1),
        _col("Count", "The number of times this event has occurred.", priority=1),
        ("Name", "string", "name", _NAME_DOC, 1),
    ),
    "Scale": (
        ("Name", "string", "", _NAME_DOC, 0),
        _col("Desired", "replicas is the desired number of instances for the scaled object.", "integer"),
        _col("Available", "replicas is the actual number of observed instances of the scaled object.", "integer"),
        _AGE,
    ),
    # Istio CRDs: Name + additionalPrinterColumns (apiextensions' table convertor).
    "VirtualService": (
        _name(),
        _col("Gateways", "The names of gateways and sidecars that should apply these routes"),
        _col("Hosts", "The destination hosts to which traffic is being sent"),
        _CRD_AGE,
    ),
    "DestinationRule": (
        _name(),
        _col("Host", "The name of a service from the service registry"),
        _col(
            "Age",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
            "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
            "value. It is represented in RFC3339 form and is in UTC. Populated by the system. Read-only. Null for "
            "lists. For more information, see [Kubernetes API Conventions]"
            "(https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata)",
            "date",
        ),
    ),
    "ServiceEntry": (
        _name(),
        _col("Hosts", "The hosts associated with the ServiceEntry"),
        _col("Location", "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"),
        _col("Resolution", "Service resolution mode for the hosts (NONE, STATIC, or DNS)"),
        _CRD_AGE,
    ),
    # Argo Rollouts CRDs (manifests/crds/*.yaml additionalPrinterColumns).
    "Rollout": (
        _name(),
        _col("Desired", "Number of desired pods", "integer"),
        _col("Current", "Total number of non-terminated pods targeted by this rollout", "integer"),
        _col("Up-to-date", "Total number of non-terminated pods targeted by this rollout that have the desired "
             "template spec", "integer"),
        _col("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this "
             "rollout", "integer"),
        _ARGO_AGE,
    ),
    "AnalysisTemplate": (_name(), _ARGO_AGE),
    "ClusterAnalysisTemplate": (_name(), _ARGO_AGE),
    "AnalysisRun": (_name(), _col("Status", "AnalysisRun status"), _ARGO_AGE),
    "Experiment": (_name(), _col("Status", "Experiment status"), _ARGO_AGE),
}
_DEFAULT_COLUMNS: Final = (_name(), _CRD_AGE)  # Gateway and any kind without printer columns

# JSONPath of each CRD printer column after Name (apiextensions renders them generically).
_CRD_PATHS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "VirtualService": (("spec", "gateways"), ("spec", "hosts"), ("metadata", "creationTimestamp")),
    "DestinationRule": (("spec", "host"), ("metadata", "creationTimestamp")),
    "ServiceEntry": (
        ("spec", "hosts"),
        ("spec", "location"),
        ("spec", "resolution"),
        ("metadata", "creationTimestamp"),
    ),
    "Rollout": (("spec", "replicas"), ("status", "replicas"), ("status", "updatedReplicas"),
                ("status", "availableReplicas"), ("metadata", "creationTimestamp")),
    "AnalysisRun": (("status", "phase"), ("metadata", "creationTimestamp")),
    "Experiment": (("status", "phase"), ("metadata", "creationTimestamp")),
}

_KIND_ALIASES: Final = {k.lower(): k for k in (*_COLUMNS, "Gateway")}


def _canonical(kind: str) -> str:
    return _KIND_ALIASES.get(kind.lower(), kind)


def columns(kind: str) -> list[dict[str, Any]]:
    """The `columnDefinitions` of `kind`'s table (fresh dicts; priority 1 = shown with `-o wide`)."""
    cols = _COLUMNS.get(_canonical(kind), _DEFAULT_COLUMNS)
    return [
        {"name": name, "type": type_, "format": fmt, "description": desc, "priority": priority}
        for name, type_, fmt, desc, priority in cols
    ]


# --------------------------------------------------------------------------------------------------
# Row cells
# --------------------------------------------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        return int(value)
    return default


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name_of(obj: Mapping[str, Any]) -> str:
    return _str(_get(obj, "metadata", "name"))


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def _pod_cells(pod: Mapping[str, Any], now: datetime) -> tuple[list[Any], list[dict[str, Any]]]:
    spec, status = _map(pod.get("spec")), _map(pod.get("status"))
    containers = _list(spec.get("containers"))
    init_specs = {c.get("name"): c for c in _list(spec.get("initContainers")) if isinstance(c, Mapping)}
    conditions = [c for c in _list(status.get("conditions")) if isinstance(c, Mapping)]

    def restartable(name: Any) -> bool:
        c = init_specs.get(name)
        return c is not None and c.get("restartPolicy") == "Always"

    def condition_true(type_: str) -> bool:
        return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)

    def later(current: datetime | None, state: Any) -> datetime | None:
        finished = parse_time(_get(state, "terminated", "finishedAt"))
        if finished is not None and (current is None or finished > current):
            return finished
        return current

    restarts = restartable_restarts = ready = 0
    total = len(containers) + sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")
    last_restart: datetime | None = None
    last_restartable: datetime | None = None
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"

    row_conditions: list[dict[str, Any]] = []
    if phase == "Succeeded":
        row_conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]
    elif phase == "Failed":
        row_conditions = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]

    initializing = False
    init_statuses = [c for c in _list(status.get("initContainerStatuses")) if isinstance(c, Mapping)]
    for i, cs in enumerate(init_statuses):
        count = _int(cs.get("restartCount"))
        restarts += count
        last_restart = later(last_restart, cs.get("lastState"))
        if restartable(cs.get("name")):
            restartable_restarts += count
            last_restartable = later(last_restartable, cs.get("lastState"))
        terminated = _map(_get(cs, "state", "terminated"))
        waiting = _map(_get(cs, "state", "waiting"))
        if _get(cs, "state", "terminated") is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if _get(cs, "state", "terminated") is not None:
            if not _str(terminated.get("reason")):
                signal = _int(terminated.get("signal"))
                reason = f"Init:Signal:{signal}" if signal else f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + _str(terminated.get("reason"))
        elif _str(waiting.get("reason")) and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or condition_true("Initialized"):
        restarts = restartable_restarts
        last_restart = last_restartable
        has_running = False
        for cs in reversed([c for c in _list(status.get("containerStatuses")) if isinstance(c, Mapping)]):
            restarts += _int(cs.get("restartCount"))
            last_restart = later(last_restart, cs.get("lastState"))
            state = _map(cs.get("state"))
            c_waiting, c_terminated = state.get("waiting"), state.get("terminated")
            if isinstance(c_waiting, Mapping) and _str(c_waiting.get("reason")):
                reason = _str(c_waiting.get("reason"))
            elif isinstance(c_terminated, Mapping) and _str(c_terminated.get("reason")):
                reason = _str(c_terminated.get("reason"))
            elif isinstance(c_terminated, Mapping):
                signal = _int(c_terminated.get("signal"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(c_terminated.get('exitCode'))}"
            elif cs.get("ready") is True and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if condition_true("Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((_aware(now) - last_restart).total_seconds())} ago)"

    pod_ips = [p for p in _list(status.get("podIPs")) if isinstance(p, Mapping)]
    pod_ip = _str(pod_ips[0].get("ip")) if pod_ips else _str(status.get("podIP"))
    gates = [g for g in _list(spec.get("readinessGates")) if isinstance(g, Mapping)]
    readiness = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
            if match is not None and match.get("status") == "True":
                true_count += 1
        readiness = f"{true_count}/{len(gates)}"
    cells = [
        _name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(pod, now),
        pod_ip or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        readiness,
    ]
    return cells, row_conditions


def _layout_containers(containers: list[Any]) -> tuple[str, str]:
    items = [c for c in containers if isinstance(c, Mapping)]
    return ",".join(_str(c.get("name")) for c in items), ",".join(_str(c.get("image")) for c in items)


def _deployment_cells(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    replicas = _int(spec.get("replicas"), 1) if "replicas" in spec else 1
    names, images = _layout_containers(_list(_get(spec, "template", "spec", "containers")))
    raw_selector = spec.get("selector")
    try:
        selector = str(from_label_selector_dict(raw_selector if isinstance(raw_selector, Mapping) else None))
    except SelectorError:
        selector = "<invalid>"
    return [
        _name_of(obj),
        f"{_int(status.get('readyReplicas'))}/{replicas}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _replicaset_cells(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    names, images = _layout_containers(_list(_get(spec, "template", "spec", "containers")))
    raw_selector = spec.get("selector")
    try:
        selector = str(from_label_selector_dict(raw_selector if isinstance(raw_selector, Mapping) else None))
    except SelectorError:
        selector = "<invalid>"
    return [
        _name_of(obj),
        _int(spec.get("replicas"), 1) if "replicas" in spec else 1,
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    external = [x for x in _list(spec.get("externalIPs")) if isinstance(x, str)]
    type_ = spec.get("type")
    if type_ in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if type_ == "LoadBalancer":
        found = set()
        for ing in _list(_get(status, "loadBalancer", "ingress")):
            if isinstance(ing, Mapping):
                if _str(ing.get("ip")):
                    found.add(_str(ing.get("ip")))
                elif _str(ing.get("hostname")):
                    found.add(_str(ing.get("hostname")))
        lb = sorted(found)
        if external:
            return ",".join([*lb, *external])
        return ",".join(lb) if lb else "<pending>"
    if type_ == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _service_cells(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    cluster_ips = [x for x in _list(spec.get("clusterIPs")) if isinstance(x, str)]
    cluster_ip = cluster_ips[0] if cluster_ips else (_str(spec.get("clusterIP")) or "<none>")
    pieces = []
    for port in _list(spec.get("ports")):
        if not isinstance(port, Mapping):
            continue
        protocol = _str(port.get("protocol")) or "TCP"
        node_port = _int(port.get("nodePort"))
        number = _int(port.get("port"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    selector = _map(spec.get("selector"))
    return [
        _name_of(obj),
        _str(spec.get("type")),
        cluster_ip,
        _service_external_ip(spec, status),
        ",".join(pieces) or "<none>",
        _age(obj, now),
        format_labels({str(k): str(v) for k, v in selector.items()}),
    ]


def _join_host_port(host: str, port: int) -> str:
    try:
        is_v6 = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        is_v6 = ":" in host
    return f"[{host}]:{port}" if is_v6 else f"{host}:{port}"


def format_endpoints(obj: Mapping[str, Any]) -> str:
    """`formatEndpoints(endpoints, nil)`: up to three `ip:port`, then ` + N more...`; `<none>` if empty."""
    subsets = [s for s in _list(obj.get("subsets")) if isinstance(s, Mapping)]
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, count, more = 3, 0, False
    for subset in subsets:
        addresses = [_str(a.get("ip")) for a in _list(subset.get("addresses")) if isinstance(a, Mapping)]
        ports = [p for p in _list(subset.get("ports")) if isinstance(p, Mapping)]
        if not ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(ip, _int(port.get("port"))))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _event_cells(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    first = _since(obj.get("firstTimestamp"), now)
    if parse_time(obj.get("firstTimestamp")) is None:
        first = _since(obj.get("eventTime"), now)
    last = _since(obj.get("lastTimestamp"), now)
    if parse_time(obj.get("lastTimestamp")) is None:
        last = first
    count = _int(obj.get("count"))
    series = obj.get("series")
    if isinstance(series, Mapping):
        last = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1
    involved = _map(obj.get("involvedObject"))
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{_str(involved.get('name'))}" if _str(involved.get("name")) else kind
    source = _map(obj.get("source"))
    component = _str(source.get("component")) or _str(obj.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(obj.get("reportingInstance"))
    return [
        last,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _str(obj.get("message")).strip(),
        first,
        count,
        _name_of(obj),
    ]


def _jsonpath_text(value: Any) -> Any:
    """A CRD `string` column cell: the JSONPath text of the value (arrays/maps as compact JSON)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _crd_cells(kind: str, obj: Mapping[str, Any], now: datetime) -> list[Any]:
    cells: list[Any] = [_name_of(obj)]
    for col, path in zip(columns(kind)[1:], _CRD_PATHS.get(kind, (("metadata", "creationTimestamp"),)), strict=True):
        value = _get(obj, *path)
        if col["type"] == "date":
            cells.append(None if value is None else _since(value, now) if parse_time(value) else "<invalid>")
        elif col["type"] == "integer":  # apiextensions keeps non-string cells as the JSON value
            cells.append(value)
        else:
            cells.append(_jsonpath_text(value))
    return cells


def _simple(fn: Callable[[Mapping[str, Any], datetime], list[Any]]) -> Callable[
    [Mapping[str, Any], datetime], tuple[list[Any], list[dict[str, Any]]]
]:
    return lambda obj, now: (fn(obj, now), [])


_ROWS: Final[dict[str, Callable[[Mapping[str, Any], datetime], tuple[list[Any], list[dict[str, Any]]]]]] = {
    "Pod": _pod_cells,
    "Deployment": _simple(_deployment_cells),
    "ReplicaSet": _simple(_replicaset_cells),
    "Service": _simple(_service_cells),
    "Endpoints": _simple(lambda o, now: [_name_of(o), format_endpoints(o), _age(o, now)]),
    "Namespace": _simple(lambda o, now: [_name_of(o), _str(_get(o, "status", "phase")), _age(o, now)]),
    "ServiceAccount": _simple(lambda o, now: [_name_of(o), len(_list(o.get("secrets"))), _age(o, now)]),
    "ConfigMap": _simple(
        lambda o, now: [_name_of(o), len(_map(o.get("data"))) + len(_map(o.get("binaryData"))), _age(o, now)]
    ),
    "Secret": _simple(lambda o, now: [_name_of(o), _str(o.get("type")), len(_map(o.get("data"))), _age(o, now)]),
    "Event": _simple(_event_cells),
    "Scale": _simple(
        lambda o, now: [_name_of(o), _int(_get(o, "spec", "replicas")), _int(_get(o, "status", "replicas")), _age(o, now)]
    ),
}


def _row(kind: str, obj: Mapping[str, Any], now: datetime) -> tuple[list[Any], list[dict[str, Any]]]:
    builder = _ROWS.get(kind)
    if builder is not None:
        return builder(obj, now)
    return _crd_cells(kind, obj, now), []


def row_cells(kind: str, obj: Mapping[str, Any], *, now: datetime) -> list[Any]:
    """The cells of `obj`'s row, one per entry of :func:`columns` (wide cells included)."""
    return _row(_canonical(kind), obj, now)[0]


def table(
    kind: str,
    objects: list[dict[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    resource_version: str,
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1` `Table` of `objects` of `kind`.

    `include_object` is the request's `includeObject`: `Metadata` (default) puts a
    `PartialObjectMetadata` in each row, `Object` the whole object, `None` nothing.
    """
    if include_object not in ("Metadata", "Object", "None"):
        raise ValueError(f"includeObject must be one of None, Metadata, Object; got {include_object!r}")
    canonical = _canonical(kind)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    rows: list[dict[str, Any]] = []
    for obj in objects:
        cells, conditions = _row(canonical, obj, now)
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": copy.deepcopy(_map(obj.get("metadata"))),
            }
        elif include_object == "Object":
            row["object"] = copy.deepcopy(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(canonical),
        "rows": rows,
    }
