"""The console's JSON API (aiohttp), served on the console port under `/api/`.

Role: the backend the console's single-page app reads: namespaces with health, the Kiali-style graph
(`sluice.console.graph` over an injected PromQL `query` callable), the Istio config list with validation
status (the same validator and analyzers as the API server and `sluice analyze`), object read/create/
replace/delete through the same `Registry` the Kubernetes API uses (so a rejected edit answers with the
server's own Status message and code), workloads with pods and health, and workload logs through an
injected reader. Errors are JSON `{"error": message, "code": http_code}` (plus `status`, the Kubernetes
Status object, for API errors); nothing a client sends yields a 500.

Callers: the daemon (mounts `console_app` on 127.0.0.1:20001) and tests/unit/console/test_api.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.console.graph import (
    GRAPH_TYPES,
    REQUEST_QUERIES,
    build_graph,
    graph_queries,
    node_health,
)
from sluice.metrics.promql.values import QueryResult, Sample
from sluice.resources.kinds import ResourceType, by_kind, lookup
from sluice.validation.analyze import analyze
from sluice.validation.istio import validate

__all__ = ["console_app", "QueryFn", "LogReader", "parse_duration", "ISTIO_CONFIG_KINDS"]

log = logging.getLogger(__name__)

QueryFn = Callable[[str], QueryResult]
# (namespace, workload, container or None, tail lines or None) → log lines, each
# {"pod", "container", "line", "proxy": bool}.
LogReader = Callable[[str, str, str | None, int | None], Awaitable[list[dict[str, Any]]]]

ISTIO_CONFIG_KINDS: tuple[str, ...] = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
# Objects the analyzers need to resolve references (hosts, subsets, gateways).
_ANALYZE_KINDS: tuple[tuple[str, str], ...] = (
    ("", "Service"), ("", "Pod"), ("apps", "Deployment"), ("", "Namespace"),
    *(("networking.istio.io", k) for k in ISTIO_CONFIG_KINDS),
)
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)?$")
_MAX_DURATION_S = 30 * 86400
HEALTH_WINDOW_S = 300  # Kiali's HealthCompute default duration (5m)

REGISTRY_KEY: web.AppKey[Registry] = web.AppKey("registry", Registry)
QUERY_KEY: web.AppKey[QueryFn] = web.AppKey("query", object)  # type: ignore[arg-type]
LOGS_KEY: web.AppKey[LogReader | None] = web.AppKey("logs", object)  # type: ignore[arg-type]


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))


def _error(code: int, message: str, extra: Mapping[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if extra:
        body.update(extra)
    return _json(body, status=code)


def parse_duration(text: str) -> int:
    """`60s`, `5m`, `1h`, `1d` or plain seconds → seconds (1 s … 30 d)."""
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise _Fail(400, f"invalid duration {text!r} (want e.g. 60s, 5m, 1h)")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    if not 1 <= seconds <= _MAX_DURATION_S:
        raise _Fail(400, f"duration {text!r} out of range (1s to 30d)")
    return seconds


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value) or len(value) > 253:
        raise _Fail(400, f"invalid {what} {value!r}")
    return value


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e.code, e.message, {"reason": e.reason, "status": e.body()})
    except _Fail as e:
        return _error(e.code, e.message)
    except web.HTTPException as e:
        if not request.path.startswith("/api/") or e.status < 400:
            raise
        return _error(e.status, e.reason)
    except Exception as e:  # a bug: still JSON, and logged
        log.exception("console API %s %s failed", request.method, request.path)
        return _error(500, f"internal error: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------- helpers
def _rt(group: str, kind: str) -> ResourceType:
    rt = by_kind(group, kind)
    assert rt is not None, kind
    return rt


def _istio_kind(text: str) -> ResourceType:
    rt = lookup(text)
    if rt is None or rt.kind not in ISTIO_CONFIG_KINDS:
        raise _Fail(404, f"unknown Istio config type {text!r} (want one of {', '.join(ISTIO_CONFIG_KINDS)})")
    return rt


def _ensure_namespace(reg: Registry, ns: str) -> None:
    _check_name(ns, "namespace")
    reg.get(_rt("", "Namespace"), "v1", None, ns)


def _vector(result: QueryResult) -> list[Sample]:
    if result.type != "vector" or not isinstance(result.value, list):
        raise _Fail(502, f"metrics query returned a {result.type}, not a vector")
    return [s for s in result.value if isinstance(s, Sample)]


def _run_queries(query: QueryFn, queries: Mapping[str, str]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for name, expr in queries.items():
        try:
            result = query(expr)
        except _Fail:
            raise
        except Exception as e:
            raise _Fail(503, f"metrics query failed: {e}") from None
        out[name] = _vector(result)
    return out


def _objects(reg: Registry, group: str, kind: str, ns: str | None) -> list[dict[str, Any]]:
    rt = _rt(group, kind)
    items, _, _ = reg.list_objects(rt, rt.preferred_version, ns)
    return items


def _workload_graph(reg: Registry, query: QueryFn, ns: str, window_s: int, now: float) -> dict[str, Any]:
    queries = {k: v for k, v in graph_queries(ns, window_s, "workload").items() if k in REQUEST_QUERIES}
    return build_graph(_run_queries(query, queries), graph_type="workload", namespace=ns, window_s=window_s,
                       query_time=int(now))


_RANK = {"NA": 0, "Healthy": 1, "Degraded": 2, "Failure": 3}


def _worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 0), default="NA")


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    match = selector.get("matchLabels") or {}
    if not isinstance(match, dict) or not match:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _pod_summary(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    statuses = [c for c in status.get("containerStatuses") or [] if isinstance(c, dict)]
    return {"name": meta.get("name"), "phase": status.get("phase", "Pending"), "ready": _pod_ready(pod),
            "containers": containers, "istioSidecar": "istio-proxy" in containers,
            "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
            "labels": meta.get("labels") or {}, "createdAt": meta.get("creationTimestamp")}


def _pod_health(desired: int, available: int) -> str:
    """Kiali's workload pod health: no replicas wanted → NA; none available → Failure; some → Degraded."""
    if desired <= 0:
        return "NA"
    if available <= 0:
        return "Failure"
    if available < desired:
        return "Degraded"
    return "Healthy"


