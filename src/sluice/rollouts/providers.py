"""Metric providers of AnalysisRuns, looked up by name: `prometheus` (Argo's own) and metric-provider plugins
(`provider: {plugin: {"<namespace>/<name>": {...}}}`, Argo's plugin form) registered in `PLUGINS`.

A provider takes the metric (after `{{args.*}}` substitution) and a `PromQuery` and returns a `Measurement`.
The Prometheus provider turns the query result into Argo's `result` (a float for a scalar, a list of floats
for a vector, all samples flattened for a matrix) and judges it with the metric's conditions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.rollouts.expr import ExprError, evaluate

__all__ = ["Measurement", "PromQuery", "PluginProvider", "PLUGINS", "CONFIG_FOR_RUN", "measure", "assess",
           "go_float", "prometheus_result"]

PromQuery = Callable[[str], list[Any]]  # PromQL → the `data.result` list of an instant query


@dataclass(frozen=True)
class Measurement:
    phase: str  # Successful | Failed | Inconclusive | Error
    value: str = ""
    message: str = ""
    metadata: Mapping[str, str] | None = None


PluginProvider = Callable[[Mapping[str, Any], PromQuery], Measurement]

def _judge(config: Mapping[str, Any], query: PromQuery) -> Measurement:
    from sluice.rollouts import judge  # numpy-backed: loaded by the first measurement that needs it

    return Measurement(*judge.measure(config, query))


def _judge_for_run(config: Mapping[str, Any], started_at: str | None) -> Mapping[str, Any]:
    from sluice.rollouts import judge

    return judge.for_run(config, started_at)


# "<namespace>/<name>" → provider: Sluice's statistical judge (docs/judge.md).
PLUGINS: dict[str, PluginProvider] = {"sluice/judge": _judge}
# "<namespace>/<name>" → the config of one measurement from the metric's config and the run's
# `status.startedAt` (the judge counts every request since the run started); identity when absent
CONFIG_FOR_RUN: dict[str, Callable[[Mapping[str, Any], str | None], Mapping[str, Any]]] = {
    "sluice/judge": _judge_for_run}


def go_float(x: float) -> str:
    """strconv.FormatFloat(x, 'f', -1, 64)-like text: `1`, `0.95`, `NaN`, `+Inf`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def _sample(value: Any) -> float:
    return float(value[1]) if isinstance(value, list | tuple) and len(value) == 2 else math.nan


def prometheus_result(data_result: list[Any]) -> tuple[Any, str]:
    """Argo's `result` and the measurement's value text for an instant query's `data.result`."""
    if len(data_result) == 2 and not isinstance(data_result[0], dict):  # a scalar: [time, "value"]
        x = _sample(data_result)
        return x, go_float(x)
    values: list[float] = []
    for series in data_result:
        if not isinstance(series, dict):
            raise ValueError("Prometheus metric type not supported")
        if "values" in series:
            values.extend(_sample(v) for v in series.get("values") or [])
        else:
            values.append(_sample(series.get("value")))
    return values, "[" + ",".join(go_float(v) for v in values) + "]"


def _condition(kind: str, expression: str, result: Any) -> bool:
    if result is None or result == []:
        raise ExprError(f'could not evaluate {kind} "{expression}": metric result is nil or empty: '
                        "no data returned from the metric provider")
    try:
        out = evaluate(expression, {"result": result})
    except ExprError as e:
        raise ExprError(f'could not evaluate {kind} "{expression}": {e}') from None
    if not isinstance(out, bool):
        raise ExprError(f"expected bool, but got {type(out).__name__}")
    return out


def assess(metric: Mapping[str, Any], result: Any) -> str:
    """Argo's EvaluateResult: the phase of one measurement from the success/failure conditions."""
    success = str(metric.get("successCondition") or "")
    failure = str(metric.get("failureCondition") or "")
    if not success and not failure:
        return "Successful"
    failed = _condition("failureCondition", failure, result) if failure else None
    succeeded = _condition("successCondition", success, result) if success else None
    if failed is not None and succeeded is None:
        return "Failed" if failed else "Successful"
    if succeeded is not None and failed is None:
        return "Successful" if succeeded else "Failed"
    if failed:
        return "Failed"
    return "Successful" if succeeded else "Inconclusive"


def _prometheus(metric: Mapping[str, Any], query: PromQuery) -> Measurement:
    cfg = metric["provider"]["prometheus"] or {}
    promql = str(cfg.get("query") or "")
    meta = {"ResolvedPrometheusQuery": promql}
    try:
        data = query(promql)
        result, value = prometheus_result(data)
    except Exception as e:  # any failure of the query is an Error measurement, as a provider error is in Argo
        return Measurement("Error", "", str(e), meta)
    try:
        return Measurement(assess(metric, result), value, "", meta)
    except ExprError as e:
        return Measurement("Error", value, str(e), meta)


def measure(metric: Mapping[str, Any], query_for: Callable[[str], PromQuery],
            started_at: str | None = None) -> Measurement:
    """One measurement of a resolved metric. `query_for(address)` gives the PromQuery of a Prometheus address
    (an empty address means the controller's default); `started_at` is the run's `status.startedAt`."""
    provider = metric.get("provider") or {}
    if not isinstance(provider, dict) or not provider:
        return Measurement("Error", "", "no provider specified")
    if len(provider) > 1:
        return Measurement("Error", "", "multiple providers specified")
    (name, cfg), = provider.items()
    if name == "prometheus":
        address = str((cfg or {}).get("address") or "")
        return _prometheus(metric, query_for(address))
    if name == "plugin" and isinstance(cfg, dict) and len(cfg) == 1:
        (plugin, config), = cfg.items()
        impl = PLUGINS.get(str(plugin))
        if impl is None:
            return Measurement("Error", "", f"plugin {plugin} not configured in configMap argo-rollouts-config")
        try:
            block: Mapping[str, Any] = config if isinstance(config, dict) else {}
            adapt = CONFIG_FOR_RUN.get(str(plugin))
            return impl(adapt(block, started_at) if adapt is not None else block, query_for(""))
        except Exception as e:  # a plugin's failure is that measurement's Error, never the controller's
            return Measurement("Error", "", f"{plugin}: {e}")
    return Measurement("Error", "", f"provider {name} is not supported by Sluice")
