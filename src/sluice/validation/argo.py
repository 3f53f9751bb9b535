"""Argo Rollouts' semantic checks of argoproj.io/v1alpha1 objects, with Argo's own messages.

Argo validates a Rollout in its controller (`pkg/apis/rollouts/validation/validation.go`) and reports the
first error as an `InvalidSpec` condition; metrics are checked by `utils/analysis/factory.go` ValidateMetrics.
Sluice runs the same rules at admission, so a bad object is rejected with a 422 that names the field and
carries Argo's text instead of being stored and silently never acted on. Rules that need other objects
(Services, VirtualServices, templates) are the controller's, not here. Also says, as a warning, that a
Rollout, AnalysisRun or Experiment is stored but nothing acts on it yet.

Called by the API registry on every write, after the structural schema check passed.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.objects import Obj
from sluice.validation import argo_acted
from sluice.validation.core import _containers
from sluice.validation.field import FieldError, Path, Validation

__all__ = ["validate", "go_duration", "pause_seconds", "NOT_ACTED_ON"]


MISSING_FIELD = "Rollout has missing field '{}'"
INVALID_STEP = "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause"
INVALID_STRING_MATCH_MULTIPLE = "StringMatch match value must have exactly one of the following: exact, regex, prefix"
INVALID_STRING_MATCH_MISSED = "StringMatch value missed, match value must have one of the following: exact, regex, prefix"
INVALID_TRAFFIC_ROUTING = "Canary service and Stable service must to be set to use Traffic Routing"
# Experiments are stored and served but nothing acts on them; for Rollouts and AnalysisRuns the rollouts
# controller (sluice.rollouts) does, and argo_acted names the fields it leaves out.
NOT_ACTED_ON = ("{kind} \"{name}\" is stored, but Sluice has no {kind} controller yet: nothing acts on it "
                "(no ReplicaSets, no traffic shifting, no analysis)")
_NOT_ACTED_KINDS = ("Rollout", "AnalysisRun", "Experiment")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def go_duration(text: str) -> float:
    """Seconds of a Go duration string (`time.ParseDuration`: `30s`, `1h30m`, `250ms`); ValueError with Go's
    message otherwise."""
    s = text
    quoted = '"' + text + '"'
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"time: invalid duration {quoted}")
        number, unit = m.group(1), m.group(2)
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


def pause_seconds(duration: Any) -> int:
    """Argo's RolloutPause.DurationSeconds: an int is seconds; a string is seconds or a Go duration; -1 if
    it parses as neither."""
    if duration is None:
        return 0
    if isinstance(duration, int) and not isinstance(duration, bool):
        return duration
    text = str(duration)
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        return int(go_duration(text))
    except ValueError:
        return -1


def _int_value(value: Any) -> int:
    """intstr.IntValue: the int, or a string's integer value (0 when it is not one)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value.strip())
    return 0


def _percent_or_int(value: Any, default: str) -> int:
    """getIntOrPercentValue: `25%` is 25, an int is itself, any other string 0."""
    v = default if value is None else value
    if isinstance(v, str) and re.fullmatch(r"[0-9]+%", v):
        return int(v[:-1])
    return _int_value(v)


