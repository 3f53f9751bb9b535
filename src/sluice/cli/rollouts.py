"""`sluice rollouts …`: the rollout commands. `decommission` scales an old version down (or deletes it) only
once Istio's metrics and its sidecars' access logs prove it idle over a window (`sluice.rollouts.decommission`).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click

from sluice.cli import rollouts_controller
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
from sluice.rollouts import actions
from sluice.rollouts.actions import Patch
from sluice.rollouts.decommission import PROOF_ANNOTATION, SIDECAR, Proof, prove
from sluice.rollouts.shift import ShiftError, current_weight, host_names, parse_steps, with_weight
from sluice.rollouts.view import list_lines, rollout_view

__all__ = ["COMMANDS"]

POLL_S = 5.0
CHECK_S = 5.0  # how often a shift step asks the judge
_COMPONENT = "sluice-rollouts"
JSON_PATCH = "application/json-patch+json"


@click.group("rollouts")
def rollouts_group() -> None:
    """Automate rollouts: prove an old version idle before it goes (`sluice rollouts decommission`)."""


def _selector(deployment: dict[str, Any]) -> str:
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not match:
        raise CliError(f"deployment {deployment['metadata']['name']} has no spec.selector.matchLabels")
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


def _get(s: Session, resource: str, name: str, namespace: str) -> dict[str, Any]:
    """The named object, or a `"<resource>" "<name>" not found` error as `kubectl argo rollouts` words it."""
    try:
        return s.client.get(s.client.resolve(resource), name, namespace)
    except ApiError as e:
        if e.code == 404:
            raise CliError(f'{resource} "{name}" not found') from None
        raise


def _proof(s: Session, prom: PromClient, namespace: str, name: str, window_s: int) -> Proof:
    at = time.time()

    def query(promql: str) -> list[dict[str, Any]]:
        try:
            return list(prom.query(promql, f"{at:.3f}").get("result") or [])
        except PromError as e:
            raise CliError(f"{e.error_type}: {e.message} (query: {promql})") from None

    def sidecar_log(pod: str) -> list[str] | None:
        try:
            return [b.decode("utf-8", "replace") for b in s.client.logs(
                namespace, pod, {"container": SIDECAR, "sinceSeconds": window_s})]
        except ApiError as e:
            if e.code != 404:
                raise
            return None

    pods = s.client.list(s.client.resolve("pods"), namespace,
                         label_selector=_selector(s.client.get(s.client.resolve("deployments"), name, namespace)))
    return prove(namespace, name, window_s, at, query, pods.get("items") or [], sidecar_log)


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
    s = session()
    prom = PromClient(prom_url or prometheus_url(Home(home_from_env())))
    _decommission(s, prom, s.namespace, name, window_s, parse_duration(timeout), delete_it)


def _decommission(s: Session, prom: PromClient, namespace: str, name: str, window_s: int, limit: float,
                  delete_it: bool) -> None:
    """Wait (up to `limit` s; 0 = forever) for the proof that Deployment `name` is idle, then act on it."""
    deployments = s.client.resolve("deployments")
    deployment = _get(s, "deployments.apps", name, namespace)
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
    _record(s, deployment, "DecommissionProven", f"{proof.summary()}. {proof.details()}")
    if delete_it:
        s.client.delete(deployments, name, namespace)
        click.echo(f"deployment.apps/{name} deleted ({proof.summary()})")
    else:
        s.client.patch(deployments, name, namespace, {"spec": {"replicas": 0}}, content_type=MERGE_PATCH,
                       subresource="scale", field_validation=None)
        click.echo(f"deployment.apps/{name} scaled to 0 ({proof.summary()})")

def _find_virtualservice(s: Session, namespace: str, service: str, name: str | None) -> dict[str, Any]:
    vss = s.client.resolve("virtualservices.networking.istio.io")
    if name:
        return _get(s, "virtualservices.networking.istio.io", name, namespace)
    hosts = host_names(service, namespace)
    found: list[dict[str, Any]] = [vs for vs in s.client.list(vss, namespace).get("items") or []
                                   if hosts & set((vs.get("spec") or {}).get("hosts") or [])]
    if not found:
        raise CliError(f'no VirtualService in namespace "{namespace}" has host "{service}": apply one that routes '
                       "to its subsets first (the story's virtual-service-reviews-v2 or 90-10 manifest)")
    if len(found) > 1:
        names = ", ".join(sorted(vs["metadata"]["name"] for vs in found))
        raise CliError(f'several VirtualServices have host "{service}" ({names}): name one with --virtualservice')
    return found[0]


def _subset_labels(s: Session, namespace: str, service: str, subsets: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Each subset's labels, from the DestinationRule for the service (an error names what is missing)."""
    drs = s.client.resolve("destinationrules.networking.istio.io")
    hosts = host_names(service, namespace)
    labels: dict[str, dict[str, str]] = {}
    for dr in s.client.list(drs, namespace).get("items") or []:
        spec = dr.get("spec") or {}
        if spec.get("host") in hosts:
            for sub in spec.get("subsets") or []:
                if isinstance(sub, dict) and sub.get("name") in subsets:
                    labels[str(sub["name"])] = {str(k): str(v) for k, v in (sub.get("labels") or {}).items()}
    missing = [x for x in subsets if x not in labels]
    if missing:
        raise CliError(f'no DestinationRule for host "{service}" defines subset(s) {", ".join(missing)} '
                       "(Istio would answer 503 NR for them; see IST0101 in `sluice analyze`)")
    return labels


