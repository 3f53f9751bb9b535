"""Nothing accepted is silently ignored: a field Sluice stores but does not program into Envoy is named by the
real kubectl (the API's `Warning` header) and by `sluice analyze` (SLU0001); Istio's own samples get neither."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import KUBECTL_VERSIONS, TOOLS, Daemon
from tests.integration.cli_helpers import Sluice, with_namespace

NS = "not-programmed"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"
BOOKINFO_NETWORKING = Path(__file__).resolve().parents[1] / "data" / "istio" / "bookinfo-networking"

VS_STAT_PREFIX = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - httpbin
  http:
  - match:
    - uri:
        prefix: /
      statPrefix: httpbin
    route:
    - destination:
        host: httpbin
"""
WARNING = ("Warning: VirtualService spec.http[0].match[0].statPrefix is stored but not applied: Sluice does not "
           "program this field into Envoy yet")


@pytest.fixture(scope="module")
def sl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sluice]:
    env = with_namespace(sluice_daemon.env, sluice_daemon.kubeconfig, NS,
                         tmp_path_factory.mktemp("not-programmed") / "kubeconfig")
    s = Sluice(env)
    s.ok("create", "namespace", NS)
    # the Services the rules name (no pods: nothing here needs traffic)
    services = [d for f in (SAMPLES / "bookinfo.yaml",) for d in yaml.safe_load_all(f.read_text())
                if d and d["kind"] == "Service"]
    services.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin"},
                     "spec": {"selector": {"app": "httpbin"}, "ports": [{"name": "http", "port": 8000}]}})
    s.ok("apply", "-f", "-", input=yaml.safe_dump_all(services))
    yield s


def kubectl(sl: Sluice, *args: str, input: str | None = None, version: str = "1.35") -> tuple[int, str, str]:
    import subprocess

    cp = subprocess.run([str(TOOLS / f"kubectl-{version}"), *args], input=input, env=sl.env, capture_output=True,
                        text=True, timeout=60)
    return cp.returncode, cp.stdout, cp.stderr


@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_kubectl_apply_prints_the_warning_and_succeeds(sl: Sluice, version: str) -> None:
    code, out, err = kubectl(sl, "apply", "-f", "-", input=VS_STAT_PREFIX, version=version)
    assert code == 0, err
    assert out == "virtualservice.networking.istio.io/httpbin created\n"
    assert err.splitlines() == [WARNING]
    # an edit that keeps the field keeps warning; one that drops it does not
    edited = VS_STAT_PREFIX.replace("host: httpbin\n", "host: httpbin\n      weight: 100\n")
    code, out, err = kubectl(sl, "apply", "-f", "-", input=edited, version=version)
    assert (code, err.splitlines()) == (0, [WARNING]), err
    code, out, err = kubectl(sl, "apply", "-f", "-", input=VS_STAT_PREFIX.replace("      statPrefix: httpbin\n", ""),
                             version=version)
    assert (code, out, err) == (0, "virtualservice.networking.istio.io/httpbin configured\n", "")
    assert kubectl(sl, "delete", "virtualservice", "httpbin", version=version)[0] == 0


def test_sluice_analyze_lists_it(sl: Sluice) -> None:
    kubectl(sl, "apply", "-f", "-", input=VS_STAT_PREFIX)
    cp = sl("analyze")
    assert cp.returncode == 0, cp.stderr  # a warning, not an error: istioctl's exit status stays 0
    assert ("Warning [SLU0001] (VirtualService not-programmed/httpbin) Field not programmed: "
            "spec.http[0].match[0].statPrefix is stored but not applied: Sluice does not program this field into "
            "Envoy yet.") in cp.stdout.splitlines()
    # sluice apply prints the server's warning as kubectl does
    cp = sl("apply", "-f", "-", input=VS_STAT_PREFIX.replace("name: httpbin\n", "name: httpbin2\n", 1))
    assert cp.returncode == 0 and WARNING in cp.stderr.splitlines(), cp.stderr
    sl.ok("delete", "virtualservice", "httpbin", "httpbin2")


def test_istio_samples_apply_without_warnings(sl: Sluice) -> None:
    for f in sorted(BOOKINFO_NETWORKING.glob("*.yaml")):
        code, out, err = kubectl(sl, "apply", "-f", str(f))
        assert (code, err) == (0, ""), (f.name, err)
    cp = sl("analyze")
    assert "SLU0001" not in cp.stdout and "Traceback" not in cp.stderr, cp.stdout


MESH_CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
    accessLogFormat: ""
    enableTracing: true
    outboundTrafficPolicy:
      mode: ALLOW_ANY
