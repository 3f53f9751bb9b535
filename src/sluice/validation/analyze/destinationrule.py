"""DestinationRule analyzers: IST0174 (host matches no service) and IST0173 (subset selects no pods).

Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from sluice.validation.analyze.index import Index, Obj, Service, selects
from sluice.validation.analyze.message import Message

__all__ = ["destination_rule_hosts"]


def _subset_selects(index: Index, svc: Service, subset_labels: dict[str, str]) -> bool:
    if svc.selector is None:
        # a ServiceEntry without workloadSelector: its endpoints carry the labels subsets select on
        return not subset_labels or any(selects(subset_labels, ep) for ep in svc.endpoint_labels)
    if not svc.selector:
        return True  # a selector-less Service has hand-made endpoints whose labels are unknown here
    wanted = {**svc.selector, **subset_labels}
    return any(selects(wanted, pod) for pod in index.workloads.get(svc.namespace, []))


def destination_rule_hosts(index: Index, dr: Obj) -> list[Message]:
    host = dr.spec.get("host")
    if not isinstance(host, str) or not host:
        return []
    svc = index.service(host, dr.namespace)
    if svc is None:
        return [Message("IST0174", "Warning", "DestinationRule", dr.namespace, dr.name,
                        f"The host {host} defined in the DestinationRule does not match any services in the mesh.")]
    out: list[Message] = []
    for subset in dr.spec.get("subsets") or []:
        if not isinstance(subset, dict) or not isinstance(subset.get("name"), str):
            continue
        raw = subset.get("labels")
        labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if not _subset_selects(index, svc, labels):
            out.append(Message("IST0173", "Error", "DestinationRule", dr.namespace, dr.name,
                               f"The Subset {subset['name']} defined in the DestinationRule does not select any "
                               "pods. Which may lead to 503 UH (NoHealthyUpstream)."))
    return out
