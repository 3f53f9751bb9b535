"""Gateway analyzers: IST0101 for a `credentialName` with no Secret where the gateway runs (Istio's
gateway.SecretAnalyzer: the Secret must be in the namespace of the pods the Gateway selects, not the Gateway's).

Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from collections.abc import Iterator

from sluice.validation.analyze.index import Index, Obj
from sluice.validation.analyze.message import Message

__all__ = ["gateway_credentials"]


def _workload_namespace(index: Index, gw: Obj) -> str | None:
    """The namespace of the first pod the Gateway's selector matches (Istio assumes they share one)."""
    selector = gw.spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        return None
    for pod in index.of_kind("Pod"):
        labels = pod.metadata.get("labels") or {}
        if isinstance(labels, dict) and all(str(labels.get(k)) == str(v) for k, v in selector.items()):
            return pod.namespace
    return None


def gateway_credentials(index: Index, gw: Obj) -> Iterator[Message]:
    namespace = _workload_namespace(index, gw)
    if namespace is None:
        return  # no gateway pod: nothing says where its Secrets belong
    for server in gw.spec.get("servers") or []:
        tls = server.get("tls") if isinstance(server, dict) else None
        name = tls.get("credentialName") if isinstance(tls, dict) else None
        if isinstance(name, str) and name and not index.exists("Secret", namespace, name):
            yield Message("IST0101", "Error", "Gateway", gw.namespace, gw.name,
                          f'Referenced credentialName not found: "{name}"')
