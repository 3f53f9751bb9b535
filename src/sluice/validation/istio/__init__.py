"""Istio's semantic validation of networking.istio.io objects (VirtualService, DestinationRule, Gateway,
ServiceEntry, Sidecar).

The API server calls `validate` on every write (errors reject it with a 422, warnings are returned as
admission warnings); `sluice analyze` calls it offline for IST0106 / IST0130 / IST0131.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sluice.validation.field import Path, Validation
from sluice.validation.istio.common import Ctx, IstioOptions
from sluice.validation.istio.destinationrule import validate_destination_rule
from sluice.validation.istio.gateway import validate_gateway
from sluice.validation.istio.serviceentry import validate_service_entry
from sluice.validation.istio.sidecar import validate_sidecar
from sluice.validation.istio.unreachable import RuleFinding, find_unreachable_rules
from sluice.validation.istio.virtualservice import validate_virtual_service

__all__ = ["validate", "IstioOptions", "RuleFinding", "find_unreachable_rules", "KINDS"]

_Validator = Callable[[Ctx, dict[str, Any], dict[str, str]], None]

_VALIDATORS: dict[str, _Validator] = {
    "VirtualService": lambda ctx, spec, labels: validate_virtual_service(ctx, spec),
    "DestinationRule": lambda ctx, spec, labels: validate_destination_rule(ctx, spec),
    "Gateway": lambda ctx, spec, labels: validate_gateway(ctx, spec),
    "ServiceEntry": validate_service_entry,
    "Sidecar": validate_sidecar,
}
KINDS = frozenset(_VALIDATORS)


def validate(kind: str, obj: dict[str, Any], options: IstioOptions | None = None) -> Validation:
    """Validate one whole object (`apiVersion`, `kind`, `metadata`, `spec`) of an Istio networking kind.

    Every error is collected (nothing stops at the first); field paths are full object paths such as
    `spec.http[0].route`. Other kinds give an empty result.
    """
    validator = _VALIDATORS.get(kind)
    if validator is None:
        return Validation()
    raw_meta = obj.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    namespace, name = meta.get("namespace"), meta.get("name")
    ctx = Ctx(namespace if isinstance(namespace, str) else "", options or IstioOptions(),
              name=name if isinstance(name, str) else "")
    spec = obj.get("spec")
    if spec is None:
        ctx.required(Path("spec"))
        return ctx.result
    if not isinstance(spec, dict):
        ctx.type_invalid(Path("spec"), spec, "an object")
        return ctx.result
    labels = ctx.str_map(meta, "labels", Path("metadata"))
    validator(ctx, spec, labels)
    return ctx.result
