"""AnalysisRuns as Argo's analysis controller runs them (`analysis/analysis.go`): which metrics are due, one
measurement each, the counters and phases of `status.metricResults`, the run phase and message.

`step(run, now, query_for)` is pure apart from the measurements it takes through the providers: it returns
the new status, the Events to emit and when the run next needs a pass. Building a run from templates
(`build_run`) is pure too.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sluice.rollouts.providers import Measurement, PromQuery, measure
from sluice.validation.argo import go_duration

__all__ = ["step", "build_run", "RunStep", "COMPLETED", "rfc3339", "parse_time", "resolve_args", "worst"]

Obj = dict[str, Any]
COMPLETED = ("Successful", "Failed", "Error", "Inconclusive")
_ORDER = {"Successful": 0, "Running": 1, "Pending": 2, "Inconclusive": 3, "Error": 4, "Failed": 5}
ERROR_RETRY_S = 10.0  # Argo's DefaultErrorRetryInterval: after an Error measurement, whatever `interval`
HISTORY_LIMIT = 10  # DefaultMeasurementHistoryLimit
_TAG = re.compile(r"\{\{(.*?)\}\}")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def worst(a: str, b: str) -> str:
    return a if _ORDER.get(a, 0) >= _ORDER.get(b, 0) else b


def _go_quote(value: str) -> str:
    """The value as it goes inside a JSON string (Argo escapes with Go quoting before substituting)."""
    return json.dumps(value)[1:-1]


def resolve_args(metric: Obj, args: list[Any]) -> Obj:
    """The metric with every `{{args.NAME}}` replaced; ValueError with Argo's message otherwise."""
    values: dict[str, str | None] = {}
    for a in args:
        if isinstance(a, dict) and a.get("name"):
            v = a.get("value")
            values[str(a["name"])] = None if v is None else str(v)

    def sub(m: re.Match[str]) -> str:
        tag = m.group(1).strip()
        if not tag.startswith("args."):
            raise ValueError(f"failed to resolve {{{{{tag}}}}}")
        name = tag[len("args."):]
        if name not in values:
            raise ValueError(f"failed to resolve {{{{{tag}}}}}")
        v = values[name]
        if v is None:
            raise ValueError(f'argument "{name}" was not supplied')
        return _go_quote(v)

    return dict(json.loads(_TAG.sub(sub, json.dumps(metric))))


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _seconds(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    return go_duration(str(value))


def _effective_count(metric: Obj) -> int | None:
    """Argo's EffectiveCount: `count`, else 1 without an interval, else indefinite (None)."""
    if metric.get("count") not in (None, ""):
        return _int(metric.get("count"), 1)
    return None if metric.get("interval") else 1


def validate(metrics: list[Obj]) -> str | None:
    if not metrics:
        return "no metrics specified"
    seen: set[str] = set()
    for i, m in enumerate(metrics):
        name = str(m.get("name") or "")
        if name in seen:
            return f"metrics[{i}]: duplicate name '{name}'"
        seen.add(name)
        try:
            interval = _seconds(m.get("interval"))
        except ValueError as e:
            return f"metrics[{i}]: invalid interval string: {e}"
        try:
            _seconds(m.get("initialDelay"))
        except ValueError as e:
            return f"metrics[{i}]: invalid startDelay string: {e}"
        count = _effective_count(m)
        if count is not None and count > 1 and not interval:
            return f"metrics[{i}]: interval must be specified when count > 1"
        fl = _int(m.get("failureLimit"), 0)
        csl = _int(m.get("consecutiveSuccessLimit"), 0)
        if csl < 0:
            return f"metrics[{i}]: consecutiveSuccessLimit must be >= 0"
        if fl < -1:
            return f"metrics[{i}]: failureLimit must be >= 0, or -1 to be disabled"
        if fl == -1 and csl == 0:
            return f"metrics[{i}]: failureLimit and consecutiveSuccessLimit cannot both be disabled"
        if _int(m.get("inconclusiveLimit"), 0) < 0:
            return f"metrics[{i}]: inconclusiveLimit must be >= 0"
        if _int(m.get("consecutiveErrorLimit"), 4) < 0:
            return f"metrics[{i}]: consecutiveErrorLimit must be >= 0"
        if count is not None and fl >= 0 and count < fl + csl:
            return (f"metrics[{i}]: count ({count}) must be >= failureLimit + consecutiveSuccessLimit "
                    f"({fl} + {csl}) if both >= 0")
        if count is not None and fl < 0 and count < csl:
            return f"metrics[{i}]: count must be >= consecutiveSuccessLimit"
        provider = m.get("provider")
        if not isinstance(provider, dict) or not provider:
            return f"metrics[{i}]: no provider specified"
        if len(provider) > 1:
            return f"metrics[{i}]: multiple providers specified"
    return None


def _dry_run_names(spec: Obj, names: list[str]) -> tuple[set[str], str | None]:
    out: set[str] = set()
    for i, rule in enumerate(spec.get("dryRun") or []):
        pattern = str((rule or {}).get("metricName") or "")
        try:
            rx = re.compile(pattern)
        except re.error:
            rx = None
        hit = [n for n in names if rx is not None and rx.fullmatch(n)]
        if not hit:
            return out, f"dryRun[{i}]: Rule didn't match any metric name(s)"
        out.update(hit)
    return out, None


@dataclass
class RunStep:
    status: Obj
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    next_s: float | None = None  # seconds until the next pass is needed; None = none (completed)


def _limit_phase(metric: Obj, r: Obj) -> tuple[str | None, str]:
    phase: str | None = None
    detail = ""
    fl = _int(metric.get("failureLimit"), 0)
    il = _int(metric.get("inconclusiveLimit"), 0)
    el = _int(metric.get("consecutiveErrorLimit"), 4)
    if fl >= 0 and r.get("failed", 0) > fl:
        phase, detail = "Failed", f"failed ({r.get('failed', 0)}) > failureLimit ({fl})"
    if r.get("inconclusive", 0) > il:
        phase, detail = "Inconclusive", f"inconclusive ({r.get('inconclusive', 0)}) > inconclusiveLimit ({il})"
    if r.get("consecutiveError", 0) > el:
        phase, detail = "Error", f"consecutiveErrors ({r.get('consecutiveError', 0)}) > consecutiveErrorLimit ({el})"
    return phase, detail


def _metric_phase(metric: Obj, r: Obj, terminating: bool) -> tuple[str, str]:
    if r.get("phase") in COMPLETED:
        return str(r["phase"]), ""
    if not r.get("measurements"):
        return ("Successful" if terminating else "Pending"), ""
    phase, detail = _limit_phase(metric, r)
    if phase is not None:
        return phase, detail
    fl = _int(metric.get("failureLimit"), 0)
    csl = _int(metric.get("consecutiveSuccessLimit"), 0)
    reached = csl > 0 and r.get("consecutiveSuccess", 0) >= csl
    if reached:
        return "Successful", ""
    count = _effective_count(metric)
    if count is not None and r.get("count", 0) >= count:
        if csl > 0:  # the limit was set and not reached: Inconclusive where failures also count, else Failed
            return ("Inconclusive" if fl >= 0 else "Failed"), ""
        return "Successful", ""
    return ("Successful" if terminating else "Running"), ""


def _record(r: Obj, m: Measurement, started: float, finished: float) -> None:
    entry: Obj = {"phase": m.phase, "startedAt": rfc3339(started), "finishedAt": rfc3339(finished)}
    if m.value:
        entry["value"] = m.value
    if m.message:
        entry["message"] = m.message
    r["measurements"] = [*(r.get("measurements") or []), entry][-HISTORY_LIMIT:]
    if m.metadata:
        r["metadata"] = {**(r.get("metadata") or {}), **m.metadata}
    if m.phase == "Error":
        r["error"] = r.get("error", 0) + 1
        r["consecutiveError"] = r.get("consecutiveError", 0) + 1
        r["consecutiveSuccess"] = 0
        r["message"] = m.message
        return
    key = {"Successful": "successful", "Failed": "failed", "Inconclusive": "inconclusive"}[m.phase]
    r[key] = r.get(key, 0) + 1
    r["count"] = r.get("count", 0) + 1
    r["consecutiveError"] = 0
    r["consecutiveSuccess"] = r.get("consecutiveSuccess", 0) + 1 if m.phase == "Successful" else 0
    r.pop("message", None)


def step(run: Obj, now: float, query_for: Callable[[str], PromQuery]) -> RunStep:
    """One pass of the analysis controller over `run` at time `now`."""
    status: Obj = copy.deepcopy(run.get("status") or {})
    out = RunStep(status)
    if status.get("phase") in COMPLETED:
        return out
    spec = run.get("spec") or {}
    started = parse_time(status.get("startedAt"))
    if started is None:
        started = now
        status["startedAt"] = rfc3339(now)
    raw_metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]

    def fail(message: str) -> RunStep:
        status.update({"phase": "Error", "message": message, "completedAt": rfc3339(now)})
        out.events.append(("Warning", "AnalysisRunError", "Analysis Completed. Result: Error"))
        return out

    try:
        metrics = [resolve_args(m, spec.get("args") or []) for m in raw_metrics]
    except ValueError as e:
        return fail(f"Unable to resolve metric arguments: {e}")
    invalid = validate(metrics)
    if invalid is None:
        dry, invalid = _dry_run_names(spec, [str(m.get("name")) for m in metrics])
    if invalid is not None:
        return fail(f"Analysis spec invalid: {invalid}")
    results = {str(r.get("name")): r for r in status.get("metricResults") or [] if isinstance(r, dict)}

    def terminating() -> bool:
        return bool(spec.get("terminate")) or any(
            r.get("phase") in ("Failed", "Error", "Inconclusive") and not r.get("dryRun") for r in results.values())

    due: list[float] = []
    for m in metrics:
        name = str(m.get("name"))
        r = results.setdefault(name, {"name": name, "phase": "Pending", **({"dryRun": True} if name in dry else {})})
        if r.get("phase") in COMPLETED:
            continue
        if not terminating():
            count = _effective_count(m)
            measurements = r.get("measurements") or []
            if not measurements:
                at = started + _seconds(m.get("initialDelay"))
            elif count is not None and r.get("count", 0) >= count:
                at = math.inf
            else:
                last = measurements[-1]
                gap = ERROR_RETRY_S if last.get("phase") == "Error" else _seconds(m.get("interval"))
                at = (parse_time(last.get("finishedAt")) or now) + gap
            if at <= now:
                _record(r, measure(m, query_for, status.get("startedAt")), now, now)
                at = now + (ERROR_RETRY_S if r["measurements"][-1].get("phase") == "Error"
                            else _seconds(m.get("interval")))
                if count is not None and r.get("count", 0) >= count:
                    at = math.inf
            if at != math.inf:
                due.append(at)
        phase, detail = _metric_phase(m, r, terminating())
        if phase in COMPLETED:
            if detail:
                last_msg = r.get("message") or (r.get("measurements") or [{}])[-1].get("message")
                text = f"Metric \"{name}\" assessed {phase} due to {detail}"
                if r.get("dryRun"):
                    text = f"Metric assessed {phase} due to {detail}"
                if last_msg:
                    text += f': "Error Message: {last_msg}"'
                r["message"] = text
            r["phase"] = phase
            kind = "Warning" if phase in ("Failed", "Error") else "Normal"
            out.events.append((kind, f"Metric{phase}", f"Metric '{name}' Completed. Result: {phase}"))
        else:
            r["phase"] = phase
    status["metricResults"] = [results[str(m.get("name"))] for m in metrics]
    summary: Obj = {"count": 0}
    dry_summary: Obj = {"count": 0}
    run_phase = "Successful"
    message = ""
    all_done = True
    for m in metrics:
        r = results[str(m.get("name"))]
        target = dry_summary if r.get("dryRun") else summary
        target["count"] += 1
        p = str(r.get("phase"))
        if p in COMPLETED:
            target[p.lower()] = target.get(p.lower(), 0) + 1
        if r.get("dryRun"):
            continue
        if p not in COMPLETED:
            all_done = False
            continue
        if _ORDER[p] > _ORDER[run_phase]:
            run_phase = p
            message = str(r.get("message") or "")
    status["runSummary"] = summary
    status["dryRunSummary"] = dry_summary
    if all_done or terminating():
        if spec.get("terminate") and not message:
            message = "Run Terminated"
        status["phase"] = run_phase
        if message:
            status["message"] = message
        status["completedAt"] = rfc3339(now)
        kind = "Warning" if run_phase in ("Failed", "Error") else "Normal"
        out.events.append((kind, f"AnalysisRun{run_phase}", f"Analysis Completed. Result: {run_phase}"))
        return out
    status["phase"] = "Running"
    out.next_s = max(0.0, min(due) - now) if due else None
    return out