def _workloads(reg: Registry, ns: str, traffic: Mapping[str, str]) -> list[dict[str, Any]]:
    pods = _objects(reg, "", "Pod", ns)
    out: list[dict[str, Any]] = []
    for dep in _objects(reg, "apps", "Deployment", ns):
        meta = dep.get("metadata") or {}
        spec = dep.get("spec") or {}
        selector = spec.get("selector") or {}
        mine = [p for p in pods if _selector_matches(selector, (p.get("metadata") or {}).get("labels") or {})]
        desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        available = sum(1 for p in mine if _pod_ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp"))
        name = str(meta.get("name"))
        pod_status = _pod_health(desired, available)
        traffic_status = traffic.get(name, "NA")
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        out.append({
            "name": name, "namespace": ns, "type": "Deployment", "labels": meta.get("labels") or {},
            "app": tmpl_labels.get("app", ""), "version": tmpl_labels.get("version", ""),
            "desiredReplicas": desired, "availableReplicas": available,
            "pods": [_pod_summary(p) for p in mine],
            "istioSidecar": bool(mine) and all(_pod_summary(p)["istioSidecar"] for p in mine),
            "health": {"status": _worst(pod_status, traffic_status), "pods": pod_status,
                       "traffic": traffic_status},
        })
    return sorted(out, key=lambda w: str(w["name"]))


_LEVEL = {"Error": "error", "Warning": "warning", "Info": "info"}


def _validations(reg: Registry, ns: str | None) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], dict[str, Any]]]:
    """The Istio config objects (in `ns`, or all) and their validation, keyed by (kind, namespace, name)."""
    everything: list[dict[str, Any]] = []
    for group, kind in _ANALYZE_KINDS:
        everything.extend(_objects(reg, group, kind, None))
    configs = [o for o in everything if o.get("kind") in ISTIO_CONFIG_KINDS
               and (ns is None or (o.get("metadata") or {}).get("namespace") == ns)]
    result: dict[tuple[str, str, str], dict[str, Any]] = {}
    for obj in configs:
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
        v = validate(key[0], obj)
        checks: list[dict[str, Any]] = [
            {"code": "IST0106", "severity": "error", "message": e.message, "path": e.field} for e in v.errors]
        checks.extend({"code": "IST0133", "severity": "warning", "message": w, "path": ""} for w in v.warnings)
        result[key] = {"checks": checks}
    for m in analyze(everything, namespaces={ns} if ns is not None else None):
        if m.code in ("IST0106", "IST0133"):  # the validator's own findings, already listed with paths
            continue
        entry = result.get((m.kind, m.namespace, m.name))
        if entry is not None:
            entry["checks"].append({"code": m.code, "severity": _LEVEL.get(m.level, "info"), "message": m.text,
                                    "path": ""})
    for entry in result.values():
        checks = entry["checks"]
        entry["errors"] = sum(1 for c in checks if c["severity"] == "error")
        entry["warnings"] = sum(1 for c in checks if c["severity"] == "warning")
        entry["valid"] = entry["errors"] == 0
        entry["status"] = "NotValid" if entry["errors"] else ("Warning" if entry["warnings"] else "Valid")
    return configs, result