def _map(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _nonnegative(v: Validation, path: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        v.error(FieldError.invalid(path, value, "must be greater than or equal to 0"))


# ------------------------------------------------------------------------------------------- Rollout
def _rollout(v: Validation, obj: Obj) -> None:
    spec = obj.get("spec")
    p = Path("spec")
    if not isinstance(spec, dict):
        v.error(FieldError.required(p, ""))
        return
    _nonnegative(v, p.child("replicas"), spec.get("replicas", 1))
    workload_ref = spec.get("workloadRef")
    selector = spec.get("selector")
    if workload_ref is None:
        if selector is None:
            v.error(FieldError.required(p.child("selector"), MISSING_FIELD.format(".spec.selector")))
        elif not _map(selector).get("matchLabels") and not _map(selector).get("matchExpressions"):
            v.error(FieldError.invalid(p.child("selector"), selector, "empty selector is invalid for deployment"))
    template = spec.get("template")
    if workload_ref is not None and _map(template) and (_map(template).get("spec") or
                                                        _map(_map(template).get("metadata"))):
        v.error(FieldError.internal(p.child("template"), "template must be empty for workload reference rollout"))
    if workload_ref is None and isinstance(selector, dict):
        labels = _map(_map(_map(template).get("metadata")).get("labels"))
        if any(labels.get(k) != val for k, val in _map(selector.get("matchLabels")).items()):
            v.error(FieldError.invalid(p.child("template").child("metadata").child("labels"), labels,
                                       "`selector` does not match template `labels`"))
        v.errors.extend(_containers(_map(template).get("spec"), p.child("template").child("spec")))
    min_ready = spec.get("minReadySeconds", 0)
    _nonnegative(v, p.child("minReadySeconds"), min_ready)
    _nonnegative(v, p.child("revisionHistoryLimit"), spec.get("revisionHistoryLimit", 10))
    deadline = spec.get("progressDeadlineSeconds", 600)
    _nonnegative(v, p.child("progressDeadlineSeconds"), deadline)
    if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
        v.error(FieldError.invalid(p.child("progressDeadlineSeconds"), deadline, "must be greater than minReadySeconds"))
    _strategy(v, spec, p.child("strategy"))


def _strategy(v: Validation, spec: Obj, p: Path) -> None:
    strategy = _map(spec.get("strategy"))
    blue_green, canary = strategy.get("blueGreen"), strategy.get("canary")
    if blue_green is None and canary is None:
        v.error(FieldError.required(p.child("strategy"),
                                    MISSING_FIELD.format(".spec.strategy.canary or .spec.strategy.blueGreen")))
    elif blue_green is not None and canary is not None:
        v.error(FieldError.invalid(p.child("strategy"), "blueGreen: true canary: true",
                                   "Multiple Strategies can not be listed"))
    elif canary is not None:
        _canary(v, _map(canary), p)


def _requires_services(canary: Obj) -> bool:
    tr = canary.get("trafficRouting")
    if not isinstance(tr, dict):
        return False
    if tr.get("alb") is not None and canary.get("pingPong") is None:
        return True
    if tr.get("istio") is not None and _map(tr.get("istio")).get("destinationRule") is None:
        return True
    return any(tr.get(k) is not None for k in ("smi", "apisix", "ambassador", "nginx", "appMesh", "traefik"))


def _string_match(v: Validation, match: Any, path: Path) -> None:
    """hasMultipleMatchValues: exactly one of exact, regex, prefix."""
    if not isinstance(match, dict):
        v.error(FieldError.invalid(path, match, INVALID_STRING_MATCH_MISSED))
        return
    n = sum(1 for k in ("exact", "regex", "prefix") if match.get(k))
    if n > 1:
        v.error(FieldError.invalid(path, match, INVALID_STRING_MATCH_MULTIPLE))
    elif n == 0:
        v.error(FieldError.invalid(path, match, INVALID_STRING_MATCH_MISSED))


_FIELD_REF = re.compile(r"metadata\.(name|namespace|uid|labels|annotations)(\['[^']*'\])?")


def _canary(v: Validation, canary: Obj, p: Path) -> None:
    if _percent_or_int(canary.get("maxSurge"), "25%") == 0 and _percent_or_int(canary.get("maxUnavailable"), "25%") == 0:
        v.error(FieldError.invalid(p.child("maxSurge"), canary.get("maxSurge"),
                                   "MaxSurge and MaxUnavailable both can not be zero"))
    canary_svc, stable_svc = canary.get("canaryService") or "", canary.get("stableService") or ""
    if canary_svc and canary_svc == stable_svc:
        v.error(FieldError.invalid(p.child("stableService"), stable_svc, "This rollout uses the same service for "
                                   "the stable and canary services, but two different services are required."))
    if _requires_services(canary):
        if not stable_svc:
            v.error(FieldError.invalid(p.child("stableService"), stable_svc, INVALID_TRAFFIC_ROUTING))
        if not canary_svc:
            v.error(FieldError.invalid(p.child("canaryService"), canary_svc, INVALID_TRAFFIC_ROUTING))
    tr = canary.get("trafficRouting")
    routing = _map(tr)
    if tr is None:
        if canary.get("scaleDownDelaySeconds") is not None:
            v.error(FieldError.invalid(p.child("scaleDownDelaySeconds"), canary["scaleDownDelaySeconds"],
                                       "Canary scaleDownDelaySeconds can only be used with traffic routing"))
        if canary.get("dynamicStableScale"):
            v.error(FieldError.invalid(p.child("dynamicStableScale"), True,
                                       "Canary dynamicStableScale can only be used with traffic routing"))
    else:
        if canary.get("scaleDownDelaySeconds") is not None and canary.get("dynamicStableScale"):
            v.error(FieldError.invalid(p.child("dynamicStableScale"), True,
                                       "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds"))
        if routing.get("maxTrafficWeight") is not None and routing.get("nginx") is None and not routing.get("plugins"):
            v.error(FieldError.invalid(p.child("trafficRouting").child("maxTrafficWeight"), routing["maxTrafficWeight"],
                                       "Canary maxTrafficWeight in traffic routing only supported in Nginx and Plugins"))
    istio = routing.get("istio")
    if isinstance(istio, dict) and (istio.get("virtualService") is None) == (istio.get("virtualServices") is None):
        # Argo finds this when it looks the VirtualServices up (validation_references.go); it needs no lookup.
        v.error(FieldError.internal("spec.strategy.canary.trafficRouting.istio",
                                    "either VirtualService or VirtualServices must be configured"))
    mtw = routing.get("maxTrafficWeight")
    max_weight = mtw if isinstance(mtw, int) and not isinstance(mtw, bool) else 100
    managed = routing.get("managedRoutes")
    managed_names = {_map(r).get("name") for r in _list(managed)}
    for i, step in enumerate(_list(canary.get("steps"))):
        _step(v, _map(step), p.child("steps").index(i), p, tr, routing, max_weight, managed, managed_names)


def _step(v: Validation, step: Obj, sp: Path, p: Path, tr: Any, routing: Obj, max_weight: int,
          managed: Any, managed_names: set[Any]) -> None:
    kinds = ("experiment", "pause", "setWeight", "analysis")
    if sum(1 for k in kinds if step.get(k) is not None) > 1:
        flags = " ".join(f"step.{k[:1].upper()}{k[1:]}: {'true' if step.get(k) is not None else 'false'}"
                         for k in ("experiment", "pause", "setWeight", "analysis"))
        v.error(FieldError.invalid(sp, flags, INVALID_STEP))
    every = ("experiment", "pause", "setWeight", "analysis", "setCanaryScale", "setHeaderRoute", "setMirrorRoute",
             "plugin")
    if all(step.get(k) is None for k in every):
        flags = " ".join(f"step.{k[:1].upper()}{k[1:]}: true" for k in every)
        v.error(FieldError.invalid(sp, flags, INVALID_STEP))
    weight = step.get("setWeight")
    if isinstance(weight, int) and not 0 <= weight <= max_weight:
        v.error(FieldError.invalid(sp.child("setWeight"), weight, f"SetWeight needs to be between 0 and {max_weight}"))
    pause = step.get("pause")
    if isinstance(pause, dict) and pause_seconds(pause.get("duration")) < 0:
        v.error(FieldError.invalid(sp.child("pause").child("duration"), pause_seconds(pause.get("duration")),
                                   "Duration needs to be greater than 0"))
    if step.get("setCanaryScale") is not None and tr is None:
        v.error(FieldError.required(p.child("trafficRouting"), "SetCanaryScale requires TrafficRouting to be set"))
    header = step.get("setHeaderRoute")
    if header is not None:
        if tr is None or all(routing.get(k) is None for k in ("istio", "alb", "apisix")) and not routing.get("plugins"):
            v.error(FieldError.invalid(sp.child("setHeaderRoute"), header,
                                       "SetHeaderRoute requires TrafficRouting, supports Istio and ALB and Apisix"))
        else:
            for j, m in enumerate(_list(_map(header).get("match"))):
                mp = sp.child("setHeaderRoute").child("match").index(j)
                hv = _map(m).get("headerValue")
                if routing.get("alb") is not None:
                    if not isinstance(hv, dict) or not hv.get("exact") or hv.get("regex") or hv.get("prefix"):
                        v.error(FieldError.invalid(mp, hv, "SetHeaderRoute match value invalid. ALB supports "
                                                   "'exact' value only"))
                else:
                    _string_match(v, hv, mp)
    mirror = step.get("setMirrorRoute")
    if mirror is not None:
        if tr is None or (routing.get("istio") is None and not routing.get("plugins")):
            v.error(FieldError.invalid(sp.child("setMirrorRoute"), mirror,
                                       "SetMirrorRoute requires TrafficRouting, supports Istio and Plugins"))
        for j, m in enumerate(_list(_map(mirror).get("match"))):
            mp = sp.child("setMirrorRoute").child("match").index(j)
            for key in ("method", "path"):
                if _map(m).get(key) is not None:
                    _string_match(v, _map(m)[key], mp)
    if tr is not None and (header is not None or mirror is not None) and managed is None:
        v.error(FieldError.required(p.child("trafficRouting").child("managedRoutes"),
                                    MISSING_FIELD.format("spec.strategy.canary.trafficRouting.managedRoutes")))
    if tr is not None and managed is not None:
        for key, route in (("setHeaderRoute", header), ("setMirrorRoute", mirror)):
            if route is not None and _map(route).get("name") not in managed_names:
                v.error(FieldError.invalid(sp.child(key), _map(route).get("name"), "Steps define a route that does not "
                                           "exist in spec.strategy.canary.trafficRouting.managedRoutes"))
    args = _list(_map(step.get("analysis")).get("args"))
    for arg in args:
        ref = _map(_map(_map(arg).get("valueFrom")).get("fieldRef")).get("fieldPath")
        if isinstance(ref, str) and ref.startswith("metadata") and not _FIELD_REF.fullmatch(ref):
            v.error(FieldError.invalid(sp.child("analyses"), args, "Analyses arguments must refer to valid object "
                                       "metadata supported by downwardAPI"))
            break


# ------------------------------------------------------------------------------------------- analysis
def _metrics(v: Validation, spec: Obj, p: Path, *, need_metrics: bool) -> None:
    metrics = _list(spec.get("metrics"))
    if not metrics and need_metrics:
        v.error(FieldError.required(p.child("metrics"), "no metrics specified"))
    seen: set[Any] = set()
    for i, raw in enumerate(metrics):
        m = _map(raw)
        mp = p.child("metrics").index(i)
        if m.get("name") in seen:
            v.error(FieldError.invalid(mp.child("name"), m.get("name"), f"duplicate name '{m.get('name')}'"))
        seen.add(m.get("name"))
        _metric(v, m, mp)


def _metric(v: Validation, m: Obj, mp: Path) -> None:
    """utils/analysis/factory.go ValidateMetric, in its order; the first problem of a metric is reported."""
    count = _int_value(m.get("count")) if m.get("count") is not None else 0
    failure = _int_value(m.get("failureLimit")) if m.get("failureLimit") is not None else 0
    successes = _int_value(m.get("consecutiveSuccessLimit")) if m.get("consecutiveSuccessLimit") is not None else 0
    inconclusive = _int_value(m.get("inconclusiveLimit")) if m.get("inconclusiveLimit") is not None else 0
    checks: list[tuple[bool, str, str]] = [
        (successes < 0, "consecutiveSuccessLimit", "consecutiveSuccessLimit must be >= 0"),
        (failure < -1, "failureLimit", "failureLimit must be >= 0, or -1 to be disabled"),
        (successes == 0 and failure == -1, "failureLimit",
         "failureLimit and consecutiveSuccessLimit cannot both be disabled"),
        (inconclusive < 0, "inconclusiveLimit", "inconclusiveLimit must be >= 0"),
        (m.get("consecutiveErrorLimit") is not None and _int_value(m.get("consecutiveErrorLimit")) < 0,
         "consecutiveErrorLimit", "consecutiveErrorLimit must be >= 0"),
        (count > 0 and successes >= 0 and failure >= 0 and count < failure + successes, "count",
         f"count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({failure} + {successes}) if both >= 0"),
        (count > 0 and successes >= 0 and failure < 0 and count < successes, "count",
         "count must be >= consecutiveSuccessLimit"),
        (count > 0 and count < inconclusive, "count", "count must be >= inconclusiveLimit"),
    ]
    for bad, key, message in checks:
        if bad:
            v.error(FieldError.invalid(mp.child(key), m.get(key), message))
            return
    if count > 1 and not m.get("interval"):
        v.error(FieldError.required(mp.child("interval"), "interval must be specified when count > 1"))
        return
    for key, what in (("interval", "interval"), ("initialDelay", "startDelay")):
        text = m.get(key)
        if isinstance(text, str) and text and "{{" not in text:
            try:
                go_duration(text)
            except ValueError as e:
                v.error(FieldError.invalid(mp.child(key), text, f"invalid {what} string: {e}"))
                return
    provider = _map(m.get("provider"))
    n = sum(1 for k, val in provider.items() if val is not None and k != "plugin")
    n += len(_map(provider.get("plugin")))
    if n == 0:
        v.error(FieldError.required(mp.child("provider"), "no provider specified"))
    elif n > 1:
        v.error(FieldError.invalid(mp.child("provider"), sorted(provider), "multiple providers specified"))


def _required(v: Validation, schema: Any, value: Any, path: Path) -> None:
    """The CRD schema's `required` lists, as kube-apiserver enforces them for Argo's CRDs."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if value.get(key) is None:
                v.error(FieldError.required(path.child(key), ""))
        for key, sub in props.items():
            if key in value:
                _required(v, sub, value[key], path.child(key))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, sub_value in value.items():
                if key not in props:
                    _required(v, extra, sub_value, path.key(key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _required(v, schema["items"], item, path.index(i))


def validate(kind: str, obj: Obj) -> Validation:
    """Validate one whole argoproj.io object; other kinds give an empty result. Field paths are Argo's
    (`spec.strategy.steps[0].setWeight`: Argo builds canary paths on `spec.strategy`)."""
    from sluice.resources.schema import SchemaNotFound, schema_for

    v = Validation()
    try:
        spec_schema = (schema_for("argoproj.io", kind).get("properties") or {}).get("spec")
    except SchemaNotFound:
        return v
    _required(v, spec_schema, obj.get("spec"), Path("spec"))
    if v.errors:
        return v
    if kind == "Rollout":
        _rollout(v, obj)
    elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            v.error(FieldError.required("spec", ""))
        else:
            _metrics(v, spec, Path("spec"), need_metrics=not spec.get("templates"))
    elif kind == "AnalysisRun":
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            v.error(FieldError.required("spec", ""))
        else:
            _metrics(v, spec, Path("spec"), need_metrics=True)
    else:
        return v
    unique: list[FieldError] = []
    for e in v.errors:  # Argo checks a mirror route's method twice; report it once
        if e not in unique:
            unique.append(e)
    v.errors = unique
    if kind in _NOT_ACTED_KINDS and not v.errors:
        name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName") or ""
        if kind in argo_acted.ACTED_ON:  # the rollouts controller acts on these: name only what it leaves out
            for text in argo_acted.warnings(kind, name, obj):
                v.warn(text)
        else:
            v.warn(NOT_ACTED_ON.format(kind=kind, name=name))
    return v
