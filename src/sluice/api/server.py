"""The aiohttp application that speaks the Kubernetes REST API.

Built by the daemon (`sluice.daemon.main`). Routing is by URL shape (`/api/v1/namespaces/<ns>/<plural>/<name>/<sub>`,
`/apis/<group>/<version>/...`), the work is done by `sluice.api.registry.Registry`, watches by
`sluice.api.watch`. Every error leaves as a Kubernetes `Status` object; no traceback reaches a client.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sluice.api import discovery, streaming, watch
from sluice.api.bodies import decode_object
from sluice.api.body_pool import BodyPool
from sluice.api.errors import ApiError, status
from sluice.api.registry import Registry, WriteResult, kind_for_url
from sluice.kube import decoding
from sluice.offloop import gc_paused, run_off_loop
from sluice.resources.kinds import ResourceType

__all__ = ["make_app", "LogSource", "StreamSource", "MAX_BODY"]

log = logging.getLogger("sluice.api")

MAX_BODY = decoding.MAX_BODY
TABLE_MARK = "as=table"

LogSource = Callable[[web.Request, dict[str, Any], dict[str, str]], Awaitable[web.StreamResponse]]
StreamSource = streaming.StreamSource

REGISTRY_KEY = web.AppKey("registry", Registry)
TOKEN_KEY = web.AppKey("token", str)
LOGS_KEY = web.AppKey("logs", object)
WORKERS_KEY = web.AppKey("body_workers", BodyPool)


def json_response(obj: Any, code: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Cache-Control": "no-cache, private"}
    resp = web.Response(status=code, body=json.dumps(obj, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)
    _add_warnings(resp, warnings or [])
    return resp


def _add_warnings(resp: web.Response, warnings: list[str]) -> None:
    for w in warnings:
        resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')


async def _written(body: bytes, res: WriteResult, code: int) -> web.Response:
    """The answer to a write: the object it stored, encoded off the loop when the request was large (so is the
    object), or the answer a worker process already encoded."""
    if res.encoded is not None:
        resp = web.Response(status=code, body=res.encoded, content_type="application/json",
                            headers={"Cache-Control": "no-cache, private"})
        _add_warnings(resp, res.warnings)
        return resp
    if not _large(body):
        return json_response(res.object, code, res.warnings)
    return await run_off_loop(json_response, res.object, code, res.warnings)


def error_response(err: ApiError) -> web.Response:
    resp = json_response(err.body(), err.code)
    retry = (err.details or {}).get("retryAfterSeconds")
    if retry:  # kube-apiserver sends it with a 429 (client-go waits that long and retries)
        resp.headers["Retry-After"] = str(retry)
    return resp


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except web.HTTPRequestEntityTooLarge:
        return error_response(ApiError.too_large())
    except web.HTTPException as e:
        if e.status == 404:
            return error_response(ApiError.gone_path())
        if e.status == 405:
            return error_response(ApiError.method_not_allowed(request.method))
        return error_response(ApiError(e.status, e.reason, e.text or e.reason))
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as e:  # the last line of defence: log it, answer a Status, never a traceback
        log.exception("internal error serving %s %s", request.method, request.path)
        return error_response(ApiError.internal(f"{type(e).__name__}: {e}"))


def _auth(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    open_paths = {"/healthz", "/livez", "/readyz"}

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path not in open_paths:
            got = request.headers.get("Authorization", "")
            scheme, _, value = got.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return error_response(ApiError.unauthorized())
        return await handler(request)

    return middleware


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    sub: str


def _parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and rest[2] in ("status", "finalize"):
        # /api/v1/namespaces/<name>/status is the namespace's own subresource
        pass
    elif rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else "")
    if len(rest) > 3:
        return None
    rt = kind_for_url(group, version, plural)
    if rt is None:
        return None
    if ns is not None and not rt.namespaced:
        return None
    return Target(rt, version, ns, name, sub)


# A body that trickles in holds a connection the header deadline no longer covers; kube-apiserver's
# 60 s request timeout ends it the same way.
BODY_TIMEOUT = 60.0


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError.too_large()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            body = await request.read()
    except TimeoutError:
        raise ApiError(504, "Timeout", "Timeout: request did not complete within requested timeout - "
                                       "context deadline exceeded") from None
    if len(body) > MAX_BODY:
        raise ApiError.too_large()
    return body


# A larger body is decoded and admitted in a worker process (`sluice.api.body_pool`): 3 MiB of YAML takes
# seconds to compose, and a VirtualService of thousands of routes seconds to validate, while the event loop
# serves every other request (and xDS) meanwhile; in a thread it shared the GIL with them. Small bodies,
# nearly all of them, stay on the loop.
_ON_LOOP_BODY = 64 * 1024


def _large(body: bytes) -> bool:
    return len(body) > _ON_LOOP_BODY


def _gc_paused_for(body: bytes) -> AbstractContextManager[None]:
    """The collector stays paused through a large write's steps, not only inside each (see `sluice.offloop`):
    a full collection between two of them would walk the large object, holding the GIL."""
    return gc_paused(_large(body))


async def decode_body(body: bytes, content_type: str, kind: str, registry: Registry, workers: BodyPool) -> Any:
    """`decode_object`, in a worker process for a large body."""
    if not _large(body):
        return decode_object(body, content_type, kind)
    return await registry.decode_in_worker(workers, body, content_type, kind)


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower().replace(" ", "")
    return TABLE_MARK in accept and "g=meta.k8s.io" in accept


class Handlers:
    def __init__(self, registry: Registry, logs: LogSource | None, streams: StreamSource | None = None,
                 workers: BodyPool | None = None) -> None:
        self.registry = registry
        self.workers = workers or BodyPool()
        self.logs = logs
        self.streams = streams

    # ------------------------------------------------------------------ discovery & misc
    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def api(self, request: web.Request) -> web.Response:
        return json_response(discovery.api_versions(request.host))

    async def apis(self, request: web.Request) -> web.Response:
        return json_response(discovery.api_group_list())

    async def api_group(self, request: web.Request) -> web.Response:
        doc = discovery.api_group(request.match_info["group"])
        if doc is None:
            raise ApiError.gone_path()
        return json_response(doc)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        from sluice.api import openapi

        return web.Response(body=openapi.openapi_v2(), headers={"Content-Type": openapi.OPENAPI_V2_CONTENT_TYPE})

    async def openapi_v3(self, request: web.Request) -> web.Response:
        from sluice.api import openapi

        path = request.match_info.get("path", "")
        if not path:
            return json_response(openapi.openapi_v3_index())
        body = openapi.openapi_v3_json(path)  # serialised once, then cached
        if body is None:
            raise ApiError.gone_path()
        return web.Response(body=body, content_type="application/json")

    # ------------------------------------------------------------------ resources
    async def resource(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            doc = discovery.resource_list("", parts[1])
            if doc is None:
                raise ApiError.gone_path()
            return json_response(doc)
        if parts[:1] == ["apis"] and len(parts) == 3:
            doc = discovery.resource_list(parts[1], parts[2])
            if doc is None:
                raise ApiError.gone_path()
            return json_response(doc)
        target = _parse_path(path)
        if target is None:
            raise ApiError.gone_path()
        method = request.method
        q = request.query
        t = target
        reg = self.registry
        dry_run = q.get("dryRun", "") == "All"
        fv = q.get("fieldValidation", "Strict") or "Strict"
        if t.sub and t.sub not in t.rt.subresources:
            raise ApiError.gone_path()
        if t.name is None:
            if method == "GET":
                if watch.query_bool(q, "watch"):
                    return await watch.serve(request, reg, t.rt, t.version, t.namespace)
                return self._list(request, t)
            if method == "POST":
                raw = await _read_body(request)
                with _gc_paused_for(raw):
                    if _large(raw):
                        res = await reg.create_in_worker(self.workers, t.rt, t.version, t.namespace, raw,
                                                         request.content_type, field_validation=fv, dry_run=dry_run)
                    else:
                        res = reg.create(t.rt, t.version, t.namespace, decode_object(raw, request.content_type,
                                                                                     t.rt.kind),
                                         field_validation=fv, dry_run=dry_run)
                    answer = await _written(raw, res, 201)
                    del res  # freed before the collector resumes (it would walk it all)
                return answer
            if method == "DELETE":
                opts = await self._delete_options(request)
                items = reg.delete_collection(t.rt, t.version, t.namespace, opts, dry_run=dry_run,
                                              label_selector=q.get("labelSelector", ""),
                                              field_selector=q.get("fieldSelector", ""))
                return json_response({"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version(t.version),
                                      "metadata": {"resourceVersion": str(reg.store.revision)}, "items": items})
            raise ApiError.method_not_allowed(method)
        name = t.name
        if t.sub == "log":
            if method != "GET":
                raise ApiError.method_not_allowed(method)
            pod = reg.get(t.rt, t.version, t.namespace, name)
            return await self._logs(request, pod)
        if t.sub in streaming.ACTIONS:
            pod = reg.get(t.rt, t.version, t.namespace, name)
            return await streaming.serve(request, pod, t.sub, self.streams)
        if t.sub == "scale":
            if method == "GET":
                return json_response(reg.get_scale(t.rt, t.namespace, name))
        if method == "GET":
            if watch.query_bool(q, "watch"):
                raise ApiError.bad_request("watch of a single object: use a list with fieldSelector=metadata.name")
            obj = reg.get(t.rt, t.version, t.namespace, name)
            if _wants_table(request):
                return json_response(self._table(t.rt, [obj], str(reg.store.revision), "",
                                                 q.get("includeObject", "Metadata")))
            return json_response(obj)
        if method == "PUT":
            raw = await _read_body(request)
            with _gc_paused_for(raw):
                if _large(raw):
                    res = await reg.replace_in_worker(self.workers, t.rt, t.version, t.namespace, name, raw,
                                                      request.content_type, subresource=t.sub,
                                                      field_validation=fv, dry_run=dry_run)
                else:
                    res = reg.replace(t.rt, t.version, t.namespace, name,
                                      decode_object(raw, request.content_type, t.rt.kind), subresource=t.sub,
                                      field_validation=fv, dry_run=dry_run)
                answer = await _written(raw, res, 200)
                del res  # freed before the collector resumes (it would walk it all)
            return answer
        if method == "PATCH":
            raw = await _read_body(request)
            ctype = request.headers.get("Content-Type", "")
            with _gc_paused_for(raw):
                if _large(raw):
                    res = await reg.patch_in_worker(self.workers, t.rt, t.version, t.namespace, name, ctype, raw,
                                                    subresource=t.sub, field_validation=fv, dry_run=dry_run)
                else:
                    res = reg.patch(t.rt, t.version, t.namespace, name, ctype, raw, subresource=t.sub,
                                    field_validation=fv, dry_run=dry_run)
                answer = await _written(raw, res, 200)
                del res  # freed before the collector resumes (it would walk it all)
            return answer
        if method == "DELETE":
            if t.sub:
                raise ApiError.method_not_allowed(method)
            opts = await self._delete_options(request)
            obj = reg.delete(t.rt, t.version, t.namespace, name, opts, dry_run=dry_run)
            if t.rt.kind == "Pod":
                return json_response(obj)  # kube-apiserver answers a pod DELETE with the pod (clients decode it)
            if obj["metadata"].get("deletionTimestamp") and reg.store.get(t.rt.key, t.namespace or "", name):
                return json_response(obj, 202)
            details = {"name": name, "group": t.rt.group, "kind": t.rt.plural, "uid": obj["metadata"].get("uid")}
            return json_response(status(200, "", "", details, ok=True))
        raise ApiError.method_not_allowed(method)

    def _list(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise ApiError.bad_request(f"invalid limit: {q.get('limit')!r}") from None
        items, rv, cont = self.registry.list_objects(
            t.rt, t.version, t.namespace, label_selector=q.get("labelSelector", ""),
            field_selector=q.get("fieldSelector", ""), limit=max(limit, 0), continue_token=q.get("continue", ""))
        if _wants_table(request):
            return json_response(self._table(t.rt, items, str(rv), cont, q.get("includeObject", "Metadata")))
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
        return json_response({"kind": f"{t.rt.kind}List", "apiVersion": t.rt.api_version(t.version),
                              "metadata": meta, "items": items})

    @staticmethod
    def _table(rt: ResourceType, items: list[dict[str, Any]], rv: str, cont: str, include: str) -> dict[str, Any]:
        from sluice.resources import printers

        if include not in ("", "None", "Metadata", "Object"):
            raise ApiError.bad_request(f'includeObject: Unsupported value: "{include}": supported values: '
                                       '"None", "Metadata", "Object"')
        return printers.table(rt.kind, items, now=datetime.now(UTC), include_object=include or "Metadata",
                              resource_version=rv, continue_token=cont or None)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await _read_body(request)
        opts: dict[str, Any] = {}
        if raw.strip():
            body = await decode_body(raw, request.content_type, "DeleteOptions", self.registry, self.workers)
            if not isinstance(body, dict):
                raise ApiError.bad_request("DeleteOptions must be a JSON object")
            opts.update(body)
        q = request.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise ApiError.bad_request("gracePeriodSeconds must be an integer") from None
        if "orphanDependents" in q:
            opts["orphanDependents"] = watch.query_bool(q, "orphanDependents")
        return opts

    async def _logs(self, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
        name = pod["metadata"]["name"]
        container = streaming.pick_container(pod, request.query.get("container") or "")
        if self.logs is None:
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                       "ContainerCreating")
        return await self.logs(request, pod, {**request.query, "container": container})


def make_app(registry: Registry, token: str, logs: LogSource | None = None,
             extra_routes: list[web.RouteDef] | None = None, streams: StreamSource | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors, _auth(token)], client_max_size=MAX_BODY + 1024)
    workers = BodyPool.from_env()
    h = Handlers(registry, logs, streams, workers)
    app[REGISTRY_KEY] = registry
    app[WORKERS_KEY] = workers

    async def stop_workers(_: web.Application) -> None:
        await workers.close()

    # on shutdown, before in-flight handlers are waited for: a request in a worker answers 503 at once
    app.on_shutdown.append(stop_workers)
    for p in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(p, h.health)
    app.router.add_get("/version", h.version)
    app.router.add_get("/api", h.api)
    app.router.add_get("/apis", h.apis)
    app.router.add_get("/openapi/v2", h.openapi_v2)
    app.router.add_get("/openapi/v3", h.openapi_v3)
    app.router.add_get("/openapi/v3/{path:.+}", h.openapi_v3)
    app.router.add_get("/apis/{group}", h.api_group)
    app.router.add_routes(extra_routes or [])  # e.g. the xDS server's /debug endpoints
    app.router.add_route("*", "/api/{tail:.*}", h.resource)
    app.router.add_route("*", "/apis/{tail:.*}", h.resource)
    return app
