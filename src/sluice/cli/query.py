"""`sluice query 'PROMQL'` (instant, or `--start/--end/--step` for a range) and `sluice stat` (per-workload
golden signals like `linkerd viz stat`), both over the Prometheus HTTP API — sluice's own, or the external
Prometheus named by `prometheus_url` in SLUICE_HOME/config.yaml.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError
from sluice.cli.printing import layout
from sluice.client.prometheus import PromClient, PromError, prometheus_url
from sluice.daemon.state import Home
from sluice.paths import home_from_env

__all__ = ["COMMANDS", "metric_text", "stat_queries"]


def metric_text(metric: dict[str, str]) -> str:
    """`name{a="b", …}` as Prometheus's console table shows a series."""
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _client() -> PromClient:
    return PromClient(prometheus_url(Home(home_from_env())))


def _fail(e: PromError) -> CliError:
    return CliError(f"{e.error_type}: {e.message}")


@click.command("query")
@click.argument("expr")
@click.option("--time", "at", default=None, help="Evaluation time (RFC3339 or unix seconds); default now.")
@click.option("--start", default=None, help="Range query start (RFC3339 or unix seconds).")
@click.option("--end", default=None, help="Range query end; default now.")
@click.option("--step", default="15s", show_default=True, help="Range query resolution.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@global_options
def query_cmd(expr: str, at: str | None, start: str | None, end: str | None, step: str, output: str) -> None:
    """Evaluate a PromQL expression: `sluice query 'sum(istio_requests_total{reporter="destination"})'`."""
    client = _client()
    try:
        if start:
            import time as _time

            data = client.query_range(expr, start, end or str(_time.time()), step)
        else:
            data = client.query(expr, at)
    except PromError as e:
        raise _fail(e) from None
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string"):
        click.echo(str(result[1]))
        return
    if not result:
        click.echo("No data.", err=True)
        return
    if kind == "vector":
        rows = [["METRIC", "VALUE"]] + [[metric_text(r["metric"]), str(r["value"][1])] for r in result]
    else:
        rows = [["METRIC", "VALUES"]]
        for r in result:
            rows.append([metric_text(r["metric"]), " ".join(f"{v}@{t}" for t, v in r["values"])])
    click.echo("\n".join(layout(rows)))


def stat_queries(namespace: str, window: str) -> dict[str, str]:
    """The PromQL behind `sluice stat`: destination-reported telemetry per workload, as `linkerd viz stat`."""
    sel = f'reporter="destination",destination_workload_namespace="{namespace}"'
    by = "by (destination_workload)"
    rate = f"sum(rate(istio_requests_total{{{sel}}}[{window}])) {by}"
    ok = f'sum(rate(istio_requests_total{{{sel},response_code!~"5.."}}[{window}])) {by}'
    q = {"rps": rate, "success": f"{ok} / {rate}"}
    for p in (50, 95, 99):
        q[f"p{p}"] = (f"histogram_quantile(0.{p}, sum(rate(istio_request_duration_milliseconds_bucket{{{sel}}}"
                      f"[{window}])) by (le, destination_workload))")
    return q


def _fmt(v: float | None, kind: str) -> str:
    if v is None or math.isnan(v):
        return "-"
    if kind == "success":
        return f"{v * 100:.2f}%"
    if kind == "rps":
        return f"{v:.1f}rps"
    return f"{v:.1f}ms" if v < 10 else f"{v:.0f}ms"


@click.command("stat")
@click.option("--window", "-t", default="1m", show_default=True, help="Window the rates are taken over.")
@global_options
def stat_cmd(window: str) -> None:
    """Success rate, requests per second and latency percentiles per deployment in a namespace."""
    s = session()
    ns = s.namespace
    client = _client()
    values: dict[str, dict[str, float]] = {}
    try:
        for key, expr in stat_queries(ns, window).items():
            for r in client.query(expr).get("result", []):
                wl = r["metric"].get("destination_workload", "")
                values.setdefault(wl, {})[key] = float(r["value"][1])
    except PromError as e:
        raise _fail(e) from None
    deployments: list[dict[str, Any]] = s.client.list(s.client.resolve("deployments"), ns).get("items", [])
    pods: list[dict[str, Any]] = s.client.list(s.client.resolve("pods"), ns).get("items", [])
    rows = [["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"]]
    for d in deployments:
        name = d["metadata"]["name"]
        mine = [p for p in pods if _owned_by(p, name)]
        meshed = sum(1 for p in mine if any(c.get("name") == "istio-proxy" for c in p["spec"].get("containers", [])))
        v = values.get(name, {})
        rows.append([name, f"{meshed}/{len(mine)}", _fmt(v.get("success"), "success"), _fmt(v.get("rps"), "rps"),
                     _fmt(v.get("p50"), "ms"), _fmt(v.get("p95"), "ms"), _fmt(v.get("p99"), "ms")])
    if len(rows) == 1:
        click.echo(f"No resources found in {ns} namespace.", err=True)
        return
    click.echo("\n".join(layout(rows)))


def _owned_by(pod: dict[str, Any], deployment: str) -> bool:
    """The pod's ReplicaSet is one of `deployment`'s (`<deployment>-<pod-template-hash>`)."""
    h = (pod["metadata"].get("labels") or {}).get("pod-template-hash")
    return any(r.get("name") in (deployment, f"{deployment}-{h}") for r in pod["metadata"].get("ownerReferences") or [])


COMMANDS = [query_cmd, stat_cmd]