def _workloads(s: Session, namespace: str, service: str, labels: dict[str, str]) -> list[str]:
    """The Deployments whose pods the Service selects and the subset's labels match."""
    svc = s.client.get(s.client.resolve("services"), service, namespace)
    want = {**((svc.get("spec") or {}).get("selector") or {}), **labels}
    out = []
    for d in s.client.list(s.client.resolve("deployments"), namespace).get("items") or []:
        have = ((((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}
        if all(have.get(k) == v for k, v in want.items()):
            out.append(str(d["metadata"]["name"]))
    return sorted(out)


def _set_weight(s: Session, namespace: str, vs: dict[str, Any], service: str, stable: str, canary: str,
                weight: int) -> dict[str, Any]:
    vss = s.client.resolve("virtualservices.networking.istio.io")
    current = s.client.get(vss, vs["metadata"]["name"], namespace)
    try:
        http = with_weight((current.get("spec") or {}).get("http") or [], host_names(service, namespace), stable,
                           canary, weight)
    except ShiftError as e:
        raise CliError(f'virtualservice "{vs["metadata"]["name"]}": {e}') from None
    # resourceVersion: a concurrent edit of the object (kubectl edit) fails this write instead of being lost.
    patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"http": http}}
    return s.client.patch(vss, vs["metadata"]["name"], namespace, patch, content_type=MERGE_PATCH)


def _judge(prom: PromClient, config: dict[str, Any]) -> tuple[str, str, str]:
    from sluice.rollouts.judge import measure  # numpy-backed: loaded only when a shift is judged

    def query(expr: str) -> list[dict[str, Any]]:
        return list((prom.query(expr) or {}).get("result") or [])

    try:
        return measure(config, query)
    except PromError as e:
        return "Error", "", f"{e.error_type}: {e.message}"


def _judge_config(namespace: str, stable: list[str], canary: list[str], since: float) -> dict[str, Any]:
    """The judge's config for one step: canary against stable by workload, every look counting from the step's
    start (`since`), so looking at each check interval keeps the judge's error rates (docs/judge.md)."""
    def sel(workloads: list[str]) -> str:
        names = "|".join(workloads)
        return f'destination_workload=~"{names}",destination_workload_namespace="{namespace}"'

    return {"canary": sel(canary), "stable": sel(stable), "since": f"{since:.3f}"}


@rollouts_group.command("shift")
@click.argument("service")
@click.option("--from", "stable", required=True, help="The subset traffic leaves (the story's v2).")
@click.option("--to", "canary", required=True, help="The subset traffic moves to (the story's v3).")
@click.option("--steps", default="10,20,30,100", show_default=True, help="Weights to the new subset, in order.")
@click.option("--interval", default="1m", show_default=True, help="How long each step runs before the next.")
@click.option("--virtualservice", default=None, help="The VirtualService to drive (default: the one whose hosts "
              "include SERVICE).")
@click.option("--judge/--no-judge", default=True, show_default=True,
              help="Gate each step on the statistical judge (canary against stable, Istio's metrics).")
@click.option("--max-wait", default="10m", show_default=True,
              help="How long a step may stay inconclusive (too little traffic) before the shift stops, paused.")
@click.option("--decommission/--no-decommission", default=True, show_default=True,
              help="After 100 %, scale the old version to 0 once it is proven idle.")
@click.option("--window", default="1m", show_default=True, help="The idle window the decommission proves.")
@click.option("--prometheus-url", "prom_url", default=None, help="The Prometheus API to ask (default: sluice's own).")
@global_options
def shift_cmd(service: str, stable: str, canary: str, steps: str, interval: str, virtualservice: str | None,
              judge: bool, max_wait: str, decommission: bool, window: str, prom_url: str | None) -> None:
    """The story's phased rollout as one command: move SERVICE's traffic from one subset to another in steps
    (only the weights of its VirtualService's routes change), let the judge gate each step (a worse canary puts
    every request back on the old subset), then decommission the old version once it is proven idle.

    `sluice rollouts shift reviews --from v2 --to v3 --steps 10,20,30,100 --interval 1m`"""
    try:
        weights = parse_steps(steps)
    except ShiftError as e:
        raise CliError(str(e)) from None
    interval_s = parse_duration(interval)
    window_s = int(parse_duration(window))
    wait_s = parse_duration(max_wait)
    if interval_s <= 0 or window_s < 1:
        raise CliError("--interval and --window must be at least 1s")
    s = session()
    ns = s.namespace
    prom = PromClient(prom_url or prometheus_url(Home(home_from_env())))
    vs = _find_virtualservice(s, ns, service, virtualservice)
    labels = _subset_labels(s, ns, service, (stable, canary))
    old, new = _workloads(s, ns, service, labels[stable]), _workloads(s, ns, service, labels[canary])
    if not new:
        raise CliError(f'no Deployment runs subset "{canary}" of service "{service}" (labels {labels[canary]})')
    start = current_weight((vs.get("spec") or {}).get("http") or [], host_names(service, ns), stable, canary)
    if start is None:
        raise CliError(f'virtualservice "{vs["metadata"]["name"]}": no HTTP route sends only to subsets '
                       f'"{stable}"/"{canary}" of "{service}"')
    click.echo(f'shifting {service} from {stable} ({", ".join(old) or "no pods"}) to {canary} '
               f'({", ".join(new)}) through virtualservice/{vs["metadata"]["name"]}: steps {steps}, '
               f"{interval} each" + (", judged" if judge else ""))
    for n, weight in enumerate(weights, 1):
        _set_weight(s, ns, vs, service, stable, canary, weight)
        click.echo(f"step {n}/{len(weights)}: {weight}% to {canary}, {100 - weight}% to {stable}")
        if weight == 100:
            break  # nothing left on the stable subset to compare with
        if not judge:
            with waiting(f"step {n}/{len(weights)}: {weight}% to {canary}"):
                time.sleep(interval_s)
            continue
        _gate(s, ns, vs, service, stable, canary, prom, _judge_config(ns, old, new, time.time()), n, len(weights),
              interval_s, wait_s)
    if decommission:
        for name in old:
            _decommission(s, prom, ns, name, window_s, 0, False)
    click.echo(f"done: all of {service}'s traffic goes to {canary}")


def _gate(s: Session, ns: str, vs: dict[str, Any], service: str, stable: str, canary: str, prom: PromClient,
          config: dict[str, Any], n: int, total: int, interval_s: float, wait_s: float) -> None:
    """Run one step: the judge every CHECK_S; Failed rolls back and stops, Successful after the interval goes on,
    Inconclusive waits (up to `wait_s` past the interval) for enough traffic."""
    began = time.monotonic()
    said = ""
    with waiting(f"step {n}/{total}: judging {canary} against {stable}") as show:
        while True:
            phase, _value, message = _judge(prom, config)
            # A line when the verdict changes; meanwhile the spinner shows the latest reading.
            show(f"step {n}/{total}: {phase}: {message}")
            if phase != said:
                said = phase
                click.echo(f"  judge: {phase}: {message}")
            elapsed = time.monotonic() - began
            if phase == "Failed":
                _set_weight(s, ns, vs, service, stable, canary, 0)
                raise CliError(f"rolled back: all of {service}'s traffic is on {stable} again ({message})")
            if phase == "Successful" and elapsed >= interval_s:
                return
            if elapsed >= interval_s + wait_s:
                raise CliError(f"paused at step {n}/{total}: the judge is still {phase.lower()} after "
                               f"{elapsed:.0f}s ({message}); run the command again to go on", exit_code=2)
            time.sleep(min(CHECK_S, max(0.5, interval_s - elapsed)) if elapsed < interval_s else CHECK_S)


_ROLLOUTS = "rollouts.argoproj.io"


def _rollout(s: Session, name: str) -> dict[str, Any]:
    return _get(s, _ROLLOUTS, name, s.namespace)


def _patch(s: Session, name: str, patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    return s.client.patch(s.client.resolve(_ROLLOUTS), name, s.namespace, patch, content_type=MERGE_PATCH,
                          subresource=subresource, field_validation=None)


def _owned(s: Session, resource: str, namespace: str) -> list[dict[str, Any]]:
    return list(s.client.list(s.client.resolve(resource), namespace).get("items") or [])


def _view(s: Session, name: str) -> list[str]:
    ro = _rollout(s, name)
    ns = ro["metadata"]["namespace"]
    return rollout_view(ro, _owned(s, "replicasets.apps", ns), _owned(s, "pods", ns),
                        _owned(s, "analysisruns.argoproj.io", ns), datetime.now(UTC))


@rollouts_group.group("get")
def get_group() -> None:
    """Show a rollout: `sluice rollouts get rollout NAME [--watch]` (kubectl argo rollouts' tree)."""


@get_group.command("rollout")
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, help="Redraw on every change.")
@global_options
def get_rollout_cmd(name: str, watch: bool) -> None:
    """The rollout's status, steps and weights, then its revisions, ReplicaSets, pods and AnalysisRuns."""
    s = session()
    if not watch:
        for line in _view(s, name):
            click.echo(line)
        return
    last: list[str] = []
    while True:
        lines = _view(s, name)
        if lines != last:
            if sys.stdout.isatty():
                click.echo("\x1b[H\x1b[2J", nl=False)
            click.echo("\n".join(lines) + ("\n" if not sys.stdout.isatty() else ""))
            last = lines
        time.sleep(1.0)


@rollouts_group.group("list")
def list_group() -> None:
    """List rollouts: `sluice rollouts list rollouts [-A]`."""


@list_group.command("rollouts")
@click.option("-A", "--all-namespaces", is_flag=True, help="List rollouts in every namespace.")
@global_options
def list_rollouts_cmd(all_namespaces: bool) -> None:
    s = session()
    items = s.client.list(s.client.resolve(_ROLLOUTS), None if all_namespaces else s.namespace).get("items") or []
    if not items:
        where = "" if all_namespaces else f" in {s.namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    for line in list_lines(items, all_namespaces):
        click.echo(line)


def _act(s: Session, name: str, patches: list[Patch]) -> None:
    for p in patches:
        _patch(s, name, p.body, p.subresource)


@rollouts_group.command("promote")
@click.argument("name")
@click.option("--full", is_flag=True, help="Skip every remaining step and analysis.")
@global_options
def promote_cmd(name: str, full: bool) -> None:
    """Go on from a pause (or skip the current step); `--full` promotes the canary at once."""
    s = session()
    _act(s, name, actions.promote(_rollout(s, name), full))
    click.echo(f"rollout '{name}' {'fully promoted' if full else 'promoted'}")


@rollouts_group.command("abort")
@click.argument("names", nargs=-1, required=True)
@global_options
def abort_cmd(names: tuple[str, ...]) -> None:
    """Send all traffic back to stable and scale the canary down (phase Degraded)."""
    s = session()
    for name in names:
        _act(s, name, actions.abort(_rollout(s, name)))
        click.echo(f"rollout '{name}' aborted")


@rollouts_group.command("retry")
@click.argument("what", type=click.Choice(["rollout", "ro", "rollouts"]))
@click.argument("name")
@global_options
def retry_cmd(what: str, name: str) -> None:
    """Start an aborted rollout again from its first step."""
    s = session()
    _act(s, name, actions.retry(_rollout(s, name)))
    click.echo(f"rollout '{name}' retried")


@rollouts_group.command("pause")
@click.argument("names", nargs=-1, required=True)
@global_options
def pause_cmd(names: tuple[str, ...]) -> None:
    """Pause rollouts where they are (`promote` or `resume` goes on)."""
    s = session()
    for name in names:
        _act(s, name, actions.pause(_rollout(s, name)))
        click.echo(f"rollout '{name}' paused")


@rollouts_group.command("resume")
@click.argument("names", nargs=-1, required=True)
@global_options
def resume_cmd(names: tuple[str, ...]) -> None:
    """Undo a `pause` (a pause step still waits for `promote`)."""
    s = session()
    for name in names:
        _act(s, name, actions.resume(_rollout(s, name)))
        click.echo(f"rollout '{name}' resumed")


@rollouts_group.group("set")
def set_group() -> None:
    """Change a rollout's template: `sluice rollouts set image NAME CONTAINER=IMAGE`."""


@set_group.command("image")
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True)
@global_options
def set_image_cmd(name: str, pairs: tuple[str, ...]) -> None:
    """Start a new revision with CONTAINER's image replaced (`*` = every container)."""
    s = session()
    ro = _rollout(s, name)
    # a workloadRef Rollout takes its template from the Deployment, so that is what changes (as Argo's plugin
    # does since v1.2: set_image.go reads the workloadRef's name as a Deployment whatever its kind)
    ref = (ro.get("spec") or {}).get("workloadRef")
    resource, kind, target = _ROLLOUTS, "rollout", ro
    if isinstance(ref, dict):
        resource, kind = "deployments.apps", "deployment"
        name = str(ref.get("name") or "")
        target = _get(s, resource, name, s.namespace)
    spec = ((target.get("spec") or {}).get("template") or {}).get("spec") or {}
    for pair in pairs:
        container, sep, image = pair.partition("=")
        if not sep or not container or not image:
            raise CliError(f'invalid image update "{pair}": expected CONTAINER=IMAGE')
        found = False
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for c in spec.get(key) or []:
                if container in ("*", c.get("name")):
                    c["image"] = image
                    found = True
        if not found:
            raise CliError(f'unable to find container named "{container}"')
    s.client.rest.json("PUT", s.client.resolve(resource).object_path(s.namespace, name), body=target)
    click.echo(f'{kind} "{name}" image updated')


