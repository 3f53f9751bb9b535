"""The rollouts controller's own metrics, named and labelled as Argo Rollouts' controller publishes them
(controller/metrics/: prommetrics.go, rollouts.go, analysis.go, client.go), so dashboards and alerts written for
Argo work unchanged.

From the objects (read at each pass): `rollout_info`, `rollout_info_replicas_*`, `rollout_phase`,
`analysis_run_info`, `analysis_run_phase`, `analysis_run_metric_type`, `analysis_run_metric_phase`,
`analysis_template_info`, `analysis_template_metric_info`. Counted as the controller works: `rollout_reconcile`
and `analysis_run_reconcile` (histograms of a pass's seconds), `rollout_reconcile_error`,
`analysis_run_reconcile_error`, `rollout_events_total`, `controller_clientset_k8s_request_total`. And
`argo_rollouts_controller_info`. The daemon adds them to its `/metrics` (and so to its TSDB);
`sluice rollouts controller` serves them on its own port (`serve`).

`families` is pure over the objects and the counters' snapshot. It imports the exposition module when called:
that module loads the PromQL engine, which `sluice rollouts …` commands (importing the controller) do not need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sluice

if TYPE_CHECKING:
    from sluice.metrics.exposition import Family, Sample

__all__ = ["ControllerMetrics", "families", "phase_of", "strategy_and_router", "metric_type", "RECONCILE_BUCKETS"]

Obj = Mapping[str, Any]
Labels = tuple[tuple[str, str], ...]

RECONCILE_BUCKETS = (0.01, 0.15, 0.25, 0.5, 1.0)  # Argo's, for both reconcile histograms
ROLLOUT_PHASES = ("Completed", "Progressing", "Paused", "Timeout", "Error", "Abort")
RUN_PHASES = ("Pending", "Error", "Failed", "Successful", "Running", "Inconclusive")
# a list, and these kinds, are counted without the object's name (client.go)
_NAMELESS_KINDS = frozenset({"events", "replicasets", "analysisruns", "jobs", "experiments"})
# metricproviders.Type: the provider key → Argo's provider type name
_PROVIDER_TYPES = (("prometheus", "Prometheus"), ("job", "Job"), ("kayenta", "Kayenta"), ("web", "Web"),
                   ("datadog", "Datadog"), ("wavefront", "Wavefront"), ("newRelic", "NewRelic"),
                   ("cloudWatch", "CloudWatch"), ("graphite", "Graphite"), ("influxdb", "Influxdb"),
                   ("skywalking", "SkyWalking"), ("plugin", "RPCPlugin"))


def _labels(**kv: str) -> Labels:
    return tuple(sorted(kv.items()))


def _condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == type_), None)


def phase_of(ro: Obj) -> str:
    """Argo's calculatePhase: from the Progressing condition's reason, InvalidSpec over all."""
    status = ro.get("status") or {}
    phase = "Progressing"
    reason = (_condition(status, "Progressing") or {}).get("reason")
    phase = {"NewReplicaSetAvailable": "Completed", "RolloutPaused": "Paused", "ReplicaSetCreateError": "Error",
             "ProgressDeadlineExceeded": "Timeout", "RolloutAborted": "Abort"}.get(str(reason), phase)
    if _condition(status, "InvalidSpec") is not None:
        phase = "InvalidSpec"
    return phase


def strategy_and_router(ro: Obj) -> tuple[str, str]:
    strategy = (ro.get("spec") or {}).get("strategy") or {}
    if strategy.get("blueGreen") is not None:
        return "blueGreen", ""
    canary = strategy.get("canary")
    if canary is None:
        return "none", ""
    routing = canary.get("trafficRouting") or {}
    router = ""
    for key, name in (("alb", "ALB"), ("ambassador", "Ambassador"), ("istio", "Istio"), ("nginx", "Nginx"),
                      ("smi", "SMI"), ("appMesh", "AppMesh")):
        if routing.get(key) is not None:
            router = name  # the last one set wins, as in Argo's if-chain
    return "canary", router


def metric_type(metric: Obj) -> str:
    provider = metric.get("provider") or {}
    return next((name for key, name in _PROVIDER_TYPES if provider.get(key) is not None), "Unknown Provider")


class ControllerMetrics:
    """What the controller counts as it works; read by `families` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (kind, namespace, name) → ([per-bucket counts, +Inf last], sum)
        self._reconcile: dict[tuple[str, str, str], tuple[list[int], float]] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._events: dict[tuple[str, str, str, str], int] = {}
        self._requests: dict[tuple[str, str, str, str, str], int] = {}

    def reconciled(self, kind: str, namespace: str, name: str, seconds: float, error: bool = False) -> None:
        with self._lock:
            counts, total = self._reconcile.get((kind, namespace, name)) or ([0] * (len(RECONCILE_BUCKETS) + 1), 0.0)
            i = next((i for i, b in enumerate(RECONCILE_BUCKETS) if seconds <= b), len(RECONCILE_BUCKETS))
            counts[i] += 1
            self._reconcile[(kind, namespace, name)] = (counts, total + seconds)
            if error:
                key = (kind, namespace, name)
                self._errors[key] = self._errors.get(key, 0) + 1

    def event(self, obj: Obj, type_: str, reason: str) -> None:
        if obj.get("kind") != "Rollout":
            return
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""), type_, reason)
        with self._lock:
            self._events[key] = self._events.get(key, 0) + 1

    def request(self, resource: str, namespace: str, name: str, verb: str, status_code: int) -> None:
        """One Kubernetes API request: `resource` the plural (`rollouts`), `verb` Argo's (Get, List, …)."""
        if verb == "List" or resource in _NAMELESS_KINDS:
            name = "N/A"
        key = (resource, namespace, name, verb, str(status_code))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1

    def snapshot(self) -> tuple[dict[tuple[str, str, str], tuple[list[int], float]], dict[tuple[str, str, str], int],
                                dict[tuple[str, str, str, str], int], dict[tuple[str, str, str, str, str], int]]:
        with self._lock:
            return ({k: (list(c), s) for k, (c, s) in self._reconcile.items()}, dict(self._errors),
                    dict(self._events), dict(self._requests))


