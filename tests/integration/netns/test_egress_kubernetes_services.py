"""Istio's "Kubernetes Services for Egress Traffic" task on a netns-mode daemon, with the task's commands.

httpbin.org is kennethreitz/httpbin in namespace `external` (no sidecar, in no registry), named by its pod's DNS
name (`a-b-c-d.external.pod.cluster.local`, which the cluster DNS answers); en.wikipedia.org is a TLS server
there with a certificate for `*.wikipedia.example`, which curl trusts with `--cacert`. The namespace
`without-istio` is labelled `istio-injection=disabled`: Istio leaves an unlabelled namespace alone, Sluice
injects every namespace that does not opt out. Then what current Istio does beyond the page: an ExternalName
whose target is in the registry is an alias of it (resolution `Alias`), routed by the target's rules even under
REGISTRY_ONLY, while one whose target is not is only the cluster DNS's CNAME.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TOOLS, start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_egress import EXTERNAL, MESH_CONFIGMAP, SERVICE_ENTRY_DNS, SLEEP, Egress
from tests.integration.netns.test_egress_wildcard import _certificate, tls_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")
TASK = pytest.mark.istio_task("traffic-management/egress/egress-kubernetes-services",
                              "Kubernetes Services for Egress Traffic")

MY_HTTPBIN = """
kind: Service
apiVersion: v1
metadata:
  name: my-httpbin
spec:
  type: ExternalName
  externalName: {name}
  ports:
  - name: http
    protocol: TCP
    port: 80
"""

MY_HTTPBIN_RULE = """
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: my-httpbin
spec:
  host: my-httpbin.default.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
"""

MY_WIKIPEDIA = """
kind: Service
apiVersion: v1
metadata:
  name: my-wikipedia
spec:
  ports:
  - protocol: TCP
    port: 443
    name: tls
"""

MY_WIKIPEDIA_ENDPOINTS = """
kind: Endpoints
apiVersion: v1
metadata:
  name: my-wikipedia
subsets:
  - addresses:
      - ip: {ip}
    ports:
      - port: 443
        name: tls
"""

MY_WIKIPEDIA_RULE = MY_HTTPBIN_RULE.replace("my-httpbin", "my-wikipedia")

# Beyond the task: httpbin in the registry under a name of its own (test_egress's DNS ServiceEntry), an
# ExternalName aliasing it, and a route rule on the registry host that the alias must follow.
ALIAS = MY_HTTPBIN.replace("name: my-httpbin", "name: httpbin-alias").replace("{name}", "httpbin-dns.example.org")

VIRTUAL_SERVICE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-dns
spec:
  hosts:
  - httpbin-dns.example.org
  http:
  - headers:
      request:
        set:
          x-routed-by: httpbin-dns
    route:
    - destination:
        host: httpbin-dns.example.org
"""