@rollouts_group.command("undo")
@click.argument("name")
@click.option("--to-revision", type=int, default=0, help="The revision to go back to (default: the previous one).")
@global_options
def undo_cmd(name: str, to_revision: int) -> None:
    """Go back to an earlier revision's pod template (a new rollout to it)."""
    s = session()
    ro = _rollout(s, name)
    uid = ro["metadata"].get("uid")
    history = []
    for rs in _owned(s, "replicasets.apps", ro["metadata"]["namespace"]):
        refs = (rs.get("metadata") or {}).get("ownerReferences") or []
        rev = ((rs.get("metadata") or {}).get("annotations") or {}).get("rollout.argoproj.io/revision")
        if any(r.get("uid") == uid for r in refs) and rev and rev.isdigit():
            history.append((int(rev), rs))
    if not history:
        raise CliError(f'no revision found for rollout "{name}"')
    history.sort(key=lambda x: x[0])
    if to_revision:
        chosen = [rs for rev, rs in history if rev == to_revision]
        if not chosen:
            raise CliError(f"unable to find specified revision {to_revision} in history")
        target, rev_n = chosen[0], to_revision
    else:
        if len(history) < 2:
            raise CliError(f'no revision found for rollout "{name}"')
        rev_n, target = history[-2]
    template = json.loads(json.dumps((target.get("spec") or {}).get("template") or {}))
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("rollouts-pod-template-hash", None)
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    ref = (ro.get("spec") or {}).get("workloadRef")
    if isinstance(ref, dict):
        # the template lives in the referenced workload: Argo's undoWorkloadRef patches it there (and, as Argo,
        # without the "already matches" check, which reads the Rollout's own empty template)
        resource = {"Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps"}.get(str(ref.get("kind")))
        if resource is None:
            raise CliError(f"failed restoring revision {to_revision}: workload of type {ref.get('kind')} is not "
                           f"supported")
        s.client.patch(s.client.resolve(resource), str(ref.get("name") or ""), s.namespace, patch,
                       content_type=JSON_PATCH, field_validation=None)
        click.echo(f"rollout '{name}' undo")
        return
    current = json.loads(json.dumps((ro.get("spec") or {}).get("template") or {}))
    (current.get("metadata") or {}).get("labels", {}).pop("rollouts-pod-template-hash", None)
    if current == template:
        click.echo(f"skipped rollback (current template already matches revision {rev_n})")
        return
    s.client.patch(s.client.resolve(_ROLLOUTS), name, s.namespace, patch, content_type=JSON_PATCH,
                   field_validation=None)
    click.echo(f"rollout '{name}' undo")


@rollouts_group.command("status")
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, default=True, help="Wait until the rollout is Healthy or Degraded.")
@click.option("--timeout", default="0", help="How long to wait (0 = no limit).")
@global_options
def status_cmd(name: str, watch: bool, timeout: str) -> None:
    """Print the rollout's phase and message until it is Healthy (exit 0) or Degraded (exit 1)."""
    s = session()
    limit = parse_duration(timeout)
    deadline = time.monotonic() + limit if limit else None
    last = ""
    while True:
        status = _rollout(s, name).get("status") or {}
        phase, message = str(status.get("phase") or "Progressing"), str(status.get("message") or "")
        line = f"{phase} - {message}" if message else phase
        if line != last:
            click.echo(line)
            last = line
        if phase == "Healthy" or not watch:
            return
        if phase == "Degraded":
            raise CliError(f"The rollout is in a degraded state with message: {message}")
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError("Rollout status watch exceeded timeout")
        time.sleep(1.0)


rollouts_group.add_command(rollouts_controller.controller)

COMMANDS = [rollouts_group]
