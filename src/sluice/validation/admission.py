"""The semantic checks every write of a kind goes through after its schema check, by kind and group: the
built-in kinds (kube-apiserver's rules), the Istio kinds (Istio's validation, then what Sluice stores but does
not program), the mesh config in the `istio` ConfigMap, the pod spec fields the runtime does not act on, Argo
Rollouts' kinds. Called by the API registry; pure.
"""

from __future__ import annotations

from sluice import meshconfig
from sluice.objects import Obj
from sluice.resources import proxyconfig
from sluice.resources.kinds import ARGO_GROUP
from sluice.validation import argo, core, istio, pod_acted
from sluice.validation.field import FieldError
from sluice.validation.istio import programmed

__all__ = ["validate"]


def validate(group: str, kind: str, obj: Obj, old: Obj | None, *,
             relative_weights: bool = False) -> tuple[list[FieldError], list[str]]:
    """(errors, warnings) for one object about to be stored; any error refuses the write."""
    errors = core.validate(kind, obj, old)
    v = istio.validate(kind, obj, istio.IstioOptions(relative_weights=relative_weights))
    errors.extend(v.errors)
    warnings = list(v.warnings)
    if not errors:
        # accepted, but nothing may be silently ignored: name what the mesh will not apply
        warnings.extend(programmed.warnings(kind, obj))
    warnings.extend(meshconfig.problems(kind, obj))  # the `istio` ConfigMap's MeshConfig YAML
    if kind in ("Pod", "Deployment"):
        meta, prefix = obj.get("metadata"), ""
        if kind == "Deployment":  # what its pods will carry
            meta, prefix = ((obj.get("spec") or {}).get("template") or {}).get("metadata"), "spec.template."
        annotations = (meta if isinstance(meta, dict) else {}).get("annotations")
        warnings.extend(f"{kind} {prefix}{path} {proxyconfig.UNAPPLIED}"
                        for path in proxyconfig.unapplied(annotations if isinstance(annotations, dict) else {}))
    if not errors:
        warnings.extend(pod_acted.warnings(kind, obj))  # a pod spec's fields the runtime leaves out
    if group == ARGO_GROUP:
        a = argo.validate(kind, obj)
        errors.extend(a.errors)
        warnings.extend(a.warnings)
    return errors, warnings