def _config_item(obj: Mapping[str, Any], validation: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "name": meta.get("name"),
            "namespace": meta.get("namespace"), "resourceVersion": meta.get("resourceVersion"),
            "createdAt": meta.get("creationTimestamp"), "labels": meta.get("labels") or {},
            "validation": dict(validation)}


async def _read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise _Fail(400, "empty request body")
    ctype = request.content_type.lower()
    text = raw.decode("utf-8", errors="strict") if raw else ""
    try:
        if ctype == "application/json":
            return json.loads(text)
        docs = [d for d in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                if d is not None]
    except (ValueError, yaml.YAMLError) as e:
        raise _Fail(400, f"the body is not valid {'JSON' if ctype == 'application/json' else 'YAML'}: {e}") from None
    if len(docs) != 1:
        raise _Fail(400, f"the body must hold exactly one object, found {len(docs)}")
    if not isinstance(docs[0], dict):
        raise _Fail(400, "the body must be an object")
    return docs[0]


def _version_of(rt: ResourceType, body: Any) -> str:
    api_version = str(body.get("apiVersion") or "") if isinstance(body, dict) else ""
    version = api_version.rpartition("/")[2]
    return version if version in rt.versions else rt.preferred_version


# ---------------------------------------------------------------------------------------------- handlers
async def namespaces(request: web.Request) -> web.Response:
    reg, query = request.app[REGISTRY_KEY], request.app[QUERY_KEY]
    now = time.time()
    _, validation = _validations(reg, None)
    out = []
    for ns_obj in _objects(reg, "", "Namespace", None):
        name = str((ns_obj.get("metadata") or {}).get("name"))
        traffic = node_health(_workload_graph(reg, query, name, HEALTH_WINDOW_S, now), "workload")
        counts = {"healthy": 0, "degraded": 0, "failure": 0, "na": 0}
        for w in _workloads(reg, name, traffic):
            counts[{"Healthy": "healthy", "Degraded": "degraded", "Failure": "failure"}.get(
                w["health"]["status"], "na")] += 1
        cfg = [v for (_, ns, _), v in validation.items() if ns == name]
        out.append({
            "name": name, "labels": (ns_obj.get("metadata") or {}).get("labels") or {},
            "status": ((ns_obj.get("status") or {}).get("phase")) or "Active",
            "health": {"workloads": counts,
                       "status": "Failure" if counts["failure"] else "Degraded" if counts["degraded"]
                       else "Healthy" if counts["healthy"] else "NA"},
            "istioConfig": {"objects": len(cfg), "valid": sum(1 for v in cfg if v["valid"] and not v["warnings"]),
                            "warnings": sum(1 for v in cfg if v["valid"] and v["warnings"]),
                            "errors": sum(1 for v in cfg if not v["valid"])},
        })
    return _json({"namespaces": out})


