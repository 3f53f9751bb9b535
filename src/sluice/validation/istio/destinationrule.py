"""DestinationRule validation (Istio's ValidateDestinationRule): host, subsets, traffic policy, exportTo, selector.

Called through `sluice.validation.istio.validate` by the API server on every write.
"""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_export_to,
    check_labels,
    check_workload_selector,
    is_dns1123_label,
    wildcard_domain_error,
)
from sluice.validation.istio.trafficpolicy import check_traffic_policy

__all__ = ["validate_destination_rule"]


def validate_destination_rule(ctx: Ctx, spec: dict[str, Any]) -> None:
    root = Path("spec")
    host = ctx.str_(spec, "host", root)
    if not host:
        ctx.required(root.child("host"), "empty domain name not allowed")
    elif err := wildcard_domain_error(host):
        ctx.invalid(root.child("host"), host, err)
    check_traffic_policy(ctx, root.child("trafficPolicy"), ctx.obj(spec, "trafficPolicy", root))

    names: set[str] = set()
    label_sets: dict[str, str] = {}
    for i, subset in enumerate(ctx.lst(spec, "subsets", root)):
        p = root.child("subsets").index(i)
        if not isinstance(subset, dict):
            ctx.required(p, "subset may not be null")
            continue
        name = ctx.str_(subset, "name", p)
        if name in names:
            ctx.invalid(p.child("name"), name, f"duplicate subset names: {name}")
        names.add(name)
        if not name:
            ctx.required(p.child("name"), "subset name cannot be empty")
        elif not is_dns1123_label(name):
            ctx.invalid(p.child("name"), name, f"subset name is invalid: {name}")
        labels = ctx.str_map(subset, "labels", p)
        check_labels(ctx, p.child("labels"), labels)
        # Istio accepts two subsets with the same labels, but they select the same pods: say so
        key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if labels and key in label_sets and label_sets[key] != name:
            ctx.warn(f"subsets {label_sets[key]} and {name} have the same labels ({key}) and select the same pods")
        label_sets.setdefault(key, name)
        check_traffic_policy(ctx, p.child("trafficPolicy"), ctx.obj(subset, "trafficPolicy", p))

    selector = ctx.obj(spec, "workloadSelector", root)
    check_export_to(ctx, root.child("exportTo"), ctx.str_list(spec, "exportTo", root),
                    dr_with_selector=selector is not None)
    if selector is not None:
        labels = ctx.str_map(selector, "matchLabels", root.child("workloadSelector"))
        check_workload_selector(ctx, root.child("workloadSelector").child("matchLabels"), labels)
        if not labels:
            ctx.warn("workload selector specified without labels")
