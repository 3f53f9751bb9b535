"""Semantic checks for the built-in kinds (Deployment, ReplicaSet, Pod, Service, Secret), with kube-apiserver's
messages.

Called by the API registry on every write after the structural schema check passed.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.objects import Obj
from sluice.validation.field import OMITTED, ErrorType, FieldError, Path
from sluice.validation.metadata import dns1123_label_error, dns1123_subdomain_error

__all__ = ["validate"]



def _containers(spec: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(spec, dict):
        return [FieldError.required(path, "")]
    containers = spec.get("containers")
    grace = spec.get("terminationGracePeriodSeconds")
    grace = grace if isinstance(grace, int) and not isinstance(grace, bool) else None
    seen: set[str] = set()  # names are unique across init containers and containers
    for i, c in enumerate(spec.get("initContainers") or []):
        if isinstance(c, dict):
            errs.extend(_container(c, path.child("initContainers").index(i), seen, grace, init=True))
    if not containers:
        return [*errs, FieldError.required(path.child("containers"), "")]
    for i, c in enumerate(containers):
        if isinstance(c, dict):
            errs.extend(_container(c, path.child("containers").index(i), seen, grace, init=False))
    return errs


_INIT_FORBIDDEN = "may not be set for init containers without restartPolicy=Always"


def _container(c: dict[str, Any], cp: Path, seen: set[str], grace: int | None, *, init: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name")
    if not name:
        errs.append(FieldError.required(cp.child("name"), ""))
    else:
        msg = dns1123_label_error(str(name))
        if msg:
            errs.append(FieldError.invalid(cp.child("name"), name, msg))
        if name in seen:
            errs.append(FieldError.duplicate(cp.child("name"), name))
        seen.add(str(name))
    if not c.get("image"):
        errs.append(FieldError.required(cp.child("image"), ""))
    for j, port in enumerate(c.get("ports") or []):
        n = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(n, int) or not 1 <= n <= 65535:
            errs.append(FieldError.invalid(cp.child("ports").index(j).child("containerPort"), n,
                                           "must be between 1 and 65535, inclusive"))
    policy = c.get("restartPolicy")
    sidecar = policy == "Always"
    if init and policy is not None and not sidecar:
        errs.append(FieldError.not_supported(cp.child("restartPolicy"), policy, ["Always"]))
    lifecycle = c.get("lifecycle")
    if init and not sidecar:
        # a plain init container runs to completion: no hooks, no probes (kube-apiserver's validateInitContainers)
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(key) is not None:
                errs.append(FieldError.forbidden(cp.child(key), _INIT_FORBIDDEN))
        return errs
    for hook in ("postStart", "preStop"):
        h = lifecycle.get(hook) if isinstance(lifecycle, dict) else None
        if isinstance(h, dict):
            errs.extend(_handler(h, cp.child("lifecycle").child(hook), grace, _HOOK_TYPES))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            errs.extend(_handler(pr, cp.child(probe), grace, _PROBE_TYPES))
    return errs


_HOOK_TYPES = ("exec", "httpGet", "tcpSocket", "sleep")
_PROBE_TYPES = ("exec", "httpGet", "tcpSocket", "grpc")


def _handler(h: dict[str, Any], path: Path, grace: int | None, kinds: tuple[str, ...]) -> list[FieldError]:
    """kube-apiserver's validateHandler: exactly one handler type, and that one well formed."""
    errs: list[FieldError] = []
    found = 0
    for kind in kinds:
        action = h.get(kind)
        if action is None:
            continue
        if found:
            errs.append(FieldError.forbidden(path.child(kind), "may not specify more than 1 handler type"))
            continue
        found += 1
        ap = path.child(kind)
        action = action if isinstance(action, dict) else {}
        if kind == "exec" and not action.get("command"):
            errs.append(FieldError.required(ap.child("command"), ""))
        if kind in ("httpGet", "tcpSocket", "grpc"):
            port = action.get("port")
            if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
                errs.append(FieldError.invalid(ap.child("port"), port, "must be between 1 and 65535, inclusive"))
        if kind == "httpGet" and action.get("scheme") not in (None, "HTTP", "HTTPS"):
            errs.append(FieldError.not_supported(ap.child("scheme"), action.get("scheme"), ["HTTP", "HTTPS"]))
        if kind == "sleep" and grace is not None:
            seconds = action.get("seconds")
            if isinstance(seconds, int) and not 0 <= seconds <= grace:
                errs.append(FieldError.invalid(ap, seconds, "must be non-negative and less than "
                                                            f"terminationGracePeriodSeconds ({grace})"))
    if not found:
        errs.append(FieldError.required(path, "must specify a handler type"))
    return errs