async def graph(request: web.Request) -> web.Response:
    reg, query = request.app[REGISTRY_KEY], request.app[QUERY_KEY]
    ns = request.match_info["ns"]
    _ensure_namespace(reg, ns)
    q = request.query
    graph_type = q.get("graphType", "versionedApp")
    if graph_type not in GRAPH_TYPES:
        raise _Fail(400, f"invalid graphType {graph_type!r} (want one of {', '.join(GRAPH_TYPES)})")
    window = parse_duration(q.get("duration", "60s"))
    rt_opt = q.get("responseTime", "95")
    if rt_opt not in ("50", "95", "99", "avg"):
        raise _Fail(400, f"invalid responseTime {rt_opt!r} (want 50, 95, 99 or avg)")
    inject = q.get("injectServiceNodes", "true").lower() != "false"
    idle = q.get("idleEdges", "false").lower() == "true"
    samples = _run_queries(query, graph_queries(ns, window, graph_type, rt_opt, idle_edges=idle))
    data = build_graph(samples, graph_type=graph_type, namespace=ns, window_s=window, query_time=int(time.time()),
                       inject_service_nodes=inject,
                       virtual_services=_objects(reg, "networking.istio.io", "VirtualService", None),
                       destination_rules=_objects(reg, "networking.istio.io", "DestinationRule", None))
    return _json(data)


async def config_list(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY_KEY]
    ns = request.query.get("namespace") or request.match_info.get("ns") or None
    if ns is not None:
        _ensure_namespace(reg, ns)
    kinds = [k for k in (request.query.get("kinds") or "").split(",") if k]
    wanted = {_istio_kind(k).kind for k in kinds} if kinds else set(ISTIO_CONFIG_KINDS)
    configs, validation = _validations(reg, ns)
    items = []
    for obj in configs:
        if obj.get("kind") not in wanted:
            continue
        meta = obj.get("metadata") or {}
        items.append(_config_item(obj, validation[(str(obj.get("kind")), str(meta.get("namespace") or ""),
                                                   str(meta.get("name")))]))
    items.sort(key=lambda i: (str(i["namespace"]), str(i["kind"]), str(i["name"])))
    return _json({"items": items})


def _detail(reg: Registry, rt: ResourceType, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    _, validation = _validations(reg, ns)
    meta = obj.get("metadata") or {}
    v = validation.get((rt.kind, ns, str(meta.get("name"))), {"checks": [], "errors": 0, "warnings": 0,
                                                                 "valid": True, "status": "Valid"})
    return {**_config_item(obj, v), "object": obj,
            "yaml": yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)}


def _config_target(request: web.Request) -> tuple[Registry, str, ResourceType]:
    """The registry, namespace (which must exist) and Istio kind a config route names."""
    reg = request.app[REGISTRY_KEY]
    ns = request.match_info["ns"]
    _ensure_namespace(reg, ns)
    return reg, ns, _istio_kind(request.match_info["kind"])