def families(counters: ControllerMetrics, rollouts: Iterable[Obj], runs: Iterable[Obj],
             templates: Iterable[Obj]) -> list[Family]:
    """Every family, from the objects last read (`templates`: AnalysisTemplates and ClusterAnalysisTemplates)."""
    from sluice.metrics.exposition import Family, Sample, histogram_samples

    def _gauge(name: str, help: str, samples: list[Sample]) -> Family:
        return Family(name, "gauge", help, samples)

    info: list[Sample] = []
    avail: list[Sample] = []
    unavail: list[Sample] = []
    desired: list[Sample] = []
    updated: list[Sample] = []
    phases: list[Sample] = []
    for ro in rollouts:
        meta, spec, status = ro.get("metadata") or {}, ro.get("spec") or {}, ro.get("status") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        strategy, router = strategy_and_router(ro)
        phase = phase_of(ro)
        info.append(Sample("rollout_info", _labels(namespace=ns, name=name, strategy=strategy,
                                                   traffic_router=router, phase=phase), 1.0))
        base = _labels(namespace=ns, name=name)
        replicas, available = int(status.get("replicas") or 0), int(status.get("availableReplicas") or 0)
        avail.append(Sample("rollout_info_replicas_available", base, float(available)))
        unavail.append(Sample("rollout_info_replicas_unavailable", base, float(replicas - available)))
        want = spec.get("replicas")
        desired.append(Sample("rollout_info_replicas_desired", base, float(1 if want is None else int(want))))
        updated.append(Sample("rollout_info_replicas_updated", base, float(int(status.get("updatedReplicas") or 0))))
        for p in ROLLOUT_PHASES:
            phases.append(Sample("rollout_phase", _labels(namespace=ns, name=name, strategy=strategy, phase=p),
                                 float(phase == p)))
    run_info: list[Sample] = []
    run_phase: list[Sample] = []
    m_type: list[Sample] = []
    m_phase: list[Sample] = []
    for run in runs:
        meta, status = run.get("metadata") or {}, run.get("status") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        phase = str(status.get("phase") or "")
        run_info.append(Sample("analysis_run_info", _labels(namespace=ns, name=name, phase=phase), 1.0))
        for p in RUN_PHASES:
            hit = phase == p or (p == "Pending" and phase == "")
            run_phase.append(Sample("analysis_run_phase", _labels(namespace=ns, name=name, phase=p), float(hit)))
        results = {str(r.get("name")): str(r.get("phase") or "") for r in status.get("metricResults") or []
                   if isinstance(r, dict)}
        dry_run = {str(d.get("metricName")) for d in (run.get("spec") or {}).get("dryRun") or []
                   if isinstance(d, dict)}
        for metric in (run.get("spec") or {}).get("metrics") or []:
            if not isinstance(metric, dict):
                continue
            mname, mtype = str(metric.get("name") or ""), metric_type(metric)
            m_type.append(Sample("analysis_run_metric_type", _labels(namespace=ns, name=name, metric=mname,
                                                                     type=mtype), 1.0))
            mphase = results.get(mname, "")
            dry = "true" if mname in dry_run or "*" in dry_run else "false"
            for p in RUN_PHASES:
                hit = mphase == p or (p == "Pending" and mphase == "")
                m_phase.append(Sample("analysis_run_metric_phase", _labels(
                    namespace=ns, name=name, metric=mname, type=mtype, dry_run=dry, phase=p), float(hit)))
    t_info: list[Sample] = []
    t_metric: list[Sample] = []
    for t in templates:
        meta = t.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        t_info.append(Sample("analysis_template_info", _labels(namespace=ns, name=name), 1.0))
        for metric in (t.get("spec") or {}).get("metrics") or []:
            if isinstance(metric, dict):
                t_metric.append(Sample("analysis_template_metric_info", _labels(
                    namespace=ns, name=name, type=metric_type(metric), metric=str(metric.get("name") or "")), 1.0))

    reconcile, errors, events, requests = counters.snapshot()
    hist: dict[str, list[Sample]] = {"Rollout": [], "AnalysisRun": []}
    for (kind, ns, name), (counts, total) in sorted(reconcile.items()):
        family = "rollout_reconcile" if kind == "Rollout" else "analysis_run_reconcile"
        buckets = [*zip((*RECONCILE_BUCKETS, float("inf")), (float(c) for c in counts), strict=True)]
        hist[kind].extend(histogram_samples(family, _labels(namespace=ns, name=name), buckets, total))
    err: dict[str, list[Sample]] = {"Rollout": [], "AnalysisRun": []}
    for (kind, ns, name), n in sorted(errors.items()):
        family = "rollout_reconcile_error" if kind == "Rollout" else "analysis_run_reconcile_error"
        err[kind].append(Sample(family, _labels(namespace=ns, name=name), float(n)))
    return [
        _gauge("rollout_info", "Information about rollout.", info),
        _gauge("rollout_info_replicas_available", "The number of available replicas per rollout.", avail),
        _gauge("rollout_info_replicas_unavailable", "The number of unavailable replicas per rollout.", unavail),
        _gauge("rollout_info_replicas_desired", "The number of desired replicas per rollout.", desired),
        _gauge("rollout_info_replicas_updated", "The number of updated replicas per rollout.", updated),
        _gauge("rollout_phase", "Information on the state of the rollout (DEPRECATED - use rollout_info)", phases),
        Family("rollout_reconcile", "histogram", "Rollout reconciliation performance.", hist["Rollout"]),
        Family("rollout_reconcile_error", "counter", "Error occurring during the rollout", err["Rollout"]),
        Family("rollout_events_total", "counter", "Count of rollout events", [
            Sample("rollout_events_total", _labels(namespace=ns, name=name, type=type_, reason=reason), float(n))
            for (ns, name, type_, reason), n in sorted(events.items())]),
        _gauge("analysis_run_info", "Information about analysis run.", run_info),
        _gauge("analysis_run_phase", "Information on the state of the Analysis Run (DEPRECATED - use "
                                     "analysis_run_info)", run_phase),
        _gauge("analysis_run_metric_type", "Information on the type of a specific metric in the Analysis Runs",
               m_type),
        _gauge("analysis_run_metric_phase", "Information on the duration of a specific metric in the Analysis Run",
               m_phase),
        Family("analysis_run_reconcile", "histogram", "Analysis Run reconciliation performance.",
               hist["AnalysisRun"]),
        Family("analysis_run_reconcile_error", "counter", "Error occurring during the analysis run",
               err["AnalysisRun"]),
        _gauge("analysis_template_info", "Information about analysis templates.", t_info),
        _gauge("analysis_template_metric_info", "Information on metrics in analysis templates.", t_metric),
        Family("controller_clientset_k8s_request_total", "counter",
               "Number of kubernetes requests executed during application reconciliation.", [
                   Sample("controller_clientset_k8s_request_total", _labels(
                       kind=kind, namespace=ns, name=name, verb=verb, status_code=code), float(n))
                   for (kind, ns, name, verb, code), n in sorted(requests.items())]),
        _gauge("argo_rollouts_controller_info", "Running Argo-rollouts version",
               [Sample("argo_rollouts_controller_info", _labels(version=f"sluice-{sluice.__version__}"), 1.0)]),
    ]
