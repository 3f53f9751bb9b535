"""Streaming watches: newline-delimited JSON events, one flushed chunk each.

Called by `sluice.api.server` for `?watch=true`. Implements resume from `resourceVersion` (with 410 Expired
as an ERROR event when history is gone), periodic BOOKMARKs (also how a dead client is noticed: the write
fails), `timeoutSeconds`, and watch-list (`sendInitialEvents=true`): synthetic ADDED events for the current
state, then the `k8s.io/initial-events-end` bookmark, then live events — what kubectl 1.35's
`delete --wait` and `rollout status` wait for.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from sluice.api.errors import ApiError, status
from sluice.api.registry import Registry
from sluice.resources.kinds import ResourceType
from sluice.store import Event, Expired

__all__ = ["serve", "query_bool", "BOOKMARK_INTERVAL"]

BOOKMARK_INTERVAL = 5.0
DEFAULT_TIMEOUT = 1800.0
_TRUE = {"1", "t", "true", "y", "yes"}


def query_bool(q: Any, key: str) -> bool:
    """A boolean query parameter, as client-go (`true`) and the Python client (`True`) send it."""
    return str(q.get(key, "")).strip().lower() in _TRUE


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def serve(request: web.Request, reg: Registry, rt: ResourceType, version: str,
                namespace: str | None) -> web.StreamResponse:
    q = request.query
    rv_param = q.get("resourceVersion", "")
    send_initial = query_bool(q, "sendInitialEvents")
    bookmarks = query_bool(q, "allowWatchBookmarks")
    rv_match = q.get("resourceVersionMatch", "")
    if rv_match and not send_initial:
        raise ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                                       "resourceVersionMatch is forbidden for watch unless sendInitialEvents is "
                                       "provided")
    if send_initial and (rv_match != "NotOlderThan" or not bookmarks):
        raise ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
                                       "sendInitialEvents requires allowWatchBookmarks=true and "
                                       "resourceVersionMatch=NotOlderThan")
    try:
        timeout = float(q.get("timeoutSeconds", "") or DEFAULT_TIMEOUT)
    except ValueError:
        raise ApiError.bad_request("timeoutSeconds must be a number") from None
    match = reg.matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
    since: int | None = None
    initial = send_initial or rv_param in ("", "0")
    if not initial:
        try:
            since = int(rv_param)
        except ValueError:
            raise ApiError.bad_request(f"invalid resourceVersion: {rv_param!r}") from None
    store = reg.store
    expired: Expired | None = None
    try:
        watcher, history = store.watch(rt.key, namespace, since)
    except Expired as e:
        expired = e
        watcher, history = store.watch(rt.key, namespace, None)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    last_rv = store.revision if since is None else since
    try:
        if expired is not None:
            await resp.write(_line("ERROR", status(410, "Expired", str(expired))))
            return resp
        if initial:
            items, rv, _ = reg.list_objects(rt, version, namespace)
            for obj in items:
                if match(obj):
                    await resp.write(_line("ADDED", obj))
            last_rv = rv
            if send_initial:
                await resp.write(_line("BOOKMARK", {
                    "kind": rt.kind, "apiVersion": rt.api_version(version),
                    "metadata": {"resourceVersion": str(rv), "annotations": {"k8s.io/initial-events-end": "true"}}}))
        for ev in history:
            last_rv = await _send(resp, reg, rt, version, ev, match, last_rv)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                ev_or_none = await asyncio.wait_for(watcher.queue.get(), min(BOOKMARK_INTERVAL, remaining))
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break
                if bookmarks and watcher.queue.empty():
                    last_rv = max(last_rv, store.revision)
                    await resp.write(_line("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version(version),
                                                        "metadata": {"resourceVersion": str(last_rv)}}))
                continue
            if ev_or_none is None:
                break  # the store dropped a consumer that fell too far behind
            last_rv = await _send(resp, reg, rt, version, ev_or_none, match, last_rv)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unwatch(watcher)
    return resp


async def _send(resp: web.StreamResponse, reg: Registry, rt: ResourceType, version: str, ev: Event,
                match: Any, last_rv: int) -> int:
    if ev.rv <= last_rv:
        return last_rv
    now = match(ev.object)
    before = match(ev.prev) if ev.prev is not None else now
    # Like kube-apiserver's watch cache: an object that starts or stops matching the selector is seen
    # as ADDED or DELETED by this watcher.
    typ = ev.type
    if typ == "MODIFIED" and now != before:
        typ = "ADDED" if now else "DELETED"
    if now or (typ == "DELETED" and before):
        await resp.write(_line(typ, reg.present(rt, version, ev.object)))
    return ev.rv
