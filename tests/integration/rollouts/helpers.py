"""Argo's YAML applied with the real kubectl 1.35, objects read back as JSON, the promote/abort/retry patches
`kubectl argo rollouts` sends (status merge patches on the status subresource)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.conftest import TOOLS, Daemon

NS = "rollouts"


def kubectl(d: Daemon, *args: str, input: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={d.home}/kc", "-n", NS, *args],
                        env=d.env, capture_output=True, text=True, input=input, timeout=60)
    if ok:
        assert cp.returncode == 0, (args, cp.stdout, cp.stderr)
    return cp


def get(d: Daemon, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(d, "get", kind, name, "-o", "json").stdout))


def status_patch(d: Daemon, name: str, patch: dict[str, Any]) -> None:
    kubectl(d, "patch", "rollout", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": patch}))


def promote(d: Daemon, name: str) -> None:
    """`kubectl argo rollouts promote NAME` on a rollout at a pause step: the pause condition goes."""
    status_patch(d, name, {"pauseConditions": None})


def vs_weights(d: Daemon, name: str, route: str = "primary") -> dict[str, int]:
    vs = get(d, "virtualservice.networking.istio.io", name)
    (http,) = [h for h in vs["spec"]["http"] if h.get("name") == route]
    return {r["destination"]["subset"]: r.get("weight", 0) for r in http["route"]}


def rollout_status(d: Daemon, name: str) -> dict[str, Any]:
    return dict(get(d, "rollout", name).get("status") or {})


def events(d: Daemon, name: str) -> list[tuple[str, str]]:
    out = json.loads(kubectl(d, "get", "events", "--field-selector", f"involvedObject.name={name}",
                             "-o", "json").stdout)
    return [(e["reason"], e["message"]) for e in out["items"]]


def subset_setup(app: str, port: int = 8000) -> str:
    """A Service (`port`), a DestinationRule with canary/stable subsets and a VirtualService whose route
    `primary` sends everything to stable, as Argo's subset-level Istio example has them."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {app}}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: {port}}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: {app}}}
spec:
  host: {app}
  subsets:
  - name: canary
    labels: {{app: {app}}}
  - name: stable
    labels: {{app: {app}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {app}}}
spec:
  hosts: [{app}]
  http:
  - name: primary
    route:
    - destination: {{host: {app}, subset: stable}}
      weight: 100
    - destination: {{host: {app}, subset: canary}}
      weight: 0
"""


def sleep_template(app: str, version: str = "v1") -> str:
    """A pod template (indented two spaces) of `sleep` processes without a sidecar (nothing here needs one)."""
    return f"""  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
      annotations: {{sidecar.istio.io/inject: "false"}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: [sleep, infinity]
        env: [{{name: VERSION, value: {version}}}]
"""


def subset_canary(app: str, steps: str, extra: str = "") -> str:
    """A Rollout's `strategy` (indented two spaces): the subset-level Istio canary over `subset_setup(app)`'s
    objects, scaled down at once."""
    return f"""  strategy:
    canary:
      abortScaleDownDelaySeconds: 0
      scaleDownDelaySeconds: 0
{extra}      trafficRouting:
        istio:
          virtualService:
            name: {app}
            routes: [primary]
          destinationRule:
            name: {app}
            canarySubsetName: canary
            stableSubsetName: stable
      steps:
{steps}"""


def rollout(app: str, steps: str, version: str = "v1", extra: str = "") -> str:
    """A subset-level canary Rollout of `sleep_template` pods."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {app}}}
spec:
  replicas: 2
{sleep_template(app, version)}{subset_canary(app, steps, extra)}"""


def host_setup(app: str) -> str:
    """Argo's host-level Istio example: a stable and a canary Service, one VirtualService over both."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {app}-stable}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {app}-canary}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {app}-vsvc}}
spec:
  hosts: [{app}.example.com]
  http:
  - name: primary
    route:
    - destination: {{host: {app}-stable}}
      weight: 100
    - destination: {{host: {app}-canary}}
      weight: 0
"""


def host_weights(d: Daemon, app: str) -> dict[str, int]:
    vs = get(d, "virtualservice.networking.istio.io", f"{app}-vsvc")
    (http,) = vs["spec"]["http"]
    return {r["destination"]["host"]: r.get("weight", 0) for r in http["route"]}


def selector_hash(d: Daemon, service: str) -> str | None:
    sel = get(d, "service", service)["spec"]["selector"]
    return sel.get("rollouts-pod-template-hash")


HELLOWORLD_ROUTING = subset_setup("helloworld", 5000)


def helloworld_rollout(version: str, strategy: str) -> str:
    """Istio's helloworld as a one-replica Rollout of `version` (v1, v2) with the given `strategy.canary` body
    (indented six spaces), routed by `HELLOWORLD_ROUTING`'s DestinationRule subsets."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: helloworld}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: helloworld}}
  template:
    metadata:
      labels: {{app: helloworld}}
    spec:
      containers:
      - name: helloworld
        image: registry.istio.io/release/examples-helloworld-{version}:1.0
        ports: [{{containerPort: 5000}}]
  strategy:
    canary:
{strategy}"""