@dataclass
class Setup:
    e: Egress  # the sidecar's side: `SOURCE_POD` in `default`
    without_istio: str  # `SOURCE_POD_WITHOUT_ISTIO`
    tls_ip: str
    ca: Path

    def exec_without_istio(self, command: str) -> tuple[int, str]:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "exec", self.without_istio, "-n", "without-istio",
                             "-c", "sleep", "--", "sh", "-c", command], env=self.e.d.env, capture_output=True,
                            text=True, timeout=60)
        return cp.returncode, cp.stdout + cp.stderr

    def proxy_log_has(self, *parts: str) -> bool:
        log = self.e.k("logs", self.e.source_pod, "-c", "istio-proxy")
        return any(all(p in line for p in parts) for line in log.splitlines())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("egress-k8s-home")
    (home / "config.yaml").write_text("scrape_interval: 0.5\n")
    certs = tmp_path_factory.mktemp("egress-k8s-certs")
    os.chmod(certs, 0o755)
    cert_file, key_file = _certificate(certs)
    d = start_daemon(home, network="netns")
    k = Kube(d)
    try:
        for namespace in ("external", "istio-system", "without-istio"):
            k("create", "namespace", namespace)
        k("label", "namespace", "without-istio", "istio-injection=disabled")
        k("apply", "-f", "-", input=MESH_CONFIGMAP)
        k("apply", "-f", "-", input=EXTERNAL)
        k("apply", "-f", "-", input=json.dumps(tls_server(cert_file, key_file)))
        k("apply", "-f", "-", input=SLEEP)
        k("apply", "-f", "-", "-n", "without-istio", input=SLEEP)
        for namespace in ("default", "external", "without-istio"):
            k("wait", "-n", namespace, "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        source = k("get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
        without = k("get", "pod", "-n", "without-istio", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
        http_ip = k("get", "pod", "-n", "external", "-l", "app=httpbin", "-o", "jsonpath={.items..status.podIP}")
        tls_ip = k("get", "pod", "-n", "external", "-l", "app=wikipedia", "-o", "jsonpath={.items..status.podIP}")
        run = json.loads((home / "daemon.json").read_text())
        yield Setup(Egress(d, k, f"http://127.0.0.1:{run['metrics_port']}", source, http_ip), without, tls_ip,
                    cert_file)
    finally:
        stop_daemon(d)


def _headers(out: str) -> dict[str, str]:
    try:
        headers: dict[str, str] = json.loads(out)["headers"]
    except (ValueError, KeyError):
        raise AssertionError(f"not httpbin's /headers answer: {out!r}") from None
    return headers


@TASK
def test_kubernetes_externalname_service_to_access_an_external_service(setup: Setup) -> None:
    s, e = setup, setup.e
    # the pod without Istio has no sidecar: its namespace opted out
    rows = e.k("get", "pod", s.without_istio, "-n", "without-istio").splitlines()
    assert rows[0].split()[:3] == ["NAME", "READY", "STATUS"] and rows[1].split()[1:3] == ["1/1", "Running"], rows

    e.k("apply", "-f", "-", input=MY_HTTPBIN.format(name=e.external_name))
    rows = e.k("get", "svc", "my-httpbin").splitlines()
    assert rows[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], rows
    assert rows[1].split()[:5] == ["my-httpbin", "ExternalName", "<none>", e.external_name, "80/TCP"], rows

    # without Istio: the cluster DNS's CNAME leads straight to the external host
    curl = "curl -sS my-httpbin.default.svc.cluster.local/headers"
    code, out = s.exec_without_istio(curl)
    headers = _headers(out)
    assert code == 0 and headers["Host"] == "my-httpbin.default.svc.cluster.local", out
    assert not [h for h in headers if h.lower().startswith("x-envoy")], headers  # no proxy on the way

    # with Istio: through the sidecar (the DestinationRule is the task's; without mesh mTLS it changes nothing)
    e.k("apply", "-f", "-", input=MY_HTTPBIN_RULE)
    code, out = e.exec_sleep(curl)
    headers = _headers(out)
    assert code == 0 and headers["Host"] == "my-httpbin.default.svc.cluster.local", out
    assert headers.get("X-Envoy-Attempt-Count") == "1", headers
    # the target is in no registry, so the alias has no route of its own: Istio passes the request through
    wait_for(lambda: s.proxy_log_has('"my-httpbin.default.svc.cluster.local"', "PassthroughCluster"), timeout=30)

    e.k("delete", "destinationrule", "my-httpbin")
    e.k("delete", "service", "my-httpbin")


@TASK
def test_use_a_kubernetes_service_with_endpoints_to_access_an_external_service(setup: Setup) -> None:
    s, e = setup, setup.e
    e.k("apply", "-f", "-", input=MY_WIKIPEDIA)
    e.k("apply", "-f", "-", input=MY_WIKIPEDIA_ENDPOINTS.format(ip=s.tls_ip))
    rows = e.k("get", "svc", "my-wikipedia").splitlines()
    vip = e.k("get", "service", "my-wikipedia", "-o", "jsonpath={.spec.clusterIP}")
    assert rows[1].split()[:5] == ["my-wikipedia", "ClusterIP", vip, "<none>", "443/TCP"], rows

    title = "<title>Wikipedia, the free encyclopedia</title>"
    page = (f"curl -sS --cacert {s.ca} --resolve en.wikipedia.example:443:{vip} "
            f'https://en.wikipedia.example/wiki/Main_Page | grep -o "<title>.*</title>"')
    # without Istio: the ClusterIP is DNATed to the hand-written endpoint
    code, out = s.exec_without_istio(page)
    assert (code, out.strip()) == (0, title), out

    e.k("apply", "-f", "-", input=MY_WIKIPEDIA_RULE)
    assert e.eventually(page, title).strip() == title
    code, out = e.exec_sleep(f"curl -sS -v --cacert {s.ca} --resolve en.wikipedia.example:443:{vip} "
                             "https://en.wikipedia.example/wiki/Main_Page -o /dev/null")
    assert code == 0 and f"Connected to en.wikipedia.example ({vip}) port 443" in out, out
    # the sidecar sent it to the Service's cluster, whose one endpoint is the one written by hand
    cluster = "outbound|443||my-wikipedia.default.svc.cluster.local"
    wait_for(lambda: s.proxy_log_has(cluster, f"{s.tls_ip}:443"), timeout=30)

    e.k("delete", "destinationrule", "my-wikipedia")
    e.k("delete", "endpoints", "my-wikipedia")
    e.k("delete", "service", "my-wikipedia")


def test_an_external_name_of_a_registry_host_is_routed_as_that_host(setup: Setup) -> None:
    s, e = setup, setup.e
    e.k("apply", "-f", "-", input=SERVICE_ENTRY_DNS.format(name=e.external_name))
    e.k("apply", "-f", "-", input=ALIAS)
    e.k("apply", "-f", "-", input=VIRTUAL_SERVICE)
    e.k("apply", "-f", "-", input=MY_HTTPBIN.format(name=e.external_name))
    try:
        # the alias answers on the registry host's virtual host: its rule applies, its cluster carries it
        out = e.eventually("curl -sS httpbin-alias/headers", '"X-Routed-By": "httpbin-dns"')
        assert _headers(out)["Host"] == "httpbin-alias", out
        wait_for(lambda: s.proxy_log_has('"httpbin-alias"', "outbound|80||httpbin-dns.example.org"), timeout=30)
        # under REGISTRY_ONLY the alias of a registry host still goes out; an alias of an unknown name does not
        e.set_mode("ALLOW_ANY", "REGISTRY_ONLY")
        e.eventually('curl -sS -o /dev/null -w "%{http_code}\\n" my-httpbin.default.svc.cluster.local/headers',
                     "502")
        out = e.exec_sleep("curl -sS httpbin-alias.default.svc.cluster.local/headers")[1]
        assert _headers(out)["X-Routed-By"] == "httpbin-dns", out
    finally:
        if "REGISTRY_ONLY" in e.k("get", "configmap", "istio", "-n", "istio-system", "-o", "yaml"):
            e.set_mode("REGISTRY_ONLY", "ALLOW_ANY")
        for kind, name in (("service", "my-httpbin"), ("virtualservice", "httpbin-dns"),
                           ("service", "httpbin-alias"), ("serviceentry", "httpbin-dns")):
            e.k("delete", kind, name, "--ignore-not-found")