"""
MESH_WARNING = ("Warning: ConfigMap istio-system/istio data.mesh.enableTracing is stored but not applied: Sluice does "
                "not act on this mesh setting yet")


def test_mesh_config_settings_sluice_does_not_act_on_are_named(sl: Sluice) -> None:
    kubectl(sl, "create", "namespace", "istio-system")  # may exist already (another test's gateway)
    code, out, err = kubectl(sl, "apply", "-f", "-", input=MESH_CONFIGMAP)
    try:
        assert code == 0, err
        assert err.splitlines() == [MESH_WARNING]  # the access-log settings and the mode are applied
        cp = sl("analyze", "-n", "istio-system")
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert ("Warning [SLU0001] (ConfigMap istio-system/istio) Field not programmed: data.mesh.enableTracing is "
                "stored but not applied: Sluice does not act on this mesh setting yet.") in cp.stdout.splitlines()
    finally:
        kubectl(sl, "delete", "configmap", "istio", "-n", "istio-system")


TUNED_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: tuned
  annotations:
    proxy.istio.io/config: |
      concurrency: 2
      holdApplicationUntilProxyStarts: false
      proxyStatsMatcher:
        inclusionPrefixes: ["cluster.outbound"]
spec:
  containers:
  - name: sleep
    image: docker.io/curlimages/curl:8.16.0
    command: ["/bin/sleep", "infinity"]
"""
TUNED_WARNING = ("Warning: {kind} {at}metadata.annotations[proxy.istio.io/config].concurrency is stored but not "
                 "applied: of a pod's ProxyConfig Sluice acts on proxyStatsMatcher and holdApplicationUntilProxyStarts "
                 "only")


def test_proxy_config_fields_sluice_does_not_act_on_are_named(sl: Sluice) -> None:
    code, out, err = kubectl(sl, "apply", "-f", "-", input=TUNED_POD)
    try:
        assert code == 0, err
        # proxyStatsMatcher and holdApplicationUntilProxyStarts are acted on
        assert err.splitlines() == [TUNED_WARNING.format(kind="Pod", at="")]
        cp = sl("analyze")  # (other tests' DestinationRules select no pods here: errors, exit status 79)
        assert "Traceback" not in cp.stderr, cp.stderr
        assert (f"Warning [SLU0001] (Pod {NS}/tuned) Field not programmed: metadata.annotations[proxy.istio.io/"
                "config].concurrency is stored but not applied: of a pod's ProxyConfig Sluice acts on "
                "proxyStatsMatcher and holdApplicationUntilProxyStarts only.") in cp.stdout.splitlines(), cp.stdout
    finally:
        kubectl(sl, "delete", "pod", "tuned", "--wait=false")
    template = yaml.safe_load(TUNED_POD)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tuned"},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "tuned"}},
                           "template": {"metadata": {**template["metadata"], "labels": {"app": "tuned"}},
                                        "spec": template["spec"]}}}
    code, out, err = kubectl(sl, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment))
    assert (code, err.splitlines()) == (0, [TUNED_WARNING.format(kind="Deployment", at="spec.template.")]), err


UNRUN_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guarded
spec:
  replicas: 0
  selector:
    matchLabels: {app: guarded}
  template:
    metadata:
      labels: {app: guarded}
    spec:
      nodeSelector: {disktype: ssd}
      securityContext: {runAsUser: 1000}
      volumes:
      - name: config
        configMap: {name: guarded}
      containers:
      - name: app
        image: docker.io/curlimages/curl:8.16.0
        command: ["/bin/sleep", "infinity"]
        resources:
          limits: {memory: 64Mi}
        volumeMounts:
        - {name: config, mountPath: /etc/guarded}
"""
POD_FIELD_WARNINGS = [
    'Warning: Deployment "guarded": spec.template.spec.volumes, spec.template.spec.containers[0].volumeMounts are '
    "stored but not applied: Sluice runs containers on the host's file system, so volumes are not mounted",
    'Warning: Deployment "guarded": spec.template.spec.securityContext is stored but not applied: containers run as '
    "Sluice's own user and with its privileges",
    'Warning: Deployment "guarded": spec.template.spec.nodeSelector is stored but not applied: Sluice runs every '
    "pod on its one node, without a scheduler",
    'Warning: Deployment "guarded": spec.template.spec.containers[0].resources is stored but not applied: Sluice '
    "neither reserves nor limits CPU and memory",
]


def test_pod_spec_fields_the_runtime_does_not_act_on_are_named(sl: Sluice) -> None:
    code, out, err = kubectl(sl, "apply", "-f", "-", input=UNRUN_DEPLOYMENT)
    try:
        assert code == 0, err
        assert err.splitlines() == POD_FIELD_WARNINGS
        cp = sl("analyze")
        assert "Traceback" not in cp.stderr, cp.stderr
        assert ("Warning [SLU0001] (Deployment not-programmed/guarded) Field not programmed: "
                "spec.template.spec.nodeSelector is stored but not applied: Sluice runs every pod on its one node, "
                "without a scheduler.") in cp.stdout.splitlines(), cp.stdout
        # the same Deployment without them: nothing to say (the defaults the API server fills in are acted on)
        plain = yaml.safe_load(UNRUN_DEPLOYMENT)
        spec = plain["spec"]["template"]["spec"]
        for key in ("nodeSelector", "securityContext", "volumes"):
            del spec[key]
        del spec["containers"][0]["resources"], spec["containers"][0]["volumeMounts"]
        code, out, err = kubectl(sl, "apply", "-f", "-", input=yaml.safe_dump(plain))
        assert (code, out, err) == (0, "deployment.apps/guarded configured\n", ""), err
    finally:
        kubectl(sl, "delete", "deployment", "guarded", "--wait=false")
