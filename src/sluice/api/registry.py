"""Object lifecycle rules on top of the store: what kube-apiserver's generic registry does.

Called by the HTTP handlers (`sluice.api.server`). For every write it runs the admission chain
(kind/version/name checks → defaulting → metadata → structural schema → Istio semantics), keeps
`uid`/`creationTimestamp`/`generation`/`status` rules, honours finalizers and owner references on delete,
and returns warnings to be sent as `Warning` headers. Nothing is stored unless every check passes.

For a large body (`*_in_worker`) the same chain runs in a worker process (`sluice.api.body_worker`, through
`sluice.api.body_pool`) against a copy of the stored object; only the store checks and the commit run here.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sluice import meshconfig
from sluice.api import mutators
from sluice.api import patch as patching
from sluice.api.body_pool import BodyPool
from sluice.api.errors import ApiError
from sluice.kube import decoding, selectors
from sluice.objects import Obj
from sluice.resources import defaults, loadbalancer
from sluice.resources.kinds import ResourceType, by_kind, by_plural
from sluice.store import sqlite
from sluice.store.sqlite import Store, Tx
from sluice.validation import metadata as meta_validation
from sluice.validation.field import FieldError

__all__ = ["Registry", "ApiOptions", "WriteResult", "now_rfc3339", "PROTECTED_NAMESPACES", "kind_for_url"]


PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
MAX_JSON_PATCH_OPERATIONS = 10000  # kube-apiserver's maxJSONPatchOperations
# A write admitted in a worker process is committed only if the stored object did not change meanwhile; after
# this many tries it is refused with a Conflict.
_OFF_LOOP_ATTEMPTS = 3
APPLY_PATCH = "application/apply-patch+yaml"

_FIELD_SELECTABLE: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "Namespace": ("status.phase",),
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ApiOptions:
    relative_weights: bool = False  # Istio >= 1.15 semantics: route weights are relative, not summing to 100
    inject_sidecars: bool = False  # add the istio-proxy container to new Pods (the daemon turns this on)
    graceful_pods: bool = False  # a kubelet is attached: deleting a Pod marks it, the kubelet removes it
    # where a LoadBalancer Service's ports are served on 127.0.0.1 (see sluice.resources.loadbalancer)
    gateway_ports: loadbalancer.PortMap = field(default_factory=loadbalancer.PortMap)


@dataclass
class WriteResult:
    object: Obj
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    # The answer's body, already encoded (a dry run admitted in a worker process); `object` is then empty.
    encoded: bytes | None = None


def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def _without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class Registry:
    def __init__(self, store: Store, options: ApiOptions | None = None) -> None:
        self.store = store
        self.options = options or ApiOptions()

    @property
    def options(self) -> ApiOptions:
        return self._options

    @options.setter
    def options(self, options: ApiOptions) -> None:
        """The options, and the mutating admission they call for (the daemon turns injection on once its kubelet
        is attached)."""
        self._options = options
        self.mutators: list[mutators.Mutator] = [
            mutators.ServiceAllocator(lambda: self.store.list_kind("services")[0], options.gateway_ports)]
        if options.inject_sidecars:
            self.mutators.append(mutators.SidecarInjector(self._mesh_config, self._namespace_labels))
        # Writes whose admission reads or allocates shared state (a Service's ClusterIP) stay on the loop.
        self._on_loop_kinds = mutators.on_loop_kinds(self.mutators)

    def _namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels now (the sidecar injector honours `istio-injection=disabled`)."""
        ns = self.store.get("namespaces", "", name)
        labels = ((ns or {}).get("metadata") or {}).get("labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def _mesh_config(self) -> meshconfig.MeshConfig:
        """The mesh config stored now (ConfigMap `istio-system/istio`), for the sidecar injector."""
        cm = self.store.get("configmaps", meshconfig.MESH_NAMESPACE, meshconfig.MESH_CONFIGMAP)
        return meshconfig.mesh_config_from([cm] if cm is not None else [])

    # ------------------------------------------------------------------ bootstrap
    def ensure_namespace(self, name: str) -> None:
        rt = by_kind("", "Namespace")
        assert rt is not None
        if self.store.get(rt.key, "", name) is None:
            self.create(rt, "v1", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # ------------------------------------------------------------------ reads
    def present(self, rt: ResourceType, version: str, obj: Obj) -> Obj:
        """The stored object as served at `version` (one stored object is served at every version)."""
        out = dict(obj)
        out["apiVersion"] = rt.api_version(version)
        out["kind"] = rt.kind
        return out

    def get(self, rt: ResourceType, version: str, ns: str | None, name: str) -> Obj:
        obj = self.store.get(rt.key, ns or "", name)
        if obj is None:
            raise ApiError.not_found(rt, name)
        return self.present(rt, version, obj)

    def list_objects(self, rt: ResourceType, version: str, ns: str | None, *, label_selector: str = "",
             field_selector: str = "", limit: int = 0, continue_token: str = "") -> tuple[list[Obj], int, str]:
        lsel = self._label_selector(label_selector)
        fsel = self._field_selector(rt, field_selector)
        items, rv = self.store.list_kind(rt.key, ns)
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                tok = json.loads(base64.urlsafe_b64decode(continue_token.encode()).decode())
                start = (str(tok["ns"]), str(tok["name"]))
            except (ValueError, KeyError, TypeError):
                raise ApiError.bad_request("continue key is not valid: invalid continue token") from None
        out: list[Obj] = []
        next_token = ""
        for obj in items:
            m = obj.get("metadata") or {}
            key = (str(m.get("namespace") or ""), str(m.get("name")))
            if start is not None and key <= start:
                continue
            if lsel is not None and not lsel.matches(m.get("labels") or {}):
                continue
            if fsel is not None and not fsel.matches(obj):
                continue
            if limit and len(out) >= limit:
                last = out[-1]["metadata"]
                next_token = base64.urlsafe_b64encode(json.dumps(
                    {"ns": last.get("namespace") or "", "name": last["name"], "rv": rv}).encode()).decode()
                break
            out.append(self.present(rt, version, obj))
        return out, rv, next_token

    def matcher(self, rt: ResourceType, label_selector: str, field_selector: str) -> Callable[[Obj], bool]:
        """A predicate for watch events with the same selector semantics as list."""
        lsel = self._label_selector(label_selector)
        fsel = self._field_selector(rt, field_selector)

        def match(obj: Obj) -> bool:
            m = obj.get("metadata") or {}
            if lsel is not None and not lsel.matches(m.get("labels") or {}):
                return False
            return fsel is None or fsel.matches(obj)

        return match

    def _label_selector(self, text: str) -> selectors.LabelSelector | None:
        if not text:
            return None
        try:
            return selectors.parse_label_selector(text)
        except selectors.SelectorError as e:
            raise ApiError.bad_request(str(e)) from None

    def _field_selector(self, rt: ResourceType, text: str) -> selectors.FieldSelector | None:
        if not text:
            return None
        allowed = ("metadata.name", "metadata.namespace") + _FIELD_SELECTABLE.get(rt.kind, ())
        try:
            return selectors.parse_field_selector(text, allowed=allowed)
        except selectors.SelectorError as e:
            raise ApiError.bad_request(str(e)) from None

    # ------------------------------------------------------------------ create
    def create(self, rt: ResourceType, version: str, ns: str | None, body: Any, *,
               field_validation: str = "Strict", dry_run: bool = False) -> WriteResult:
        obj, warnings = self._prepare_create(rt, version, ns, body, field_validation)
        return self._commit_create(rt, version, obj, warnings, dry_run)

    async def create_in_worker(self, workers: BodyPool, rt: ResourceType, version: str, ns: str | None, raw: bytes,
                               content_type: str, *, field_validation: str = "Strict", dry_run: bool = False,
                               plain: bool = False) -> WriteResult:
        """`create` of a large body: decoded and admitted (which reads nothing stored) in a worker process, then
        checked against the store and committed here. A dry run's answer comes back encoded and is sent as is.

        `plain`: the admitted object comes back as it is and is stored and answered as `create` would (its own key
        order, no `encoded` answer), for a caller that shows the object's text (the console's YAML)."""
        if self._admitted_on_loop(rt):
            body = await self.decode_in_worker(workers, raw, content_type, rt.kind)
            return self.create(rt, version, ns, body, field_validation=field_validation, dry_run=dry_run)
        head, results = await workers.run(
            {"op": "create", **self._job(rt, version, ns), "content_type": content_type,
             "field_validation": field_validation, "dry_run": dry_run, "plain": plain}, [raw])
        warnings = [str(w) for w in head["warnings"]]
        if plain:
            obj = json.loads(results[0])
            await asyncio.sleep(0)  # a request waiting meanwhile is served before the commit
            return self._commit_create(rt, version, obj, warnings, dry_run)
        if dry_run:
            obj_ns, name = str(head["namespace"]), str(head["name"])
            if rt.namespaced and self.store.get("namespaces", "", obj_ns) is None:
                raise ApiError.namespace_not_found(obj_ns)
            if self.store.get(rt.key, obj_ns, name) is not None:
                raise ApiError.already_exists(rt, name)
            return WriteResult({}, warnings, True, encoded=results[0])
        stored, answer = results
        obj = json.loads(stored)  # the object the watchers get
        await asyncio.sleep(0)  # a request waiting meanwhile is served before the commit
        res = self._commit_create(rt, version, obj, warnings, dry_run, stored.decode())
        res.encoded = _with_resource_version(answer, str(_meta(res.object)["resourceVersion"]))
        return res

    async def decode_in_worker(self, workers: BodyPool, raw: bytes, content_type: str, kind: str) -> Any:
        """`sluice.api.bodies.decode_object` of a large body, in a worker process."""
        _, (data,) = await workers.run({"op": "decode", "content_type": content_type, "kind": kind}, [raw])
        return json.loads(data)

    def _admitted_on_loop(self, rt: ResourceType) -> bool:
        """Whether writes of this kind read stored state in their admission (then only its decoding is done in a
        worker process)."""
        return rt.kind in self._on_loop_kinds

    def _job(self, rt: ResourceType, version: str, ns: str | None) -> dict[str, Any]:
        """What a worker needs to know of the request and of this registry to admit a write."""
        return {"group": rt.group, "kind": rt.kind, "version": version, "namespace": ns,
                "options": {"relative_weights": self.options.relative_weights,
                            "inject_sidecars": self.options.inject_sidecars,
                            "graceful_pods": self.options.graceful_pods}}

    def _prepare_create(self, rt: ResourceType, version: str, ns: str | None, body: Any,
                        field_validation: str) -> tuple[Obj, list[str]]:
        obj = self._decode(rt, version, ns, body, None)
        m = _meta(obj)
        if not m.get("name") and m.get("generateName"):
            m["name"] = f"{m['generateName']}{uuid.uuid4().hex[:5]}"
        for k in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            m.pop(k, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_rfc3339()
        if rt.has_spec:
            m["generation"] = 1
        if "status" in rt.subresources and rt.kind not in ("Pod", "Namespace"):
            obj.pop("status", None)
        defaults.apply_defaults(rt.group, rt.kind, obj)
        mutated = False
        for mutator in self.mutators:
            if rt.kind in mutator.kinds:
                mutator.on_create(obj)
                mutated = True
        if mutated:  # kube-apiserver defaults what a mutating webhook added (the injected container's probes)
            defaults.apply_defaults(rt.group, rt.kind, obj)
        return obj, self._admit(rt, version, obj, None, field_validation)

    def _commit_create(self, rt: ResourceType, version: str, obj: Obj, warnings: list[str],
                       dry_run: bool, encoded: str | None = None) -> WriteResult:
        """`encoded`: `obj` as a `sluice.store.sqlite.PRESTAMPED` text, stored as it is."""
        m = _meta(obj)
        if rt.namespaced and self.store.get("namespaces", "", str(m["namespace"])) is None:
            raise ApiError.namespace_not_found(str(m["namespace"]))
        if dry_run:
            if self.store.get(rt.key, m.get("namespace", ""), m["name"]) is not None:
                raise ApiError.already_exists(rt, m["name"])
            return WriteResult(self.present(rt, version, obj), warnings, True)
        try:
            with _disk_full_is_507():
                stored = self.store.create(rt.key, obj, encoded)
        except sqlite.AlreadyExists:
            raise ApiError.already_exists(rt, m["name"]) from None
        return WriteResult(self.present(rt, version, stored), warnings, True)

    # ------------------------------------------------------------------ update / patch
    def replace(self, rt: ResourceType, version: str, ns: str | None, name: str, body: Any, *,
                subresource: str = "", field_validation: str = "Strict", dry_run: bool = False) -> WriteResult:
        if subresource == "scale":
            return self._write_scale(rt, version, ns, name, lambda cur: body, dry_run)
        current = self._current(rt, ns, name)
        new, warnings = self._prepare_replace(rt, version, ns, name, current, body, subresource, field_validation)
        return self._commit_update(rt, version, current, new, warnings, dry_run)

    async def replace_in_worker(self, workers: BodyPool, rt: ResourceType, version: str, ns: str | None, name: str,
                                raw: bytes, content_type: str, *, subresource: str = "",
                                field_validation: str = "Strict", dry_run: bool = False,
                                plain: bool = False) -> WriteResult:
        """`replace` of a large body: decoded and admitted in a worker process (see `_update_in_worker`;
        `plain` as in `create_in_worker`)."""
        if subresource == "scale" or self._admitted_on_loop(rt):
            self._current(rt, ns, name)
            body = await self.decode_in_worker(workers, raw, content_type, rt.kind)
            return self.replace(rt, version, ns, name, body, subresource=subresource,
                                field_validation=field_validation, dry_run=dry_run)
        return await self._update_in_worker(workers, "replace", rt, version, ns, name, raw, content_type, subresource,
                                            field_validation, dry_run, plain)

    async def _update_in_worker(self, workers: BodyPool, op: str, rt: ResourceType, version: str, ns: str | None,
                                name: str, raw: bytes, content_type: str, subresource: str, field_validation: str,
                                dry_run: bool, plain: bool = False) -> WriteResult:
        """An update whose body is decoded, applied and admitted in a worker process against the stored object;
        committed here only if that object did not change meanwhile (else done again; after a few tries, the
        Conflict kube-apiserver answers when its own retries run out)."""
        for _ in range(_OFF_LOOP_ATTEMPTS):
            # The stored text goes to the worker as it is: parsing and re-encoding it here would hold the loop.
            row = self.store.get_json(rt.key, ns or "", name)
            if row is None:
                raise ApiError.not_found(rt, name)
            rv, text = row
            head, results = await workers.run(
                {"op": op, **self._job(rt, version, ns), "name": name, "subresource": subresource,
                 "content_type": content_type, "field_validation": field_validation, "dry_run": dry_run,
                 "plain": plain}, [raw, text.encode()])
            if not self._still(rt, ns, name, rv):
                continue
            warnings = [str(w) for w in head["warnings"]]
            if plain:  # stored (or not: same, dry run) and answered as `replace` would
                current = json.loads(text)
                await asyncio.sleep(0)  # each of these takes the loop tens of ms for a large object: a request
                new = json.loads(results[0])  # waiting meanwhile is served between them and before the commit
                await asyncio.sleep(0)
                if not self._still(rt, ns, name, rv):
                    continue
                return self._commit_update(rt, version, current, new, warnings, dry_run)
            if head["same"] or dry_run:  # the answer, encoded by the worker: nothing to store
                return WriteResult({}, warnings, encoded=results[0])
            stored, answer = results
            current, new = json.loads(text), json.loads(stored)
            await asyncio.sleep(0)  # a request waiting meanwhile is served before the commit
            if not self._still(rt, ns, name, rv):
                continue
            res = self._commit_update(rt, version, current, new, warnings, dry_run, stored.decode())
            stored_rv = str(_meta(res.object).get("resourceVersion") or "")
            if stored_rv and stored_rv != str(rv):  # the new object was stored (not deleted): its answer
                res.encoded = _with_resource_version(answer, stored_rv)
            return res
        raise ApiError.conflict(rt, name)

    def _prepare_replace(self, rt: ResourceType, version: str, ns: str | None, name: str, current: Obj, body: Any,
                         subresource: str, field_validation: str) -> tuple[Obj, list[str]]:
        new = self._decode(rt, version, ns, body, name)
        rv = _meta(new).get("resourceVersion")
        return self._prepare_update(rt, version, current, new, subresource, field_validation,
                                    str(rv) if rv else None)

    def _current(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        current = self.store.get(rt.key, ns or "", name)
        if current is None:
            raise ApiError.not_found(rt, name)
        return current

    def _still(self, rt: ResourceType, ns: str | None, name: str, rv: int) -> bool:
        """Whether the stored object is still at revision `rv` (read without decoding it)."""
        row = self.store.get_json(rt.key, ns or "", name)
        return row is not None and row[0] == rv

    def patch(self, rt: ResourceType, version: str, ns: str | None, name: str, content_type: str, body: bytes,
              *, subresource: str = "", field_validation: str = "Strict", dry_run: bool = False) -> WriteResult:
        # As kube-apiserver's patch handler: the media type first, then the object (404), and only then is the
        # patch decoded and applied to it.
        ctype = self._patch_type(rt, content_type)
        if subresource == "scale":
            return self._write_scale(rt, version, ns, name, lambda cur: self.patch_applier(
                rt, ctype, self.patch_document(ctype, body), subresource)(cur), dry_run)
        current = self._current(rt, ns, name)
        apply = self.patch_applier(rt, ctype, self.patch_document(ctype, body), subresource)
        new, warnings = self._prepare_patch(rt, version, ns, name, current, apply, subresource, field_validation)
        return self._commit_update(rt, version, current, new, warnings, dry_run)

    async def patch_in_worker(self, workers: BodyPool, rt: ResourceType, version: str, ns: str | None, name: str,
                              content_type: str, body: bytes, *, subresource: str = "",
                              field_validation: str = "Strict", dry_run: bool = False) -> WriteResult:
        """`patch` with a large patch document: decoded, applied and admitted in a worker process, in `patch`'s
        order (415, then 404, then the patch's own errors)."""
        ctype = self._patch_type(rt, content_type)
        if subresource == "scale" or self._admitted_on_loop(rt):
            if subresource == "scale" and "scale" not in rt.subresources:
                raise ApiError.gone_path()
            self._current(rt, ns, name)
            _, (data,) = await workers.run({"op": "patch_doc", "group": rt.group, "kind": rt.kind,
                                            "content_type": ctype}, [body])
            doc = json.loads(data)
            apply = self.patch_applier(rt, ctype, doc, subresource)
            if subresource == "scale":
                return self._write_scale(rt, version, ns, name, apply, dry_run)
            current = self._current(rt, ns, name)
            new, warnings = self._prepare_patch(rt, version, ns, name, current, apply, subresource, field_validation)
            return self._commit_update(rt, version, current, new, warnings, dry_run)
        return await self._update_in_worker(workers, "patch", rt, version, ns, name, body, ctype, subresource,
                                            field_validation, dry_run)

    @staticmethod
    def _patch_type(rt: ResourceType, content_type: str) -> str:
        ctype = content_type.split(";")[0].strip().lower()
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([STRATEGIC_PATCH] if rt.builtin else [])
        if ctype not in accepted or ctype == APPLY_PATCH:
            if ctype == APPLY_PATCH:
                raise ApiError(415, "UnsupportedMediaType", "server-side apply is not supported by sluice yet; "
                               "use client-side apply (the default)")
            raise ApiError.unsupported_media_type(ctype, accepted)
        return ctype

    @staticmethod
    def patch_document(ctype: str, body: bytes) -> Any:
        """The patch document in `body`, decoded and bounded."""
        try:
            patch_doc = decoding.decode_json(body or b"null")
        except decoding.TooLarge:
            raise ApiError.too_large() from None
        except decoding.DecodeError as e:
            where = f"{e.field}: " if e.field else ""
            raise ApiError.bad_request(f"error decoding patch: {where}{e.message}") from None
        if ctype == JSON_PATCH and isinstance(patch_doc, list) and len(patch_doc) > MAX_JSON_PATCH_OPERATIONS:
            raise ApiError(413, "RequestEntityTooLarge",
                           f"The allowed count of operations in one json patch request is "
                           f"{MAX_JSON_PATCH_OPERATIONS}, but the request contains {len(patch_doc)}")
        return patch_doc

    @staticmethod
    def patch_applier(rt: ResourceType, ctype: str, patch_doc: Any, subresource: str) -> Callable[[Obj], Obj]:
        """The decoded patch document as a function from the current object to the patched one."""

        def apply(cur: Obj) -> Obj:
            try:
                if ctype == MERGE_PATCH:
                    if not isinstance(patch_doc, dict):
                        raise patching.PatchError("merge patch must be a JSON object")
                    out = patching.json_merge_patch(cur, patch_doc)
                elif ctype == JSON_PATCH:
                    out = patching.json_patch(cur, patch_doc)
                else:
                    if not isinstance(patch_doc, dict):
                        raise patching.PatchError("strategic merge patch must be a JSON object")
                    out = patching.strategic_merge_patch(cur, patch_doc, "Scale" if subresource == "scale"
                                                         else rt.kind)
            except patching.PatchError as e:
                raise ApiError(422, "Invalid", f"the patch could not be applied: {e}") from None
            if not isinstance(out, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            try:  # what a patch builds must fit the same bounds as a body
                checked: Obj = decoding.plain(out)
            except decoding.TooLarge:
                raise ApiError.too_large() from None
            except decoding.DecodeError as e:
                raise ApiError(422, "Invalid", f"the patch could not be applied: {e.message}") from None
            return checked

        return apply

    def _prepare_patch(self, rt: ResourceType, version: str, ns: str | None, name: str, current: Obj,
                       apply: Callable[[Obj], Obj], subresource: str, field_validation: str) -> tuple[Obj, list[str]]:
        presented = self.present(rt, version, current)
        new = apply(copy.deepcopy(presented))
        new = self._decode(rt, version, ns, new, name)
        rv = _meta(new).get("resourceVersion")
        # A resourceVersion in the patch body is a precondition; the one carried over from the object is not.
        expected = str(rv) if rv and rv != _meta(current).get("resourceVersion") else None
        if expected is not None:
            raise ApiError.conflict(rt, name)
        return self._prepare_update(rt, version, current, new, subresource, field_validation, None)

    def _update(self, rt: ResourceType, version: str, current: Obj, new: Obj, subresource: str,
                field_validation: str, dry_run: bool, expected_rv: str | None) -> WriteResult:
        new, warnings = self._prepare_update(rt, version, current, new, subresource, field_validation, expected_rv)
        return self._commit_update(rt, version, current, new, warnings, dry_run)

    def _prepare_update(self, rt: ResourceType, version: str, current: Obj, new: Obj, subresource: str,
                        field_validation: str, expected_rv: str | None) -> tuple[Obj, list[str]]:
        """The object an update would store, admitted, and its warnings; reads nothing but `current`."""
        cm = _meta(current)
        name = str(cm["name"])
        if expected_rv is not None and expected_rv != cm.get("resourceVersion"):
            raise ApiError.conflict(rt, name)
        nm = _meta(new)
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in cm:
                nm[k] = cm[k]
            else:
                nm.pop(k, None)
        if subresource == "status":
            # Only status changes through /status; everything else stays as stored.
            status = new.get("status")
            new = copy.deepcopy(current)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if "status" in rt.subresources:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            defaults.apply_defaults(rt.group, rt.kind, new)
            for mutator in self.mutators:
                if rt.kind in mutator.kinds:
                    mutator.on_update(new, current)
            if rt.has_spec and _without(new, "metadata", "status", "apiVersion", "kind") != \
                    _without(current, "metadata", "status", "apiVersion", "kind"):
                nm["generation"] = int(cm.get("generation") or 0) + 1
        new["apiVersion"] = current.get("apiVersion", rt.api_version())
        new["kind"] = rt.kind
        warnings = self._admit(rt, version, new, current, field_validation) if subresource != "status" else []
        return new, warnings

    def _commit_update(self, rt: ResourceType, version: str, current: Obj, new: Obj, warnings: list[str],
                       dry_run: bool, encoded: str | None = None) -> WriteResult:
        cm, nm = _meta(current), _meta(new)
        name = str(cm["name"])
        if self._same(current, new):
            return WriteResult(self.present(rt, version, current), warnings)
        if dry_run:
            return WriteResult(self.present(rt, version, new), warnings)
        if nm.get("deletionTimestamp") and not nm.get("finalizers") and not nm.get("deletionGracePeriodSeconds"):
            # The last finalizer went away (and no grace period is running): the object can go now.
            self._delete_tx(rt, current)
            return WriteResult(self.present(rt, version, current), warnings)
        try:
            with _disk_full_is_507():
                stored = self.store.update(rt.key, new, int(cm["resourceVersion"]), encoded)
        except sqlite.Conflict:
            raise ApiError.conflict(rt, name) from None
        except sqlite.NotFound:
            raise ApiError.not_found(rt, name) from None
        return WriteResult(self.present(rt, version, stored), warnings)

    @staticmethod
    def _same(a: Obj, b: Obj) -> bool:
        ma = {k: v for k, v in _meta(a).items() if k != "resourceVersion"}
        mb = {k: v for k, v in _meta(b).items() if k != "resourceVersion"}
        return ma == mb and _without(a, "metadata", "apiVersion") == _without(b, "metadata", "apiVersion")

    # ------------------------------------------------------------------ scale subresource
    def get_scale(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        if "scale" not in rt.subresources:
            raise ApiError.gone_path()
        cur = self.store.get(rt.key, ns or "", name)
        if cur is None:
            raise ApiError.not_found(rt, name)
        return self._scale_of(cur)

    @staticmethod
    def _scale_of(obj: Obj) -> Obj:
        m = obj["metadata"]
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        sel = ((spec.get("selector") or {}).get("matchLabels") or {})
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": m["name"], "namespace": m.get("namespace", ""), "uid": m.get("uid"),
                         "resourceVersion": m.get("resourceVersion"),
                         "creationTimestamp": m.get("creationTimestamp")},
            "spec": {"replicas": int(spec.get("replicas", 1))},
            "status": {"replicas": int(status.get("replicas", 0)),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))},
        }

    def _write_scale(self, rt: ResourceType, version: str, ns: str | None, name: str,
                     change: Callable[[Obj], Any], dry_run: bool) -> WriteResult:
        if "scale" not in rt.subresources:
            raise ApiError.gone_path()
        cur = self.store.get(rt.key, ns or "", name)
        if cur is None:
            raise ApiError.not_found(rt, name)
        scale = change(self._scale_of(cur))
        if not isinstance(scale, dict):
            raise ApiError.bad_request("the body must be a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                           f'{json.dumps(replicas)}: must be greater than or equal to 0',
                           {"name": name, "group": "autoscaling", "kind": "Scale",
                            "causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                        "message": f"Invalid value: {json.dumps(replicas)}: must be greater "
                                                   "than or equal to 0"}]})
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt, name)
        new = copy.deepcopy(cur)
        new.setdefault("spec", {})["replicas"] = replicas
        res = self._update(rt, version, cur, new, "", "Ignore", dry_run, None)
        return WriteResult(self._scale_of(res.object), res.warnings)

    # ------------------------------------------------------------------ delete
    def delete(self, rt: ResourceType, version: str, ns: str | None, name: str, options: Obj | None = None,
               *, dry_run: bool = False) -> Obj:
        options = options or {}
        cur = self.store.get(rt.key, ns or "", name)
        if cur is None:
            raise ApiError.not_found(rt, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != cur["metadata"].get("uid"):
            raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                               f"UID in object meta: {cur['metadata'].get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"].get("resourceVersion"):
            raise ApiError.conflict(rt, name)
        if rt.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           {"name": name, "kind": "namespaces"})
        policy = str(options.get("propagationPolicy") or "")
        if not policy:
            orphan = options.get("orphanDependents")
            policy = "Orphan" if orphan is True else "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                           f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"')
        if dry_run:
            return self.present(rt, version, cur)
        grace = options.get("gracePeriodSeconds")
        if rt.kind == "Pod" and self.options.graceful_pods and grace != 0:
            return self.present(rt, version, self._mark_terminating(rt, cur, grace))
        if cur["metadata"].get("finalizers"):
            if cur["metadata"].get("deletionTimestamp"):
                return self.present(rt, version, cur)
            new = copy.deepcopy(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = int(options.get("gracePeriodSeconds") or 0)
            with _disk_full_is_507():
                stored = self.store.update(rt.key, new)
            return self.present(rt, version, stored)
        deleted = self._delete_tx(rt, cur, policy)
        return self.present(rt, version, deleted)

    def _mark_terminating(self, rt: ResourceType, cur: Obj, grace: Any) -> Obj:
        """Graceful pod deletion: set deletionTimestamp; the kubelet stops the pod and then deletes it."""
        if cur["metadata"].get("deletionTimestamp"):
            return cur
        new = copy.deepcopy(cur)
        seconds = int(grace) if isinstance(grace, int) and grace > 0 else \
            int((cur.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = seconds
        with _disk_full_is_507():
            stored = self.store.update(rt.key, new)
        return stored

    def _delete_tx(self, rt: ResourceType, cur: Obj, policy: str = "Background") -> Obj:
        ns = str(cur["metadata"].get("namespace") or "")
        name = str(cur["metadata"]["name"])

        def body(tx: Tx) -> list[Obj]:
            out: list[Obj] = []
            if rt.kind == "Namespace":
                for kind in tx.kinds_in_namespace(name):
                    for o in tx.list_kind(kind, name):
                        out.append(tx.delete(kind, name, o["metadata"]["name"]))
            else:
                self._cascade(tx, ns, str(cur["metadata"].get("uid")), policy, out)
            out.insert(0, tx.delete(rt.key, ns, name))
            return out

        try:
            with _disk_full_is_507():
                deleted = self.store.transaction(body)
        except sqlite.NotFound:
            raise ApiError.not_found(rt, name) from None
        return deleted[0]

    def _cascade(self, tx: Tx, ns: str, uid: str, policy: str, out: list[Obj]) -> None:
        """Garbage-collect (or orphan) the objects that name `uid` among their owners."""
        for kind in tx.kinds_in_namespace(ns):
            for o in tx.list_kind(kind, ns):
                refs = o["metadata"].get("ownerReferences") or []
                if not any(isinstance(r, dict) and r.get("uid") == uid for r in refs):
                    continue
                if policy == "Orphan":
                    o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid] or None
                    if o["metadata"]["ownerReferences"] is None:
                        del o["metadata"]["ownerReferences"]
                    tx.update(kind, ns, o["metadata"]["name"], o)
                elif kind == "pods" and self.options.graceful_pods:
                    # Pods go gracefully: the kubelet drains and stops them, then deletes the objects.
                    if not o["metadata"].get("deletionTimestamp"):
                        o["metadata"]["deletionTimestamp"] = now_rfc3339()
                        o["metadata"]["deletionGracePeriodSeconds"] = int(
                            (o.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                        out.append(tx.update(kind, ns, o["metadata"]["name"], o))
                else:
                    self._cascade(tx, ns, str(o["metadata"].get("uid")), policy, out)
                    out.append(tx.delete(kind, ns, o["metadata"]["name"]))

    def delete_collection(self, rt: ResourceType, version: str, ns: str | None, options: Obj | None, *,
                          label_selector: str = "", field_selector: str = "", dry_run: bool = False) -> list[Obj]:
        items, _, _ = self.list_objects(rt, version, ns, label_selector=label_selector, field_selector=field_selector)
        out = []
        for obj in items:
            m = obj["metadata"]
            if rt.kind == "Namespace" and m["name"] in PROTECTED_NAMESPACES:
                continue
            try:
                out.append(self.delete(rt, version, m.get("namespace"), m["name"], options, dry_run=dry_run))
            except ApiError as e:
                if e.code != 404:
                    raise
        return out

    # ------------------------------------------------------------------ admission
    def _decode(self, rt: ResourceType, version: str, ns: str | None, body: Any, url_name: str | None) -> Obj:
        if not isinstance(body, dict):
            raise ApiError.bad_request(f"the body of the request must be a JSON or YAML object describing a "
                                       f"{rt.kind}, got {type(body).__name__ if body is not None else 'null'}")
        obj = copy.deepcopy(body)
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if kind is not None and kind != rt.kind:
            raise ApiError.bad_request(f"the kind in the body ({kind}) does not match the kind of the URL "
                                       f"({rt.kind})")
        if api_version is not None and api_version not in [rt.api_version(v) for v in rt.versions]:
            raise ApiError.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                       f"API version ({rt.api_version(version)})")
        obj["apiVersion"] = rt.api_version()
        obj["kind"] = rt.kind
        m = obj.get("metadata")
        if m is None:
            m = obj["metadata"] = {}
        if not isinstance(m, dict):
            raise ApiError.bad_request("metadata must be an object")
        if rt.namespaced:
            body_ns = m.get("namespace")
            if body_ns and ns and body_ns != ns:
                raise ApiError.bad_request("the namespace of the provided object does not match the namespace "
                                           "sent on the request")
            m["namespace"] = ns or body_ns or "default"
        else:
            m.pop("namespace", None)
        if url_name is not None and m.get("name") not in (None, "", url_name):
            raise ApiError.bad_request(f"the name of the object ({m.get('name')}) does not match the name on the "
                                       f"URL ({url_name})")
        if url_name is not None:
            m["name"] = url_name
        return obj

    def _admit(self, rt: ResourceType, version: str, obj: Obj, old: Obj | None, field_validation: str) -> list[str]:
        from sluice.resources import schema as schemas
        from sluice.validation import admission, structural

        name = str(_meta(obj).get("name") or _meta(obj).get("generateName") or "")
        if rt.kind == "Secret":
            _check_secret_data(rt, version, obj)
        warnings: list[str] = []
        errors: list[FieldError] = meta_validation.validate_metadata(
            obj.get("metadata"), namespaced=rt.namespaced, name_is_label=rt.kind in ("Namespace", "Service"))
        schema = schemas.schema_for(rt.group, rt.kind)
        result = structural.check(schema, obj)
        if result.unknown_fields:
            mode = (field_validation or "Strict").capitalize()
            if mode == "Strict":
                detail = ", ".join(f'unknown field "{p}"' for p in result.unknown_fields)
                raise ApiError.bad_request(
                    f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict decoding error: '
                    f"{detail}",
                    [{"reason": "FieldValueInvalid", "field": p, "message": "unknown field"}
                     for p in result.unknown_fields])
            if mode == "Warn":
                warnings.extend(f'unknown field "{p}"' for p in result.unknown_fields)
            # Like kube-apiserver, fields the schema does not declare are dropped, never stored.
            pruned = structural.prune(schema, obj)
            obj.clear()
            obj.update(pruned)
        errors.extend(result.errors)
        if not errors:
            semantic, more = admission.validate(rt.group, rt.kind, obj, old,
                                                relative_weights=self.options.relative_weights)
            errors.extend(semantic)
            warnings.extend(more)
        if errors:
            raise ApiError.invalid(rt, name, errors)
        return warnings


def _check_secret_data(rt: ResourceType, version: str, obj: Obj) -> None:
    """Secret values are []byte in Go: a value that is not base64 fails decoding the whole body (400)."""
    from sluice.resources.secrets import base64_error

    data = obj.get("data")
    for value in (data.values() if isinstance(data, dict) else ()):
        problem = base64_error(value) if isinstance(value, str) else None
        if problem:
            raise ApiError.bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                                       f"{problem}")


_ANSWER_START = sqlite.PRESTAMPED.encode()


def _with_resource_version(answer: bytes, rv: str) -> bytes:
    """A worker's encoded answer (`sluice.api.body_worker.template`: metadata first, without a
    resourceVersion) with the one the store gave the object: no re-encoding of a large object here."""
    if not answer.startswith(_ANSWER_START) or answer.startswith(_ANSWER_START + b"}"):
        raise ValueError("not an answer template")
    return _ANSWER_START + b'"resourceVersion":' + json.dumps(rv).encode() + b"," + answer[len(_ANSWER_START):]


def kind_for_url(group: str, version: str, plural: str) -> ResourceType | None:
    rt = by_plural(group, plural)
    if rt is None or version not in rt.versions:
        return None
    return rt


@contextmanager
def _disk_full_is_507() -> Iterator[None]:
    """A store write that found the disk full answers 507 (the store rolled it back: nothing changed)."""
    try:
        yield
    except sqlite.StorageFull as e:
        raise ApiError.insufficient_storage(e.path, e.detail) from None
