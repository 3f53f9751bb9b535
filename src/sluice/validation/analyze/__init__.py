"""istioctl-analyze-style checks across objects (IST0001, IST0101, IST0106, IST0109, IST0110, IST0111, IST0130,
IST0131, IST0133, IST0173, IST0174), plus Sluice's own SLU0001 (a field stored but not programmed into Envoy yet).

`sluice analyze` calls `analyze` with every known object and prints `format_message` lines followed by
`summary_line`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from sluice.validation.analyze.destinationrule import destination_rule_hosts
from sluice.validation.analyze.gateway import gateway_credentials
from sluice.validation.analyze.index import Index
from sluice.validation.analyze.message import (
    EXIT_FOUND_ISSUES,
    MORE_INFO,
    Message,
    analyze_target,
    exit_code,
    format_message,
    sort_messages,
    summary_line,
)
from sluice.validation.analyze.programmed import (
    mesh_config_messages,
    not_programmed_messages,
    pod_field_messages,
    proxy_config_messages,
)
from sluice.validation.analyze.rejected import rejected_messages
from sluice.validation.analyze.schema import schema_messages
from sluice.validation.analyze.sidecar import sidecar_selectors
from sluice.validation.analyze.virtualservice import conflicting_mesh_hosts, referenced_resources
from sluice.validation.istio import KINDS, IstioOptions

__all__ = ["analyze", "Message", "format_message", "summary_line", "analyze_target", "exit_code", "MORE_INFO",
           "EXIT_FOUND_ISSUES"]


def analyze(objects: list[dict[str, Any]], *, namespaces: set[str] | None = None,
            options: IstioOptions | None = None,
            origins: Mapping[tuple[str, str, str], str] | None = None,
            rejected: Iterable[Mapping[str, Any]] = ()) -> list[Message]:
    """Analyze all known objects; only objects in `namespaces` (None: all) get messages.

    `rejected` is the daemon's `/debug/rejectedz`: config left out of pushes because translating it failed.

    `origins` maps (kind, namespace, name) to a `file:line` shown in the message, as istioctl does for
    files. Messages come back in istioctl's order, duplicates removed.
    """
    index = Index(objects)
    opts = options or IstioOptions()
    out: list[Message] = []
    for obj in index.objects:
        if namespaces is not None and obj.namespace not in namespaces:
            continue
        if obj.kind in KINDS:
            out.extend(schema_messages(obj, opts))
            out.extend(not_programmed_messages(obj))
        if obj.kind == "VirtualService":
            out.extend(referenced_resources(index, obj))
        elif obj.kind == "DestinationRule":
            out.extend(destination_rule_hosts(index, obj))
        elif obj.kind == "Gateway":
            out.extend(gateway_credentials(index, obj))
        elif obj.kind == "ConfigMap":
            out.extend(mesh_config_messages(obj))
        elif obj.kind == "Pod":
            out.extend(proxy_config_messages(obj))
            out.extend(pod_field_messages(obj))
        elif obj.kind == "Deployment":
            out.extend(pod_field_messages(obj))
    out.extend(m for m in conflicting_mesh_hosts(index) if namespaces is None or m.namespace in namespaces)
    out.extend(m for m in sidecar_selectors(index) if namespaces is None or m.namespace in namespaces)
    out.extend(m for m in rejected_messages(index.objects, rejected)
               if namespaces is None or m.namespace in namespaces)
    if origins:
        out = [replace(m, origin=origins.get((m.kind, m.namespace, m.name), m.origin)) for m in out]
    return sort_messages(out)
