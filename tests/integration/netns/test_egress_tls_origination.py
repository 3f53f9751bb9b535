"""Istio's "Egress TLS Origination" task (istio.io/latest/docs/tasks/traffic-management/egress/egress-tls-origination/)
on a netns-mode daemon, with the task's manifests and `kubectl exec` commands.

`edition.cnn.com` is `edition.example.org` here: a server in namespace `external` (no sidecar, in no registry)
that answers plain HTTP on 80 with the site's `301` to https and HTTPS on 443 with the page, as the docs show
it. The task's ServiceEntries resolve `edition.cnn.com` on the real DNS (resolution DNS, no endpoints); here
they name the server's pod DNS name as their endpoint (the one edit to the manifests, as in test_egress), and
nothing outside this machine is ever asked. curl trusts the server's certificate with `--cacert` where it speaks
HTTPS itself (the real site has a public certificate), and the server speaks HTTP/1.1 (the docs' `HTTP/2 200`
is the real site's). The mutual-TLS part runs as written with a stand-in for its nginx (Python, requiring a
client certificate signed by the task's CA, answering nginx's welcome page); the Role and RoleBinding the docs
create for the Secret are left out (Sluice serves no RBAC kinds; the sidecar reads the Secret through the
control plane, as Istio's does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TOOLS, start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_egress import MESH_CONFIGMAP
from tests.integration.netns.test_istio_samples import SLEEP

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")
TASK = pytest.mark.istio_task("traffic-management/egress/egress-tls-origination", "Egress TLS Origination")
HOST = "edition.example.org"

# edition.cnn.com's behaviour the task relies on: plain HTTP is redirected to https, HTTPS serves the page.
CNN = r"""
import http.server, ssl, sys, threading
cert, key = sys.argv[1:3]
class Site(http.server.BaseHTTPRequestHandler):
    server_version, sys_version, protocol_version = "site", "", "HTTP/1.1"
    def do_GET(self):
        if not self.server.tls:
            self.send_response(301)
            self.send_header("Location", f"https://{self.headers['Host'].split(':')[0]}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<html><head><title>Politics</title></head></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_HEAD = do_GET
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Site)
plain.tls = False
secure = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Site)
secure.tls = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
secure.socket = ctx.wrap_socket(secure.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
secure.serve_forever()
"""

# The task's nginx (`ssl_verify_client on`, the example.com CA): the welcome page for a client with a certificate.
NGINX = r"""
import http.server, ssl, sys
cert, key, ca = sys.argv[1:4]
PAGE = b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n</html>\n"
class Nginx(http.server.BaseHTTPRequestHandler):
    server_version, sys_version, protocol_version = "nginx", "", "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Nginx)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _deployment(name: str, namespace: str, labels: dict[str, str], argv: list[str], ports: list[int]) -> str:
    import json

    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"selector": {"matchLabels": labels}, "template": {
                           "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                           "spec": {"containers": [{
                               "name": name, "image": "python:3.11", "command": argv,
                               "ports": [{"containerPort": p} for p in ports],
                               "readinessProbe": {"tcpSocket": {"port": ports[-1]}, "periodSeconds": 1}}]}}}})


# "Generate client and server certificates and keys" (egress-gateway-tls-origination), in the task's directory
CERTS = """
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example.com.key -out example.com.crt
openssl req -out my-nginx.mesh-external.svc.cluster.local.csr -newkey rsa:2048 -nodes -keyout my-nginx.mesh-external.svc.cluster.local.key -subj "/CN=my-nginx.mesh-external.svc.cluster.local/O=some organization"
openssl x509 -req -sha256 -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 0 -in my-nginx.mesh-external.svc.cluster.local.csr -out my-nginx.mesh-external.svc.cluster.local.crt
openssl req -out client.example.com.csr -newkey rsa:2048 -nodes -keyout client.example.com.key -subj "/CN=client.example.com/O=client organization"
openssl x509 -req -sha256 -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 -in client.example.com.csr -out client.example.com.crt
"""
# edition.example.org's own certificate, from the same CA
SITE_CERT = f"""
printf 'subjectAltName=DNS:{HOST}\\n' > site.ext
openssl req -out site.csr -newkey rsa:2048 -nodes -keyout site.key -subj "/CN={HOST}"
openssl x509 -req -sha256 -days 1 -CA example.com.crt -CAkey example.com.key -set_serial 2 -in site.csr -out site.crt -extfile site.ext
"""

