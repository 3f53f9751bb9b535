"""`sluice rollouts …`: the rollout commands. `decommission` scales an old version down (or deletes it) only
once Istio's metrics and its sidecars' access logs prove it idle over a window (`sluice.rollouts.decommission`).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click

from sluice.cli.context import Session, global_options, session
from sluice.cli.delete import parse_duration
from sluice.cli.errors import CliError
from sluice.cli.printing import layout
from sluice.cli.progress import waiting
from sluice.client.api import MERGE_PATCH
from sluice.client.errors import ApiError
from sluice.client.prometheus import PromClient, PromError, prometheus_url
from sluice.daemon.state import Home
from sluice.paths import home_from_env
from sluice.rollouts.decommission import PROOF_ANNOTATION, Proof, decide, idle_queries

__all__ = ["COMMANDS"]

POLL_S = 5.0
_COMPONENT = "sluice-rollouts"


@click.group("rollouts")
def rollouts_group() -> None:
    """Automate rollouts: prove an old version idle before it goes (`sluice rollouts decommission`)."""


def _selector(deployment: dict[str, Any]) -> str:
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not match:
        raise CliError(f"deployment {deployment['metadata']['name']} has no spec.selector.matchLabels")
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


def _proof(s: Session, prom: PromClient, namespace: str, name: str, window_s: int) -> Proof:
    at = time.time()
    answers = []
    for what, query in idle_queries(namespace, name, window_s):
        try:
            data = prom.query(query, f"{at:.3f}")
        except PromError as e:
            raise CliError(f"{e.error_type}: {e.message} (query: {query})") from None
        answers.append((what, query, data.get("result") or []))
    pods = s.client.list(s.client.resolve("pods"), namespace,
                         label_selector=_selector(s.client.get(s.client.resolve("deployments"), name, namespace)))
    logs: dict[str, list[str]] = {}
    for pod in pods.get("items") or []:
        pod_name = pod["metadata"]["name"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if "istio-proxy" not in containers:
            continue
        try:
            logs[pod_name] = [b.decode("utf-8", "replace") for b in s.client.logs(
                namespace, pod_name, {"container": "istio-proxy", "sinceSeconds": window_s})]
        except ApiError as e:
            if e.code != 404:
                raise
    return decide(namespace, name, window_s, at, answers, logs)


def _table(proof: Proof) -> list[str]:
    rows = [["WITNESS", "WINDOW", "VALUE"]]
    for w in proof.metrics:
        rows.append([w.what, f"{proof.window_s}s", "no series" if w.value is None else f"{w.value:g}"])
    for lw in proof.logs:
        rows.append([f"access log of {lw.pod} (istio-proxy)", f"{proof.window_s}s", f"{lw.lines} inbound lines"])
    return layout(rows)


def _record(s: Session, deployment: dict[str, Any], reason: str, message: str) -> None:
    meta = deployment["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
             "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                "namespace": meta["namespace"], "uid": meta.get("uid"),
                                "resourceVersion": meta.get("resourceVersion")},
             "reason": reason, "message": message, "type": "Normal", "count": 1,
             "firstTimestamp": now, "lastTimestamp": now, "source": {"component": _COMPONENT},
             "reportingComponent": _COMPONENT}
    s.client.create(s.client.resolve("events"), meta["namespace"], event)


@rollouts_group.command("decommission")
@click.argument("target")
@click.option("--window", default="1m", show_default=True,
              help="How long the version must have received nothing (Go duration: 30s, 5m).")
@click.option("--timeout", default="10m", show_default=True, help="How long to wait for that proof; 0 = forever.")
@click.option("--delete", "delete_it", is_flag=True, help="Delete the Deployment instead of scaling it to 0.")
@click.option("--prometheus-url", "prom_url", default=None, help="The Prometheus API to ask (default: sluice's own).")
@global_options
def decommission_cmd(target: str, window: str, timeout: str, delete_it: bool, prom_url: str | None) -> None:
    """Scale a Deployment (an old version) to 0 once it is proven idle: no requests or TCP connections to it in
    Istio's metrics and no inbound line in its sidecars' access logs over --window. The proof is shown,
    kept in the Deployment's `sluice.dev/decommission-proof` annotation and told in an Event.

    `sluice rollouts decommission deployment/reviews-v2 --window 2m`"""
    kind, _, name = target.rpartition("/")
    if kind not in ("", "deployment", "deployments", "deploy", "deployment.apps", "deployments.apps") or not name:
        raise CliError(f'only Deployments can be decommissioned, not "{target}"')
    window_s = int(parse_duration(window))
    if window_s < 1:
        raise CliError(f'invalid --window "{window}": must be at least 1s')
    limit = parse_duration(timeout)
    s = session()
    deployments = s.client.resolve("deployments")
    namespace = s.namespace
    try:
        deployment = s.client.get(deployments, name, namespace)
    except ApiError as e:
        if e.code == 404:
            raise CliError(f'deployments.apps "{name}" not found') from None
        raise
    prom = PromClient(prom_url or prometheus_url(Home(home_from_env())))
    deadline = time.monotonic() + limit if limit else None
    said = ""
    with waiting(f"waiting until {name} has been idle for {window_s}s"):
        while True:
            proof = _proof(s, prom, namespace, name, window_s)
            if proof.idle:
                break
            if proof.summary() != said:
                said = proof.summary()
                click.echo(said, err=True)
            if deadline is not None and time.monotonic() >= deadline:
                for line in _table(proof):
                    click.echo(line)
                raise CliError(f"timed out waiting for the proof: {said}")
            time.sleep(POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic())))
    for line in _table(proof):
        click.echo(line)
    deployment = s.client.patch(deployments, name, namespace,
                                {"metadata": {"annotations": {PROOF_ANNOTATION: proof.annotation()}}},
                                content_type=MERGE_PATCH, field_validation=None)
    _record(s, deployment, "DecommissionProven", proof.summary())
    if delete_it:
        s.client.delete(deployments, name, namespace)
        click.echo(f"deployment.apps/{name} deleted ({proof.summary()})")
    else:
        s.client.patch(deployments, name, namespace, {"spec": {"replicas": 0}}, content_type=MERGE_PATCH,
                       subresource="scale", field_validation=None)
        click.echo(f"deployment.apps/{name} scaled to 0 ({proof.summary()})")


COMMANDS = [rollouts_group]