def _deployment(obj: Obj, old: Obj | None) -> list[FieldError]:
    """Deployment and ReplicaSet specs share these rules (selector, replicas, template)."""
    errs: list[FieldError] = []
    spec = obj.get("spec")
    p = Path("spec")
    if not isinstance(spec, dict):
        return [FieldError.required(p, "")]
    sel = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(FieldError.required(p.child("selector"), ""))
    else:
        ml = sel.get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in ml.items()):
            errs.append(FieldError.invalid(p.child("template").child("metadata").child("labels"), labels,
                                           "`selector` does not match template `labels`"))
        if old is not None and old.get("spec", {}).get("selector") != sel:
            errs.append(FieldError.invalid(p.child("selector"), sel, "field is immutable"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(FieldError.invalid(p.child("replicas"), replicas, "must be greater than or equal to 0"))
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.append(FieldError.required(p.child("template"), ""))
    else:
        errs.extend(_containers(tmpl.get("spec"), p.child("template").child("spec")))
    return errs


def _pod(obj: Obj, old: Obj | None) -> list[FieldError]:
    return _containers(obj.get("spec"), Path("spec"))


def _service(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = obj.get("spec") or {}
    p = Path("spec").child("ports")
    ports = spec.get("ports") or []
    if not ports and spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None":
        errs.append(FieldError.required(p, ""))
    if spec.get("type") == "ExternalName":
        errs.extend(_external_name(spec))
    names: set[str] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        n = port.get("port")
        if not isinstance(n, int) or not 1 <= n <= 65535:
            errs.append(FieldError.invalid(p.index(i).child("port"), n, "must be between 1 and 65535, inclusive"))
        name = port.get("name")
        if len(ports) > 1 and not name:
            errs.append(FieldError.required(p.index(i).child("name"), ""))
        if name:
            if name in names:
                errs.append(FieldError.duplicate(p.index(i).child("name"), name))
            names.add(str(name))
    return errs


def _external_name(spec: Obj) -> list[FieldError]:
    """kube's ValidateService for type ExternalName: no cluster addresses, and a DNS name to alias (a CNAME,
    so a final dot is allowed)."""
    errs: list[FieldError] = []
    if spec.get("clusterIP") or spec.get("clusterIPs"):
        errs.append(FieldError.forbidden(Path("spec").child("clusterIPs"), "may not be set for ExternalName services"))
    for key in ("ipFamilies", "ipFamilyPolicy"):
        if spec.get(key):
            errs.append(FieldError.forbidden(Path("spec").child(key), "may not be set for ExternalName services"))
    raw = spec.get("externalName")
    cname = raw.removesuffix(".") if isinstance(raw, str) else ""
    if not cname:
        errs.append(FieldError.required(Path("spec").child("externalName"), ""))
    elif (msg := dns1123_subdomain_error(cname)) is not None:
        errs.append(FieldError.invalid(Path("spec").child("externalName"), cname, msg))
    return errs


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                   "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def _secret(obj: Obj, old: Obj | None) -> list[FieldError]:
    """kube's ValidateSecret/ValidateSecretUpdate: keys, size, the TLS type's keys, immutability."""
    from sluice.resources import secrets

    errs: list[FieldError] = []
    data = obj.get("data") or {}
    size = 0
    for k, v in data.items():
        key = Path("data").key(k)
        if len(k) > 253 or not _CONFIG_KEY.fullmatch(k):
            errs.append(FieldError.invalid(key, k, _CONFIG_KEY_MSG if len(k) <= 253
                                           else "must be no more than 253 characters"))
        size += len(secrets.decoded(obj, k) or b"") if isinstance(v, str) else 0
    if size > secrets.MAX_SIZE:
        errs.append(FieldError(ErrorType.TOO_LONG, "data", OMITTED, f"must have at most {secrets.MAX_SIZE} bytes"))
    if obj.get("type") == secrets.TLS:
        for k in ("tls.crt", "tls.key"):
            if k not in data:
                errs.append(FieldError.required(Path("data").key(k), ""))
    if old is not None:
        if obj.get("type") != old.get("type"):
            errs.append(FieldError.invalid(Path("type"), obj.get("type"), "field is immutable"))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(FieldError.forbidden(Path("immutable"), "field is immutable when `immutable` is set"))
            if (obj.get("data") or {}) != (old.get("data") or {}):
                errs.append(FieldError.forbidden(Path("data"), "field is immutable when `immutable` is set"))
    return errs


_VALIDATORS = {"Deployment": _deployment, "ReplicaSet": _deployment, "Pod": _pod, "Service": _service, "Secret": _secret}


def validate(kind: str, obj: Obj, old: Obj | None) -> list[FieldError]:
    fn = _VALIDATORS.get(kind)
    return fn(obj, old) if fn else []