SERVICE_ENTRY_SIMPLE = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.example.org
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
  endpoints:
  - address: {endpoint}
"""

ORIGINATION = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.example.org
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: 443
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
  endpoints:
  - address: {endpoint}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: edition-cnn-com
spec:
  host: edition.example.org
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: SIMPLE # initiates HTTPS when accessing edition.cnn.com
"""

# "Deploy a mutual TLS server": its Service as the task writes it
NGINX_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  namespace: mesh-external
  labels:
    run: my-nginx
spec:
  ports:
  - port: 443
    protocol: TCP
  selector:
    run: my-nginx
"""

MTLS_ORIGINATION = """
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: originate-mtls-for-nginx
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: 443
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  workloadSelector:
    matchLabels:
      app: sleep
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold client certs, and works only when DR has a workloadSelector
        sni: my-nginx.mesh-external.svc.cluster.local # this is optional
"""


@dataclass
class Task:
    k: Kube
    env: dict[str, str]
    work: Path  # the task's directory: certificates and keys
    endpoint: str  # the external server's pod DNS name

    def sh(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A docs snippet in bash (kubectl is the real kubectl 1.35), in the task's directory, with SOURCE_POD."""
        return subprocess.run(["bash", "-c", "set -e\nexport SOURCE_POD=$(kubectl get pod -l app=sleep -o "
                               "jsonpath={.items..metadata.name})\n" + script], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def until(self, script: str, expect: str, timeout: float = 60) -> str:
        last = [""]

        def attempt() -> bool:
            cp = self.sh(script)
            last[0] = cp.stdout + cp.stderr
            return expect in last[0]

        try:
            wait_for(attempt, timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{script!r} never printed {expect!r}; last: {last[0]!r}") from None
        return last[0]


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Task]:
    home = tmp_path_factory.mktemp("egress-tls-home")
    d = start_daemon(home, network="netns")
    k = Kube(d)
    work = tmp_path_factory.mktemp("egress-tls-task")
    work.chmod(0o755)
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "kubectl").symlink_to(TOOLS / "kubectl-1.35")
    env = {**d.env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    try:
        subprocess.run(["bash", "-c", "set -e\n" + CERTS + SITE_CERT], cwd=work, check=True, capture_output=True,
                       timeout=120)
        for f in work.iterdir():
            f.chmod(0o644)
        k("create", "namespace", "istio-system")
        k("apply", "-f", "-", input=MESH_CONFIGMAP)
        k("create", "namespace", "external")
        k("apply", "-f", "-", input=_deployment("cnn", "external", {"app": "cnn"}, [
            sys.executable, "-c", CNN, str(work / "site.crt"), str(work / "site.key")], [80, 443]))
        k("apply", "-f", "-", input=SLEEP)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        k("wait", "-n", "external", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        ip = k("get", "pod", "-n", "external", "-l", "app=cnn", "-o", "jsonpath={.items..status.podIP}")
        yield Task(k, env, work, f"{ip.replace('.', '-')}.external.pod.cluster.local")
    finally:
        stop_daemon(d)


def _statuses(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.startswith("HTTP/")]


@TASK
def test_tls_origination_for_egress_traffic(task: Task) -> None:
    t = task
    # Configuring access to an external service: HTTP is redirected to HTTPS, which curl -L follows.
    t.k("apply", "-f", "-", input=SERVICE_ENTRY_SIMPLE.format(endpoint=t.endpoint))
    curl = (f'kubectl exec "${{SOURCE_POD}}" -c sleep -- curl -sSL --cacert {t.work}/example.com.crt '
            f'-o /dev/null -D - http://{HOST}/politics')
    out = t.until(curl, "HTTP/1.1 200 OK")
    assert _statuses(out) == ["HTTP/1.1 301 Moved Permanently", "HTTP/1.1 200 OK"], out
    assert f"location: https://{HOST}/politics" in out.lower(), out

    # TLS origination for egress traffic: port 80 goes to 443 over TLS the sidecar opens; one response.
    t.k("apply", "-f", "-", input=ORIGINATION.format(endpoint=t.endpoint))
    t.until(f"{curl} | head -1", "HTTP/1.1 200 OK")  # once the sidecar has the new config
    assert _statuses(t.sh(curl).stdout) == ["HTTP/1.1 200 OK"]
    wait_for(lambda: any(f"outbound|80||{HOST}" in x and '"GET /politics HTTP/1.1" 200' in x for x in t.k(
        "logs", "-l", "app=sleep", "-c", "istio-proxy", "--tail=-1").splitlines()), timeout=30)
    # applications that use HTTPS themselves keep working
    https = curl.replace(f"http://{HOST}", f"https://{HOST}")
    assert _statuses(t.sh(https).stdout) == ["HTTP/1.1 200 OK"]

    # Cleanup the TLS origination configuration
    t.k("delete", "serviceentry", "edition-cnn-com")
    t.k("delete", "destinationrule", "edition-cnn-com")


@TASK
def test_mutual_tls_origination_for_egress_traffic(task: Task) -> None:
    t = task
    w = t.work
    # Deploy a mutual TLS server (the task's nginx, see NGINX)
    t.k("create", "namespace", "mesh-external")
    t.k("apply", "-f", "-", input=NGINX_SERVICE)
    t.k("apply", "-f", "-", input=_deployment("my-nginx", "mesh-external", {"run": "my-nginx"}, [
        sys.executable, "-c", NGINX, str(w / "my-nginx.mesh-external.svc.cluster.local.crt"),
        str(w / "my-nginx.mesh-external.svc.cluster.local.key"), str(w / "example.com.crt")], [443]))
    t.k("wait", "-n", "mesh-external", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
    # Configure the client (sleep pod)
    cp = t.sh("kubectl create secret generic client-credential --from-file=tls.key=client.example.com.key \\\n"
              "  --from-file=tls.crt=client.example.com.crt --from-file=ca.crt=example.com.crt")
    assert cp.returncode == 0, cp.stderr
    # Configure mutual TLS origination for egress traffic at sidecar: the ServiceEntry (in `default`) names
    # the host of the Service in `mesh-external`; sleep's sidecar takes its own namespace's
    t.k("apply", "-f", "-", input=MTLS_ORIGINATION)
    curl = ('kubectl exec "$(kubectl get pod -l app=sleep -o jsonpath={.items..metadata.name})" -c sleep -- '
            'curl -sS http://my-nginx.mesh-external.svc.cluster.local')
    out = t.until(curl, "<title>Welcome to nginx!</title>")
    assert out.startswith("<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>"), out
    # the sleep pod's log has the request (`kubectl logs -l app=sleep -c istio-proxy | grep …`)
    log = t.until("kubectl logs -l app=sleep -c istio-proxy | grep 'my-nginx.mesh-external.svc.cluster.local'",
                  '"GET / HTTP/1.1" 200', timeout=30)  # Envoy flushes its log every 250 ms
    line = next(x for x in log.splitlines() if '"GET / HTTP/1.1" 200' in x)
    assert '"my-nginx.mesh-external.svc.cluster.local"' in line, line
    # without the client's credential the server refuses the sidecar's handshake
    t.k("delete", "secret", "client-credential")
    t.until(curl + " -o /dev/null -w '%{http_code}\\n'; true", "503")