# ------------------------------------------------------------------------------------ building a run
def _template_args(templates: list[Obj]) -> list[Obj]:
    merged: dict[str, Obj] = {}
    for t in templates:
        for a in (t.get("spec") or {}).get("args") or []:
            if not isinstance(a, dict) or not a.get("name"):
                continue
            name = str(a["name"])
            prev = merged.get(name)
            if prev is not None and "value" in prev and "value" in a and prev["value"] != a["value"]:
                raise ValueError(f"Argument `{name}` specified multiple times with different values: "
                                 f"'{prev['value']}', '{a['value']}'")
            if prev is None or "value" not in prev:
                merged[name] = dict(a)
    return list(merged.values())


def build_run(templates: list[Obj], rollout_args: list[Any], resolve_value: Callable[[Obj], str | None],
              dry_run: list[Any] | None = None) -> Obj:
    """An AnalysisRun spec from templates and the Rollout's args (which override by name; `valueFrom` is
    resolved by `resolve_value`). ValueError with Argo's message when a name clashes or an arg is unset."""
    metrics: list[Obj] = []
    names: set[str] = set()
    dry: list[Any] = []
    for t in templates:
        tspec = t.get("spec") or {}
        for m in tspec.get("metrics") or []:
            name = str((m or {}).get("name"))
            if name in names:
                raise ValueError(f"two metrics have the same name '{name}'")
            names.add(name)
            metrics.append(m)
        dry.extend(tspec.get("dryRun") or [])
    args = _template_args(templates)
    given = {str(a.get("name")): a for a in rollout_args if isinstance(a, dict)}
    for a in args:
        override = given.get(str(a["name"]))
        if override is not None:
            a.pop("valueFrom", None)
            if "value" in override:
                a["value"] = str(override["value"])
            elif isinstance(override.get("valueFrom"), dict):
                v = resolve_value(override["valueFrom"])
                if v is not None:
                    a["value"] = v
        if "value" not in a:
            raise ValueError(f"args.{a['name']} was not resolved")
    spec: Obj = {"metrics": metrics, "args": args}
    dry.extend(dry_run or [])
    if dry:
        spec["dryRun"] = dry
    return spec


def next_due(steps: list[RunStep]) -> float | None:
    vals = [s.next_s for s in steps if s.next_s is not None]
    return min(vals) if vals else None

