"""The console's JSON API (aiohttp), served on the console port under `/api/` (contract: docs/console-api.md).

Role: routing and the handlers' I/O. Each handler checks its parameters (`sluice.console.params`), reads
the objects it needs from the same `Registry` the Kubernetes API uses, runs PromQL through the injected
`query` (instant) and `query_range` callables, and hands the data to a pure builder: `graph` (the Kiali
graph and traffic health), `configs` (Istio config validation status), `inventory` (workloads, apps,
services), `charts` (workload metric charts, namespace sparklines), `logs` (which containers, merge order)
and `wizard` (traffic shifting). Writes go through the Registry, so a rejected edit answers with the API
server's own Status message and code. Errors are JSON `{"error": message, "code": http_code}` (plus
`reason` and `status`, the Kubernetes Status object, for API errors); nothing a client sends yields a 500.

The handlers share the daemon's event loop with the API server, xDS and ALS: a large object (over 64 KiB,
`sluice.console.bodies.ON_LOOP_SIZE`) is decoded, admitted, validated and dumped as YAML in the console's worker
processes (`sluice.console.worker`), never on the loop; only the store's read and commit run here.

Who may call it is `sluice.console.auth`'s business (its middleware runs before every handler).

Callers: the daemon (`sluice.daemon.console_service.ConsoleService` mounts `console_app` on 127.0.0.1:20001)
and tests/unit/console/.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from sluice.api.body_pool import BodyPool
from sluice.api.errors import ApiError
from sluice.api.registry import Registry, WriteResult
from sluice.console import charts, inventory, wizard
from sluice.console import worker as console_worker
from sluice.console.auth import AUTH_KEY, ConsoleAuth, auth_middleware, login_routes, refuse, security_headers
from sluice.console.bodies import ON_LOOP_SIZE, api_version_of, one_object, yaml_text
from sluice.console.charts import QueryRangeFn
from sluice.console.configs import (
    ANALYZE_KINDS,
    EMPTY_VALIDATION,
    ISTIO_CONFIG_KINDS,
    ConfigKey,
    config_item,
    key_of,
    validations,
)
from sluice.console.graph import (
    GRAPH_TYPES,
    REQUEST_QUERIES,
    build_graph,
    graph_queries,
    node_health,
)
from sluice.console.logs import DEFAULT_TAIL, MAX_TAIL, LogReader, log_targets, merge, parse_since
from sluice.console.params import Fail, check_name, parse_duration, parse_int
from sluice.hostguard import host_guard
from sluice.metrics.promql.values import QueryResult, Sample
from sluice.offloop import gc_paused
from sluice.resources.kinds import ResourceType, by_kind, lookup
from sluice.rollouts import actions as rollout_actions
from sluice.rollouts import summary as rollout_summary

__all__ = ["console_app", "QueryFn", "QueryRangeFn", "LogReader", "parse_duration", "ISTIO_CONFIG_KINDS",
           "ConsoleAuth"]

log = logging.getLogger(__name__)

# The daemon's query functions are coroutines (they evaluate in its query worker pool); plain functions work too.
QueryFn = Callable[[str], "QueryResult | Awaitable[QueryResult]"]

HEALTH_WINDOW_S = 300  # Kiali's HealthCompute default duration (5m)

REGISTRY_KEY: web.AppKey[Registry] = web.AppKey("registry", Registry)
QUERY_KEY: web.AppKey[QueryFn] = web.AppKey("query", object)  # type: ignore[arg-type]
QUERY_RANGE_KEY: web.AppKey[QueryRangeFn | None] = web.AppKey("query_range", object)  # type: ignore[arg-type]
LOGS_KEY: web.AppKey[LogReader | None] = web.AppKey("logs", object)  # type: ignore[arg-type]
WORKERS_KEY: web.AppKey[BodyPool] = web.AppKey("workers", BodyPool)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))


def _error(code: int, message: str, extra: Mapping[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if extra:
        body.update(extra)
    return _json(body, status=code)


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e.code, e.message, {"reason": e.reason, "status": e.body()})
    except Fail as e:
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


VS_RT = _rt("networking.istio.io", "VirtualService")
DR_RT = _rt("networking.istio.io", "DestinationRule")


def _istio_kind(text: str) -> ResourceType:
    rt = lookup(text)
    if rt is None or rt.kind not in ISTIO_CONFIG_KINDS:
        raise Fail(404, f"unknown Istio config type {text!r} (want one of {', '.join(ISTIO_CONFIG_KINDS)})")
    return rt


def _namespace(request: web.Request) -> tuple[Registry, str]:
    """The registry and the namespace a route names (which must exist)."""
    reg = request.app[REGISTRY_KEY]
    ns = request.match_info["ns"]
    _ensure_namespace(reg, ns)
    return reg, ns


def _named(request: web.Request, group: str, kind: str, what: str) -> tuple[Registry, str, str, dict[str, Any]]:
    """The registry, namespace, name and object a `{ns}/.../{name}` route names (each must exist)."""
    reg, ns = _namespace(request)
    name = check_name(request.match_info["name"], what)
    return reg, ns, name, reg.get(_rt(group, kind), "v1", ns, name)


def _ensure_namespace(reg: Registry, ns: str) -> None:
    check_name(ns, "namespace")
    reg.get(_rt("", "Namespace"), "v1", None, ns)


def _vector(result: QueryResult) -> list[Sample]:
    if result.type != "vector" or not isinstance(result.value, list):
        raise Fail(502, f"metrics query returned a {result.type}, not a vector")
    return [s for s in result.value if isinstance(s, Sample)]


async def _run_queries(query: QueryFn, queries: Mapping[str, str]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for name, expr in queries.items():
        try:
            result = await _answer(query(expr))
        except Fail:
            raise
        except Exception as e:
            raise Fail(503, f"metrics query failed: {e}") from None
        out[name] = _vector(result)
        # A synchronous query function evaluates on the event loop: let the rest of the daemon run between them.
        await asyncio.sleep(0)
    return out


async def _answer(result: QueryResult | Awaitable[QueryResult]) -> QueryResult:
    return await result if inspect.isawaitable(result) else result


def _range_query(request: web.Request) -> QueryRangeFn:
    fn = request.app[QUERY_RANGE_KEY]
    if fn is None:
        raise Fail(501, "metric charts are not available in this console (no range-query engine)")
    return fn


async def _run_range(fn: QueryRangeFn, expr: str, window: charts.RangeWindow) -> QueryResult:
    try:
        result = await _answer(fn(expr, window.start, window.end, window.step))
    except Exception as e:
        raise Fail(503, f"metrics range query failed: {e}") from None
    await asyncio.sleep(0)  # as in _run_queries
    return result


def _objects(reg: Registry, group: str, kind: str, ns: str | None) -> list[dict[str, Any]]:
    rt = _rt(group, kind)
    items, _, _ = reg.list_objects(rt, rt.preferred_version, ns)
    return items


def _find(reg: Registry, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return reg.get(rt, rt.preferred_version, ns, name)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


async def _workload_graph(query: QueryFn, ns: str, window_s: int, now: float) -> dict[str, Any]:
    queries = {k: v for k, v in graph_queries(ns, window_s, "workload").items() if k in REQUEST_QUERIES}
    return build_graph(await _run_queries(query, queries), graph_type="workload", namespace=ns, window_s=window_s,
                       query_time=int(now))


async def _workloads(reg: Registry, query: QueryFn, ns: str) -> list[dict[str, Any]]:
    traffic = node_health(await _workload_graph(query, ns, HEALTH_WINDOW_S, time.time()), "workload")
    return inventory.workloads(_objects(reg, "apps", "Deployment", ns), _objects(reg, "", "Pod", ns), ns, traffic)


def _routing(reg: Registry, ns: str | None) -> list[dict[str, Any]]:
    """VirtualServices and DestinationRules (in `ns`, or all)."""
    return [*_objects(reg, "networking.istio.io", "VirtualService", ns),
            *_objects(reg, "networking.istio.io", "DestinationRule", ns)]


async def _config_status(app: web.Application, ns: str | None
                         ) -> tuple[list[dict[str, Any]], dict[ConfigKey, dict[str, Any]]]:
    """The config list's rows (in `ns`, or all) and the validation of each Istio config object by key. The
    validator and the analyzers take about a second for a VirtualService of thousands of routes: with that much
    Istio config stored they run in the console's worker process (the other kinds are read for their labels,
    selectors and ports)."""
    reg = app[REGISTRY_KEY]
    kinds = [_rt(group, kind) for group, kind in ANALYZE_KINDS]
    texts = {rt.kind: reg.store.list_kind_json(rt.key)[0] for rt in kinds}
    if sum(len(t) for k in ISTIO_CONFIG_KINDS for t in texts[k]) > ON_LOOP_SIZE:
        head, _ = await app[WORKERS_KEY].run(
            {"op": "validations", "namespace": ns,
             "kinds": [[rt.api_version(rt.preferred_version), rt.kind, len(texts[rt.kind])] for rt in kinds]},
            [t.encode() for rt in kinds for t in texts[rt.kind]])
        return head["items"], {(str(k), str(n), str(name)): v for k, n, name, v in head["validation"]}
    everything = [reg.present(rt, rt.preferred_version, json.loads(t)) for rt in kinds for t in texts[rt.kind]]
    found, validation = validations(everything, ns)
    return [config_item(obj, validation[key_of(obj)]) for obj in found], validation


async def _one_in_worker(request: web.Request, raw: bytes) -> tuple[bytes, str]:
    """A large body's one object, decoded in the console's worker process: (compact JSON, its apiVersion)."""
    head, results = await request.app[WORKERS_KEY].run(
        {"op": "one", "content_type": request.content_type.lower()}, [raw])
    if "fail" in head:
        code, message = head["fail"]
        raise Fail(int(code), str(message))
    return results[0], str(head["api_version"])


async def _read_body(request: web.Request) -> dict[str, Any]:
    """The one object the body holds (the API server's bounded decoders: the same limits on aliases, depth,
    size and non-finite numbers); a large body is decoded in the worker process."""
    raw = await request.read()
    if len(raw) <= ON_LOOP_SIZE:
        return one_object(raw, request.content_type.lower())
    data, _ = await _one_in_worker(request, raw)
    body: dict[str, Any] = json.loads(data)
    return body


def _version_of(rt: ResourceType, api_version: str) -> str:
    version = api_version.rpartition("/")[2]
    return version if version in rt.versions else rt.preferred_version


# ---------------------------------------------------------------------------------------------- namespaces
async def namespaces(request: web.Request) -> web.Response:
    reg, query = request.app[REGISTRY_KEY], request.app[QUERY_KEY]
    now = time.time()
    spark: charts.RangeWindow | None = None
    if "sparkline" in request.query:
        spark = charts.sparkline_window(now, parse_duration(request.query["sparkline"] or "10m", "sparkline"))
    range_fn = _range_query(request) if spark is not None else None
    _, validation = await _config_status(request.app, None)
    out = []
    for ns_obj in _objects(reg, "", "Namespace", None):
        name = str((ns_obj.get("metadata") or {}).get("name"))
        traffic = node_health(await _workload_graph(query, name, HEALTH_WINDOW_S, now), "workload")
        counts = {"healthy": 0, "degraded": 0, "failure": 0, "na": 0}
        deployments, pods = _objects(reg, "apps", "Deployment", name), _objects(reg, "", "Pod", name)
        for w in inventory.workloads(deployments, pods, name, traffic):
            counts[{"Healthy": "healthy", "Degraded": "degraded", "Failure": "failure"}.get(
                w["health"]["status"], "na")] += 1
        cfg = [v for (_, ns, _), v in validation.items() if ns == name]
        entry: dict[str, Any] = {
            "name": name, "labels": (ns_obj.get("metadata") or {}).get("labels") or {},
            "status": ((ns_obj.get("status") or {}).get("phase")) or "Active",
            "health": {"workloads": counts,
                       "status": "Failure" if counts["failure"] else "Degraded" if counts["degraded"]
                       else "Healthy" if counts["healthy"] else "NA"},
            "istioConfig": {"objects": len(cfg), "valid": sum(1 for v in cfg if v["valid"] and not v["warnings"]),
                            "warnings": sum(1 for v in cfg if v["valid"] and v["warnings"]),
                            "errors": sum(1 for v in cfg if not v["valid"])},
        }
        if spark is not None and range_fn is not None:
            entry["sparkline"] = charts.points(await _run_range(range_fn, charts.sparkline_query(name), spark))
        out.append(entry)
    return _json({"namespaces": out})


async def graph(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    query = request.app[QUERY_KEY]
    q = request.query
    graph_type = q.get("graphType", "versionedApp")
    if graph_type not in GRAPH_TYPES:
        raise Fail(400, f"invalid graphType {graph_type!r} (want one of {', '.join(GRAPH_TYPES)})")
    window = parse_duration(q.get("duration", "60s"))
    rt_opt = q.get("responseTime", "95")
    if rt_opt not in ("50", "95", "99", "avg"):
        raise Fail(400, f"invalid responseTime {rt_opt!r} (want 50, 95, 99 or avg)")
    inject = q.get("injectServiceNodes", "true").lower() != "false"
    idle = q.get("idleEdges", "false").lower() == "true"
    samples = await _run_queries(query, graph_queries(ns, window, graph_type, rt_opt, idle_edges=idle))
    vss = _objects(reg, "networking.istio.io", "VirtualService", None)
    drs = _objects(reg, "networking.istio.io", "DestinationRule", None)
    ros = _objects(reg, "argoproj.io", "Rollout", ns)
    # build_graph is pure: a large namespace's graph is built in a thread, not on the daemon's event loop.
    data = await asyncio.to_thread(lambda: build_graph(
        samples, graph_type=graph_type, namespace=ns, window_s=window, query_time=int(time.time()),
        inject_service_nodes=inject, virtual_services=vss, destination_rules=drs, rollouts=ros))
    return _json(data)


# ---------------------------------------------------------------------------------------------- istio config
async def config_list(request: web.Request) -> web.Response:
    reg = request.app[REGISTRY_KEY]
    ns = request.query.get("namespace") or request.match_info.get("ns") or None
    if ns is not None:
        _ensure_namespace(reg, ns)
    kinds = [k for k in (request.query.get("kinds") or "").split(",") if k]
    wanted = {_istio_kind(k).kind for k in kinds} if kinds else set(ISTIO_CONFIG_KINDS)
    rows, _ = await _config_status(request.app, ns)
    items = [row for row in rows if row.get("kind") in wanted]
    items.sort(key=lambda i: (str(i["namespace"]), str(i["kind"]), str(i["name"])))
    return _json({"items": items})


async def _detail(app: web.Application, rt: ResourceType, ns: str, obj: dict[str, Any],
                  validation: dict[ConfigKey, dict[str, Any]] | None = None,
                  row: tuple[int, str] | None = None) -> dict[str, Any]:
    if validation is None:  # both at once: for a large object each is a job for a worker process
        (_, validation), text = await asyncio.gather(_config_status(app, ns), _yaml(app, rt, obj, row))
    else:
        text = await _yaml(app, rt, obj, row)
    name = str((obj.get("metadata") or {}).get("name"))
    v = validation.get((rt.kind, ns, name), EMPTY_VALIDATION)
    return {**config_item(obj, v), "object": obj, "yaml": text}


async def _yaml(app: web.Application, rt: ResourceType, obj: dict[str, Any], row: tuple[int, str] | None = None
                ) -> str:
    """The editor's text of `obj` (as read or written): dumped in the worker process when large (PyYAML takes
    seconds for a megabyte), from the stored JSON text when `obj` is what is stored (no encoding here); `row`
    is that text (`Store.get_json`) when the caller has already read it."""
    m = obj.get("metadata") or {}
    if row is None:
        row = app[REGISTRY_KEY].store.get_json(rt.key, str(m.get("namespace") or ""), str(m.get("name")))
    if row is not None and str(row[0]) == str(m.get("resourceVersion")):
        text = row[1]
    else:  # not what is stored (deleted, or changed since): its own encoding tells its size
        text = json.dumps(obj, separators=(",", ":"))
    if len(text) <= ON_LOOP_SIZE:
        return yaml_text(obj)
    _, (data,) = await app[WORKERS_KEY].run(
        {"op": "yaml", "api_version": obj.get("apiVersion"), "kind": obj.get("kind")}, [text.encode()])
    return data.decode()


def _config_target(request: web.Request) -> tuple[Registry, str, ResourceType]:
    """The registry, namespace (which must exist) and Istio kind a config route names."""
    reg, ns = _namespace(request)
    return reg, ns, _istio_kind(request.match_info["kind"])


async def config_get(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = check_name(request.match_info["name"], "name")
    row = reg.store.get_json(rt.key, ns, name)
    # the collector stays paused through a large object's steps (as the API server's large writes): a full
    # collection while one of them builds the object's graph here would walk it all, holding the GIL
    with gc_paused(row is not None and len(row[1]) > ON_LOOP_SIZE):
        obj = reg.get(rt, rt.preferred_version, ns, name)
        return _json(await _detail(request.app, rt, ns, obj, row=row))


async def _write_config(request: web.Request, raw: bytes, reg: Registry, rt: ResourceType, ns: str,
                        name: str | None) -> WriteResult:
    """The create (no `name`) or replace the body asks for. A large body is decoded and admitted in the
    worker process (validating a VirtualService of thousands of routes takes seconds) and stored here."""
    if len(raw) <= ON_LOOP_SIZE:
        body = one_object(raw, request.content_type.lower())
        version = _version_of(rt, api_version_of(body))
        if name is None:
            return reg.create(rt, version, ns, body)
        return reg.replace(rt, version, ns, name, body)
    data, api_version = await _one_in_worker(request, raw)
    workers, version = request.app[WORKERS_KEY], _version_of(rt, api_version)
    if name is None:
        return await reg.create_in_worker(workers, rt, version, ns, data, "application/json", plain=True)
    return await reg.replace_in_worker(workers, rt, version, ns, name, data, "application/json", plain=True)


async def config_put(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = check_name(request.match_info["name"], "name")
    raw = await request.read()
    with gc_paused(len(raw) > ON_LOOP_SIZE):
        result = await _write_config(request, raw, reg, rt, ns, name)
        return _json({**await _detail(request.app, rt, ns, result.object), "warnings": result.warnings})


async def config_create(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    raw = await request.read()
    with gc_paused(len(raw) > ON_LOOP_SIZE):
        result = await _write_config(request, raw, reg, rt, ns, None)
        return _json({**await _detail(request.app, rt, ns, result.object), "warnings": result.warnings},
                     status=201)


async def config_delete(request: web.Request) -> web.Response:
    reg, ns, rt = _config_target(request)
    name = check_name(request.match_info["name"], "name")
    reg.delete(rt, rt.preferred_version, ns, name)
    return _json({"deleted": {"kind": rt.kind, "namespace": ns, "name": name}})


# ---------------------------------------------------------------------------------------------- workloads
def _workload_target(request: web.Request) -> tuple[Registry, str, str, dict[str, Any]]:
    """The registry, namespace, name and Deployment a workload route names (each must exist)."""
    return _named(request, "apps", "Deployment", "workload")


async def workloads(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    query = request.app[QUERY_KEY]
    return _json({"namespace": ns, "workloads": await _workloads(reg, query, ns)})


async def workload_detail(request: web.Request) -> web.Response:
    reg, ns, name, deployment = _workload_target(request)
    listed = {str(w["name"]): w for w in await _workloads(reg, request.app[QUERY_KEY], ns)}
    if name not in listed:  # deleted while we read
        raise Fail(404, f"workload {name!r} not found in {ns}")
    return _json(inventory.workload_detail(listed[name], deployment, _objects(reg, "", "Service", ns),
                                           _routing(reg, None)))


async def workload_metrics(request: web.Request) -> web.Response:
    _, ns, name, _ = _workload_target(request)
    q = request.query
    direction = q.get("direction", "inbound")
    specs = charts.chart_queries(ns, name, direction)  # checks the direction
    duration = parse_duration(q.get("duration", "10m"))
    step = parse_duration(q["step"], "step") if q.get("step") else charts.default_step(duration)
    window = charts.range_window(time.time(), duration, step)
    range_fn = _range_query(request)
    out = [charts.chart(spec, {label: await _run_range(range_fn, expr, window) for label, expr in spec.series})
           for spec in specs]
    return _json({"start": int(window.start), "end": int(window.end), "step": int(window.step),
                  "direction": direction, "reporter": charts.DIRECTIONS[direction][0], "charts": out})


async def workload_logs(request: web.Request) -> web.Response:
    reg, ns, name, deployment = _workload_target(request)
    reader = request.app[LOGS_KEY]
    if reader is None:
        raise Fail(501, "logs are not available in this console")
    q = request.query
    container = q.get("container") or None
    tail = parse_int(q["tailLines"], "tailLines", 0, MAX_TAIL) if q.get("tailLines") else DEFAULT_TAIL
    since = parse_since(q["sinceTime"]) if q.get("sinceTime") else None
    targets = log_targets(inventory.pods_of(deployment, _objects(reg, "", "Pod", ns)), container, name)

    async def read(pod: str, c: str) -> tuple[str, str, list[tuple[str, str]]]:
        try:
            return pod, c, await reader(ns, pod, c, tail, since)
        except Exception as e:
            log.warning("reading the log of %s/%s container %s failed", ns, pod, c, exc_info=True)
            raise Fail(503, f"reading the log of pod {pod!r} container {c!r} failed: {e}") from None

    chunks = await asyncio.gather(*(read(pod, c) for pod, c in targets))
    return _json({"namespace": ns, "workload": name, "lines": merge(chunks)})


# ---------------------------------------------------------------------------------------------- apps, services
async def apps(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    query = request.app[QUERY_KEY]
    return _json({"namespace": ns, "apps": inventory.apps(await _workloads(reg, query, ns),
                                                          _objects(reg, "apps", "Deployment", ns),
                                                          _objects(reg, "", "Service", ns))})


async def _services(reg: Registry, query: QueryFn, ns: str, service_objs: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    health = node_health(await _workload_graph(query, ns, HEALTH_WINDOW_S, time.time()), "service")
    return inventory.services(service_objs, _objects(reg, "apps", "Deployment", ns), _routing(reg, ns), health)


async def services(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    return _json({"namespace": ns, "services": await _services(reg, request.app[QUERY_KEY], ns,
                                                         _objects(reg, "", "Service", ns))})


def _service_target(request: web.Request) -> tuple[Registry, str, str, dict[str, Any]]:
    """The registry, namespace, name and Service a service route names (each must exist)."""
    return _named(request, "", "Service", "service")


async def service_detail(request: web.Request) -> web.Response:
    reg, ns, _, svc = _service_target(request)
    return _json((await _services(reg, request.app[QUERY_KEY], ns, [svc]))[0])


# ---------------------------------------------------------------------------------------------- wizard
async def traffic_shifting_get(request: web.Request) -> web.Response:
    reg, ns, _, svc = _service_target(request)
    versioned = wizard.versioned_workloads(svc, _objects(reg, "apps", "Deployment", ns))
    return _json(wizard.current_weights(svc, versioned, _objects(reg, "networking.istio.io", "VirtualService", ns),
                                        _objects(reg, "networking.istio.io", "DestinationRule", ns)))


def _check_replaceable(reg: Registry, rt: ResourceType, ns: str, name: str) -> dict[str, Any] | None:
    """The object the wizard would replace (None: it creates one); `Fail(409)` when another object of the
    kind already routes the service, or the one named after it is about another host."""
    current = _find(reg, rt, ns, name)
    objs = _objects(reg, "networking.istio.io", rt.kind, ns)
    others = sorted(str(o["metadata"]["name"]) for o in objs
                    if o["metadata"].get("name") != name
                    and any(inventory.names_service(h, name, ns, ns) for h in inventory.config_hosts(o)))
    if others:
        raise Fail(409, f"{rt.kind} {', '.join(others)} in {ns} already routes service {name!r}: edit or delete "
                        f"it (the wizard writes the {rt.kind} named {name!r})")
    if current is not None and not any(inventory.names_service(h, name, ns, ns)
                                       for h in inventory.config_hosts(current)):
        raise Fail(409, f"{rt.kind} {name!r} in {ns} exists but is about other hosts "
                        f"({', '.join(inventory.config_hosts(current)) or 'none'}), not service {name!r}")
    return current


def _write(reg: Registry, rt: ResourceType, ns: str, obj: dict[str, Any], current: dict[str, Any] | None,
           dry_run: bool) -> dict[str, Any]:
    name = str(obj["metadata"]["name"])
    if current is None:
        return reg.create(rt, "v1", ns, obj, dry_run=dry_run).object
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"].get("resourceVersion")}}
    return reg.replace(rt, "v1", ns, name, body, dry_run=dry_run).object


async def traffic_shifting_post(request: web.Request) -> web.Response:
    reg, ns, name, svc = _service_target(request)
    body = await _read_body(request)
    versioned = wizard.versioned_workloads(svc, _objects(reg, "apps", "Deployment", ns))
    if not versioned:
        raise Fail(409, f"service {name!r} selects no workloads with a version label: there is nothing to shift")
    weights = wizard.parse_weights(body, versioned, name)
    dr = wizard.destination_rule(name, ns, versioned)
    vs = wizard.virtual_service(name, ns, versioned, weights)
    current_dr = _check_replaceable(reg, DR_RT, ns, name)
    current_vs = _check_replaceable(reg, VS_RT, ns, name)
    # Both through the API server's validation first, then the DestinationRule before the VirtualService, so
    # the VirtualService never names a subset that does not exist.
    _write(reg, DR_RT, ns, dr, current_dr, dry_run=True)
    _write(reg, VS_RT, ns, vs, current_vs, dry_run=True)
    saved_dr = _write(reg, DR_RT, ns, dr, current_dr, dry_run=False)
    saved_vs = _write(reg, VS_RT, ns, vs, current_vs, dry_run=False)
    _, validation = await _config_status(request.app, ns)
    return _json({"destinationRule": await _detail(request.app, DR_RT, ns, saved_dr, validation),
                  "virtualService": await _detail(request.app, VS_RT, ns, saved_vs, validation)})


async def traffic_shifting_delete(request: web.Request) -> web.Response:
    reg, ns, name, _ = _service_target(request)
    found = [(rt, obj) for rt in (VS_RT, DR_RT) if (obj := _find(reg, rt, ns, name)) is not None]
    if not found:
        raise Fail(404, f"no VirtualService or DestinationRule named {name!r} in {ns}")
    for rt, obj in found:
        if not wizard.is_wizard(obj):
            raise Fail(409, f"{rt.kind} {name!r} in {ns} was not written by the wizard (no {wizard.WIZARD_LABEL} "
                            "label): delete it from the Istio config page instead")
    deleted = []
    for rt, _obj in found:  # the VirtualService first: it names the DestinationRule's subsets
        reg.delete(rt, rt.preferred_version, ns, name)
        deleted.append({"kind": rt.kind, "namespace": ns, "name": name})
    return _json({"deleted": deleted})


# ---------------------------------------------------------------------------------------------- rollouts
ROLLOUT_RT = _rt("argoproj.io", "Rollout")


def _rollout_objects(reg: Registry, ns: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                       list[dict[str, Any]], list[dict[str, Any]]]:
    return (_objects(reg, "apps", "ReplicaSet", ns), _objects(reg, "", "Pod", ns),
            _objects(reg, "argoproj.io", "AnalysisRun", ns), _objects(reg, "", "Event", ns))


async def rollouts_list(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    return _json({"rollouts": [rollout_summary.rollout_row(ro) for ro in _objects(reg, "argoproj.io", "Rollout", ns)]})


async def rollout_detail(request: web.Request) -> web.Response:
    reg, ns = _namespace(request)
    name = check_name(request.match_info["name"], "rollout")
    ro = reg.get(ROLLOUT_RT, "v1alpha1", ns, name)
    return _json(rollout_summary.rollout_summary(ro, *_rollout_objects(reg, ns)))


async def rollout_action(request: web.Request) -> web.Response:
    """The buttons: the same patches `sluice rollouts promote|abort|retry|pause|resume` send."""
    reg, ns = _namespace(request)
    name = check_name(request.match_info["name"], "rollout")
    action = request.match_info["action"]
    if action not in rollout_actions.ACTIONS:
        raise Fail(404, f"unknown rollout action {action!r} (want one of {', '.join(rollout_actions.ACTIONS)})")
    await _read_body(request)  # an empty JSON object; read so that a body is never left unread
    make, done = rollout_actions.ACTIONS[action]
    ro = reg.get(ROLLOUT_RT, "v1alpha1", ns, name)
    for p in make(ro):
        reg.patch(ROLLOUT_RT, "v1alpha1", ns, name, "application/merge-patch+json", json.dumps(p.body).encode(),
                  subresource=p.subresource or "", field_validation="Ignore")
    return _json({"message": f"rollout '{name}' {done}"})


# ---------------------------------------------------------------------------------------------- app
async def api_not_found(request: web.Request) -> web.Response:
    return _error(404, f"no console API at {request.method} {request.path}")


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


def console_app(registry: Registry, query: QueryFn, *, auth: ConsoleAuth, query_range: QueryRangeFn | None = None,
                logs: LogReader | None = None, static_dir: str | Path | None = None,
                workers: BodyPool | None = None) -> web.Application:
    """The console application: JSON under `/api/`, and `static_dir` (the UI build) at `/` when given.

    Every request passes `sluice.console.auth` first (Host, Origin, a credential from `auth`, JSON/YAML writes).

    `query(expr)` evaluates one PromQL instant query at "now" (the daemon passes its embedded engine);
    `query_range(expr, start, end, step)` a range query (unix seconds; without it the charts and sparklines
    answer 501); `logs` reads one container's log lines (without it the logs endpoint answers 501).

    Large objects are decoded, admitted, validated and dumped in `workers`, processes running
    `sluice.console.worker`; without it the app has its own pool (they start on the first large object) and
    stops it when the app shuts down.
    """
    app = web.Application(middlewares=[host_guard(refuse), auth_middleware, _errors],
                          client_max_size=3 * 1024 * 1024)
    app.on_response_prepare.append(security_headers)
    app[AUTH_KEY] = auth
    app[REGISTRY_KEY] = registry
    app[QUERY_KEY] = query
    app[QUERY_RANGE_KEY] = query_range
    app[LOGS_KEY] = logs
    if workers is None:
        workers = BodyPool.from_env(console_worker.MODULE)
        own = workers

        async def stop_workers(_: web.Application) -> None:
            await own.close()

        # on shutdown, before in-flight handlers are waited for: a request in a worker answers 503 at once
        app.on_shutdown.append(stop_workers)
    app[WORKERS_KEY] = workers
    r = app.router
    r.add_routes(login_routes())
    r.add_get("/api/namespaces", namespaces)
    r.add_get("/api/namespaces/{ns}/graph", graph)
    r.add_get("/api/istio/config", config_list)
    r.add_get("/api/namespaces/{ns}/istio", config_list)
    r.add_post("/api/namespaces/{ns}/istio/{kind}", config_create)
    r.add_get("/api/namespaces/{ns}/istio/{kind}/{name}", config_get)
    r.add_put("/api/namespaces/{ns}/istio/{kind}/{name}", config_put)
    r.add_delete("/api/namespaces/{ns}/istio/{kind}/{name}", config_delete)
    r.add_get("/api/namespaces/{ns}/workloads", workloads)
    r.add_get("/api/namespaces/{ns}/workloads/{name}", workload_detail)
    r.add_get("/api/namespaces/{ns}/workloads/{name}/metrics", workload_metrics)
    r.add_get("/api/namespaces/{ns}/workloads/{name}/logs", workload_logs)
    r.add_get("/api/namespaces/{ns}/apps", apps)
    r.add_get("/api/namespaces/{ns}/services", services)
    r.add_get("/api/namespaces/{ns}/services/{name}", service_detail)
    r.add_get("/api/namespaces/{ns}/services/{name}/traffic-shifting", traffic_shifting_get)
    r.add_post("/api/namespaces/{ns}/services/{name}/traffic-shifting", traffic_shifting_post)
    r.add_delete("/api/namespaces/{ns}/services/{name}/traffic-shifting", traffic_shifting_delete)
    r.add_get("/api/namespaces/{ns}/rollouts", rollouts_list)
    r.add_get("/api/namespaces/{ns}/rollouts/{name}", rollout_detail)
    r.add_post("/api/namespaces/{ns}/rollouts/{name}/{action}", rollout_action)
    r.add_route("*", "/api/{tail:.*}", api_not_found)
    if static_dir is not None:
        r.add_get("/{tail:.*}", _static_handler(Path(static_dir)))
    return app
