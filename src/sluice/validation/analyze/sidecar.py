"""Sidecar analyzers (Istio's sidecar.SelectorAnalyzer): IST0101 for a workloadSelector that selects no pod,
IST0110 for a pod two Sidecars select, IST0111 for a namespace with more than one Sidecar without a selector.

Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from collections.abc import Iterator

from sluice.validation.analyze.index import Index, Obj, label_map, selects
from sluice.validation.analyze.message import Message

__all__ = ["sidecar_selectors"]


def _selector(sidecar: Obj) -> dict[str, str]:
    selector = sidecar.spec.get("workloadSelector")
    return label_map(selector.get("labels")) if isinstance(selector, dict) else {}


def sidecar_selectors(index: Index) -> Iterator[Message]:
    sidecars = index.of_kind("Sidecar")
    pods = index.of_kind("Pod")
    by_pod: dict[tuple[str, str], list[Obj]] = {}
    unselecting: dict[str, list[Obj]] = {}
    for sc in sidecars:
        selector = _selector(sc)
        if not selector:
            unselecting.setdefault(sc.namespace, []).append(sc)
            continue
        for pod in pods:
            if pod.namespace == sc.namespace and selects(selector, label_map(pod.metadata.get("labels"))):
                by_pod.setdefault((pod.namespace, pod.name), []).append(sc)
        # without pods (files), the Deployments' templates stand in, as for the other analyzers
        if not any(selects(selector, labels) for labels in index.workloads.get(sc.namespace, [])):
            text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            yield Message("IST0101", "Error", "Sidecar", sc.namespace, sc.name, f'Referenced selector not found: "{text}"')
    for (namespace, pod_name), selecting in sorted(by_pod.items()):
        if len(selecting) > 1:
            names = " ".join(sorted(sc.name for sc in selecting))
            for sc in selecting:
                yield Message("IST0110", "Error", "Sidecar", sc.namespace, sc.name,
                              f'The Sidecars [{names}] in namespace "{namespace}" select the same workload pod '
                              f'"{pod_name}", which can lead to undefined behavior.')
    for namespace, selecting in sorted(unselecting.items()):
        if len(selecting) > 1:
            names = " ".join(sorted(sc.name for sc in selecting))
            for sc in selecting:
                yield Message("IST0111", "Error", "Sidecar", sc.namespace, sc.name,
                              f'The Sidecars [{names}] in namespace "{namespace}" have no workload selector, which can '
                              "lead to undefined behavior.")