async def config_get(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = _check_name(request.match_info["name"], "name")
    obj = reg.get(rt, rt.preferred_version, ns, name)
    return _json(_detail(reg, rt, ns, obj))


async def config_put(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = _check_name(request.match_info["name"], "name")
    body = await _read_body(request)
    result = reg.replace(rt, _version_of(rt, body), ns, name, body)
    return _json({**_detail(reg, rt, ns, result.object), "warnings": result.warnings})


async def config_create(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    body = await _read_body(request)
    result = reg.create(rt, _version_of(rt, body), ns, body)
    return _json({**_detail(reg, rt, ns, result.object), "warnings": result.warnings}, status=201)


async def config_delete(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = _check_name(request.match_info["name"], "name")
    reg.delete(rt, rt.preferred_version, ns, name)
    return _json({"deleted": {"kind": rt.kind, "namespace": ns, "name": name}})


async def workloads(request: web.Request) -> web.Response:
    reg, query = request.app[REGISTRY_KEY], request.app[QUERY_KEY]
    ns = request.match_info["ns"]
    _ensure_namespace(reg, ns)
    traffic = node_health(_workload_graph(reg, query, ns, HEALTH_WINDOW_S, time.time()), "workload")
    return _json({"namespace": ns, "workloads": _workloads(reg, ns, traffic)})


async def workload_logs(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY_KEY]
    reader = request.app[LOGS_KEY]
    ns = request.match_info["ns"]
    _ensure_namespace(reg, ns)
    name = _check_name(request.match_info["name"], "workload")
    reg.get(_rt("apps", "Deployment"), "v1", ns, name)
    if reader is None:
        raise _Fail(501, "logs are not available in this console")
    container = request.query.get("container") or None
    tail: int | None = None
    if request.query.get("tailLines"):
        try:
            tail = int(request.query["tailLines"])
        except ValueError:
            raise _Fail(400, "tailLines must be an integer") from None
        if tail < 0:
            raise _Fail(400, "tailLines must not be negative")
    lines = await reader(ns, name, container, tail)
    return _json({"namespace": ns, "workload": name, "lines": lines})


async def api_not_found(request: web.Request) -> web.Response:
    return _error(404, f"no console API at {request.path}")


def _static_handler(root: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    root = root.resolve()

    async def serve(request: web.Request) -> web.StreamResponse:
        rel = request.match_info.get("tail", "")
        target = (root / rel).resolve()
        if rel and target.is_file() and target.is_relative_to(root):
            return web.FileResponse(target)
        index = root / "index.html"
        if not index.is_file():
            return _error(404, "the console UI is not built: run `make ui` (or `make demo`) in the Sluice checkout")
        return web.FileResponse(index)  # the single-page app routes the rest

    return serve


def console_app(registry: Registry, query: QueryFn, *, logs: LogReader | None = None,
                static_dir: str | Path | None = None) -> web.Application:
    """The console application: JSON under `/api/`, and `static_dir` (the UI build) at `/` when given.

    `query(expr)` evaluates one PromQL instant query at "now" (the daemon passes its embedded engine);
    `logs` reads a workload's container logs.
    """
    app = web.Application(middlewares=[_errors], client_max_size=3 * 1024 * 1024)
    app[REGISTRY_KEY] = registry
    app[QUERY_KEY] = query
    app[LOGS_KEY] = logs
    r = app.router
    r.add_get("/api/namespaces", namespaces)
    r.add_get("/api/namespaces/{ns}/graph", graph)
    r.add_get("/api/istio/config", config_list)
    r.add_get("/api/namespaces/{ns}/istio", config_list)
    r.add_post("/api/namespaces/{ns}/istio/{kind}", config_create)
    r.add_get("/api/namespaces/{ns}/istio/{kind}/{name}", config_get)
    r.add_put("/api/namespaces/{ns}/istio/{kind}/{name}", config_put)
    r.add_delete("/api/namespaces/{ns}/istio/{kind}/{name}", config_delete)
    r.add_get("/api/namespaces/{ns}/workloads", workloads)
    r.add_get("/api/namespaces/{ns}/workloads/{name}/logs", workload_logs)
    r.add_route("*", "/api/{tail:.*}", api_not_found)
    if static_dir is not None:
        r.add_get("/{tail:.*}", _static_handler(Path(static_dir)))
    return app

