"""Typed resource operations (get/list/create/patch/delete/watch/logs) over `RestClient` + `Discovery`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sluice.client.discovery import Discovery, ResourceInfo
from sluice.client.errors import ApiError
from sluice.client.kubeconfig import RestConfig
from sluice.client.rest import JSON, TABLE_ACCEPT, Query, RestClient

__all__ = ["ApiClient", "WatchEvent", "MERGE_PATCH", "LIST_LIMIT"]

MERGE_PATCH = "application/merge-patch+json"
LIST_LIMIT = 500  # kubectl's default --chunk-size


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: dict[str, Any]


class ApiClient:
    """The CLI's view of the API server. `namespace` is the context's default namespace."""

    def __init__(self, config: RestConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.rest = RestClient(config, timeout=timeout)
        self.discovery = Discovery(self.rest)

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def resolve(self, name: str) -> ResourceInfo:
        return self.discovery.resolve(name)

    def get(self, info: ResourceInfo, name: str, namespace: str | None, *, accept: str = JSON,
            subresource: str | None = None) -> dict[str, Any]:
        return self.rest.json("GET", info.object_path(namespace, name, subresource), accept=accept)

    def get_table(self, info: ResourceInfo, name: str, namespace: str | None) -> dict[str, Any]:
        return self.get(info, name, namespace, accept=TABLE_ACCEPT)

    def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        accept: str = JSON,
    ) -> dict[str, Any]:
        """LIST in chunks of 500, following `metadata.continue`, and return one merged list or Table."""
        query: dict[str, str | int | bool | None] = {
            "labelSelector": label_selector, "fieldSelector": field_selector, "limit": LIST_LIMIT,
        }
        merged: dict[str, Any] | None = None
        while True:
            page = self.rest.json("GET", info.collection_path(namespace), query=query, accept=accept)
            key = "rows" if page.get("kind") == "Table" else "items"
            if merged is None:
                merged = page
                merged[key] = list(page.get(key) or [])
            else:
                merged[key].extend(page.get(key) or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
            query["continue"] = cont
        if merged is None:
            merged = {}
        if isinstance(merged.get("metadata"), dict):
            merged["metadata"].pop("continue", None)
        return merged

    def create(self, info: ResourceInfo, namespace: str | None, obj: dict[str, Any], *,
               field_manager: str | None = None, field_validation: str | None = "Strict") -> dict[str, Any]:
        query = {"fieldManager": field_manager, "fieldValidation": field_validation}
        return self.rest.json("POST", info.collection_path(namespace), query=query, body=obj)

    def patch(
        self,
        info: ResourceInfo,
        name: str,
        namespace: str | None,
        patch: Any,
        *,
        content_type: str = MERGE_PATCH,
        field_manager: str | None = None,
        field_validation: str | None = "Strict",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        query = {"fieldManager": field_manager, "fieldValidation": field_validation}
        return self.rest.json("PATCH", info.object_path(namespace, name, subresource), query=query,
                              body=json.dumps(patch).encode(), content_type=content_type)

    def delete(self, info: ResourceInfo, name: str, namespace: str | None, *,
               propagation_policy: str | None = "Background", grace_period: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        return self.rest.json("DELETE", info.object_path(namespace, name), body=body)

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Iterator[WatchEvent]:
        """Stream newline-delimited watch events until the server closes the stream.

        An ERROR event (e.g. 410 Expired) is raised as `ApiError`, so callers re-list."""
        query: dict[str, str | int | bool | None] = {
            "watch": True,
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
        }
        with self.rest.stream(info.collection_path(namespace), query=query) as lines:
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                raw = event.get("object")
                obj: dict[str, Any] = raw if isinstance(raw, dict) else {}
                etype = str(event.get("type") or "")
                if etype == "ERROR":
                    raise ApiError(int(obj.get("code") or 500), obj)
                yield WatchEvent(etype, obj)

    def logs(self, namespace: str, pod: str, params: Query) -> Iterator[bytes]:
        """Stream a container log (`pods/<pod>/log`) line by line."""
        info = ResourceInfo("", "v1", "pods", "pod", "Pod", True)
        with self.rest.stream(info.object_path(namespace, pod, "log"), query=params, accept="*/*") as lines:
            yield from lines

    def close(self) -> None:
        self.rest.close()
