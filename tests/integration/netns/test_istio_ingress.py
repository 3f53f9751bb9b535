"""Istio's ingress tasks as the docs write them, on a netns-mode daemon: the ingress gateway as Istio installs it
(a LoadBalancer Service whose address and ports the docs' jsonpath recipes read), "Ingress Gateways" with httpbin
and "Secure Gateways" (SIMPLE, credential rotation, MUTUAL) with certificates made by `openssl` as the task makes
them, plus an HTTP server's `httpsRedirect`.

The docs' shell commands run verbatim in bash, with the real kubectl 1.35 as `kubectl` and the host's curl.
Istio's ports (80, 443, 31400, ...) are moved to free ones by the daemon's `gateway_ports`, as a user without them
would: the recipes then read the moved ports from the Service, which is what makes them work verbatim.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sluice.samples import sample_path
from tests.conftest import TOOLS, Daemon, move_gateway_ports, start_daemon, stop_daemon, wait_for
from tests.integration.netns.test_istio_samples import HELLOWORLD, HTTPBIN

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

# "Determining the ingress IP and ports" (ingress-control), for a load balancer, plus the TCP port of the
# tcp-traffic-shifting task.
RECIPE = """
export INGRESS_HOST=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
export INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="http2")].port}')
export SECURE_INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="https")].port}')
export TCP_INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="tcp")].port}')
"""


@dataclass
class Ingress:
    daemon: Daemon
    ports: dict[int, int]  # Istio's port → where this daemon serves it
    work: Path  # the task's working directory (certificates)
    env: dict[str, str]

    def sh(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A docs snippet in bash, after the recipe, in the task's directory."""
        return subprocess.run(["bash", "-c", "set -e\n" + RECIPE + script], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, script: str) -> str:
        cp = self.sh(script)
        assert cp.returncode == 0, f"{script}\n{cp.stdout}\n{cp.stderr}"
        return cp.stdout

    def until(self, script: str, expect: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `script` until `expect` is in its output (a change reaches the gateway a moment after apply)."""
        last: list[subprocess.CompletedProcess[str]] = []

        def attempt() -> bool:
            last[:] = [self.sh(script)]
            return expect in last[0].stdout + last[0].stderr

        try:
            wait_for(attempt, timeout=timeout, interval=0.3)
        except AssertionError:
            raise AssertionError(f"{script}\nwanted {expect!r}:\n{last[0].stdout}\n{last[0].stderr}") from None
        return last[0]


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingress]:
    home = tmp_path_factory.mktemp("istio-ingress-home")
    ports = move_gateway_ports(home)
    d = start_daemon(home, network="netns")
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "kubectl").symlink_to(TOOLS / "kubectl-1.35")
    env = {**d.env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    ing = Ingress(d, ports, tmp_path_factory.mktemp("task"), env)
    try:
        ing.ok(f"kubectl apply -f {sample_path('ingressgateway.yaml')}")
        subprocess.run(["bash", "-c", "kubectl apply -f -"], input=HTTPBIN, env=env, check=True, capture_output=True,
                       text=True)
        ing.ok("kubectl wait --for=condition=Available deployment --all --timeout=180s\n"
               "kubectl -n istio-system wait --for=condition=Available deployment --all --timeout=180s")
        yield ing
    finally:
        stop_daemon(d)


def test_the_recipe_reads_the_load_balancer(ingress: Ingress) -> None:
    out = ingress.ok('echo "$INGRESS_HOST $INGRESS_PORT $SECURE_INGRESS_PORT $TCP_INGRESS_PORT"').split()
    assert out == ["127.0.0.1", str(ingress.ports[80]), str(ingress.ports[443]), str(ingress.ports[31400])]
    lines = ingress.ok("kubectl get svc istio-ingressgateway -n istio-system").splitlines()
    assert lines[0].split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    row = lines[1].split()
    assert row[1] == "LoadBalancer" and row[3] == "127.0.0.1"
    assert row[4] == ",".join(f"{ingress.ports[p]}/TCP" for p in (15021, 80, 443, 31400, 15443))
    # Applying Istio's manifest again (port 80 as written) leaves the moved ports as they are.
    ingress.ok(f"kubectl apply -f {sample_path('ingressgateway.yaml')}")
    again = ingress.ok('echo "$INGRESS_PORT $SECURE_INGRESS_PORT"').split()
    assert again == [str(ingress.ports[80]), str(ingress.ports[443])]
    targets = ingress.ok("kubectl -n istio-system get service istio-ingressgateway "
                         "-o jsonpath='{.spec.ports[*].targetPort}'").split()
    assert targets == ["15021", "8080", "8443", "31400", "15443"]


GATEWAY_HTTP = """
kubectl apply -f - <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  # The selector matches the ingress gateway pod labels.
  # If you installed Istio using Helm following the standard documentation, this would be "istio=ingress"
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
EOF
kubectl apply -f - <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - httpbin-gateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
EOF
"""


@pytest.mark.istio_task("traffic-management/ingress/ingress-control", "Ingress Gateways")
def test_ingress_gateways_task(ingress: Ingress) -> None:
    ingress.ok(GATEWAY_HTTP)
    try:
        cp = ingress.until('curl -s -I -HHost:httpbin.example.com "http://$INGRESS_HOST:$INGRESS_PORT/status/200"',
                           "200 OK")
        head = cp.stdout.lower()
        assert head.startswith("http/1.1 200 ok") and "server: istio-envoy" in head, cp.stdout
        cp = ingress.sh('curl -s -I -HHost:httpbin.example.com "http://$INGRESS_HOST:$INGRESS_PORT/headers"')
        assert cp.stdout.lower().startswith("http/1.1 404 not found") and "server: istio-envoy" in cp.stdout.lower()
        # from inside the mesh, as on Kubernetes: a pod reaches the gateway through its Service (its sidecar
        # sends it to the gateway pod's 8080); $INGRESS_HOST would be the pod's own loopback there
        from_pod = ('kubectl exec deploy/httpbin -- curl -s -o /dev/null -w "%{{http_code}}" '
                    '-HHost:httpbin.example.com "http://istio-ingressgateway.istio-system:$INGRESS_PORT/{}"')
        ingress.until(from_pod.format("status/200"), "200")
        assert ingress.ok(from_pod.format("headers")) == "404"  # the gateway's routes, not httpbin's own
    finally:
        ingress.ok("kubectl delete gateway httpbin-gateway\nkubectl delete virtualservice httpbin")


CERTS_1 = """
mkdir example_certs1
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example_certs1/example.com.key -out example_certs1/example.com.crt
openssl req -out example_certs1/httpbin.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/httpbin.example.com.key -subj "/CN=httpbin.example.com/O=httpbin organization"
openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 0 -in example_certs1/httpbin.example.com.csr -out example_certs1/httpbin.example.com.crt
mkdir example_certs2
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example_certs2/example.com.key -out example_certs2/example.com.crt
openssl req -out example_certs2/httpbin.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs2/httpbin.example.com.key -subj "/CN=httpbin.example.com/O=httpbin organization"
openssl x509 -req -sha256 -days 365 -CA example_certs2/example.com.crt -CAkey example_certs2/example.com.key -set_serial 0 -in example_certs2/httpbin.example.com.csr -out example_certs2/httpbin.example.com.crt
"""

SIMPLE = """
kubectl create -n istio-system secret tls httpbin-credential \\
  --key=example_certs1/httpbin.example.com.key \\
  --cert=example_certs1/httpbin.example.com.crt
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: httpbin-credential # must be the same as secret
    hosts:
    - httpbin.example.com
EOF
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
EOF
"""

CURL = ('curl -v -HHost:httpbin.example.com --resolve "httpbin.example.com:$SECURE_INGRESS_PORT:$INGRESS_HOST" '
        '--cacert {ca} {extra}"https://httpbin.example.com:$SECURE_INGRESS_PORT/status/418"')

ROTATE = """
kubectl -n istio-system delete secret httpbin-credential
kubectl create -n istio-system secret tls httpbin-credential \\
  --key=example_certs2/httpbin.example.com.key \\
  --cert=example_certs2/httpbin.example.com.crt
"""

MULTIPLE_HOSTS = """
kubectl -n istio-system delete secret httpbin-credential
kubectl create -n istio-system secret tls httpbin-credential \\
  --key=example_certs1/httpbin.example.com.key \\
  --cert=example_certs1/httpbin.example.com.crt
kubectl apply -f samples/helloworld/helloworld.yaml -l service=helloworld
kubectl apply -f samples/helloworld/helloworld.yaml -l version=v1
openssl req -out example_certs1/helloworld.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/helloworld.example.com.key -subj "/CN=helloworld.example.com/O=helloworld organization"
openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 1 -in example_certs1/helloworld.example.com.csr -out example_certs1/helloworld.example.com.crt
kubectl create -n istio-system secret tls helloworld-credential \\
  --key=example_certs1/helloworld.example.com.key \\
  --cert=example_certs1/helloworld.example.com.crt
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https-httpbin
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: httpbin-credential
    hosts:
    - httpbin.example.com
  - port:
      number: 443
      name: https-helloworld
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: helloworld-credential
    hosts:
    - helloworld.example.com
EOF
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts:
  - helloworld.example.com
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        exact: /hello
    route:
    - destination:
        host: helloworld
        port:
          number: 5000
EOF
"""

HELLO = ('curl -v -HHost:helloworld.example.com --resolve "helloworld.example.com:$SECURE_INGRESS_PORT:$INGRESS_HOST" '
         '--cacert example_certs1/example.com.crt "https://helloworld.example.com:$SECURE_INGRESS_PORT/hello"')

MUTUAL = """
kubectl -n istio-system delete secret httpbin-credential
kubectl create -n istio-system secret generic httpbin-credential \\
  --from-file=tls.key=example_certs1/httpbin.example.com.key \\
  --from-file=tls.crt=example_certs1/httpbin.example.com.crt \\
  --from-file=ca.crt=example_certs1/example.com.crt
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: MUTUAL
      credentialName: httpbin-credential # must be the same as secret
    hosts:
    - httpbin.example.com
EOF
"""

CLIENT_CERT = """
openssl req -out example_certs1/client.example.com.csr -newkey rsa:2048 -nodes -keyout example_certs1/client.example.com.key -subj "/CN=client.example.com/O=client organization"
openssl x509 -req -sha256 -days 365 -CA example_certs1/example.com.crt -CAkey example_certs1/example.com.key -set_serial 1 -in example_certs1/client.example.com.csr -out example_certs1/client.example.com.crt
"""


def _received(cp: subprocess.CompletedProcess[str], line: str) -> bool:
    """curl -v printed `< line` (a response line). Not anchored to a line's start: curl's progress meter,
    which the task's command leaves on, can end on the same line just before it."""
    return re.search(r"(?:^|[\s\d])< " + re.escape(line), cp.stderr, re.M) is not None


def _teapot(cp: subprocess.CompletedProcess[str]) -> bool:
    return cp.returncode == 0 and _received(cp, "HTTP/2 418")


@pytest.mark.istio_task("traffic-management/ingress/secure-ingress", "Secure Gateways")
def test_secure_gateways_task(ingress: Ingress) -> None:
    ingress.ok(CERTS_1)
    ingress.ok(SIMPLE)
    try:
        # SIMPLE: the teapot over HTTP/2, the gateway's certificate checked against the task's CA
        cp = ingress.until(CURL.format(ca="example_certs1/example.com.crt", extra=""), "HTTP/2 418")
        assert _teapot(cp), cp.stderr
        assert "subject: CN=httpbin.example.com; O=httpbin organization" in cp.stderr
        assert _received(cp, "server: istio-envoy"), cp.stderr

        # A new Secret reaches the gateway: the new CA works, the old one no longer does.
        ingress.ok(ROTATE)
        cp = ingress.until(CURL.format(ca="example_certs2/example.com.crt", extra=""), "HTTP/2 418")
        assert _teapot(cp), cp.stderr
        cp = ingress.sh(CURL.format(ca="example_certs1/example.com.crt", extra=""))
        assert cp.returncode != 0 and "HTTP/2 418" not in cp.stderr

        # Two hosts on port 443, each with its own certificate, chosen by SNI.
        (ingress.work / "samples" / "helloworld").mkdir(parents=True)
        (ingress.work / "samples" / "helloworld" / "helloworld.yaml").write_text(HELLOWORLD)
        ingress.ok(MULTIPLE_HOSTS)
        cp = ingress.until(HELLO, "HTTP/2 200", timeout=90)
        assert cp.returncode == 0 and "subject: CN=helloworld.example.com" in cp.stderr, cp.stderr
        assert "Hello version: v1" in cp.stdout
        cp = ingress.until(CURL.format(ca="example_certs1/example.com.crt", extra=""), "HTTP/2 418")
        assert _teapot(cp) and "subject: CN=httpbin.example.com" in cp.stderr, cp.stderr

        # MUTUAL: a client without a certificate is refused, one with a certificate from the CA gets the teapot.
        ingress.ok(MUTUAL)
        no_cert = CURL.format(ca="example_certs1/example.com.crt", extra="")
        cp = ingress.until(no_cert, "certificate required")
        assert cp.returncode != 0 and "HTTP/2 418" not in cp.stderr, cp.stderr
        ingress.ok(CLIENT_CERT)
        cp = ingress.until(CURL.format(ca="example_certs1/example.com.crt", extra=(
            "--cert example_certs1/client.example.com.crt --key example_certs1/client.example.com.key ")),
            "HTTP/2 418")
        assert _teapot(cp), cp.stderr
        _no_key_in_logs(ingress, ingress.work / "example_certs1" / "httpbin.example.com.key")
    finally:
        ingress.sh("kubectl delete gateway mygateway\nkubectl delete virtualservice httpbin\n"
                   "kubectl delete --ignore-not-found=true -n istio-system secret httpbin-credential "
                   "helloworld-credential\nkubectl delete --ignore-not-found=true virtualservice helloworld")


def _no_key_in_logs(ingress: Ingress, key: Path) -> None:
    """No log the daemon, its pods or their Envoys write holds any line of the private key (base64 or not)."""
    lines = [line for line in key.read_text().splitlines() if "PRIVATE KEY" not in line]
    assert len(lines) > 10
    stored = base64.b64encode(key.read_bytes()).decode()  # as the Secret's data holds it
    lines += [stored[i:i + 48] for i in range(0, len(stored) - 48, 400)]
    logs = [p for p in ingress.daemon.home.rglob("*") if p.is_file() and ".log" in p.name]
    assert logs
    for path in logs:
        text = path.read_bytes().decode(errors="replace")
        assert not any(line in text for line in lines), path


REDIRECT = """
kubectl create -n istio-system secret tls redirect-credential \\
  --key=redirect_certs/httpbin.example.com.key --cert=redirect_certs/httpbin.example.com.crt
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: redirect-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - httpbin.example.com
    tls:
      httpsRedirect: true
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: redirect-credential
    hosts:
    - httpbin.example.com
EOF
cat <<EOF | kubectl apply -f -
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-redirect
spec:
  hosts:
  - httpbin.example.com
  gateways:
  - redirect-gateway
  http:
  - route:
    - destination:
        port:
          number: 8000
        host: httpbin
EOF
"""


def test_https_redirect_sends_plain_http_to_https(ingress: Ingress) -> None:
    ingress.ok("mkdir redirect_certs\n" + "\n".join(
        line.replace("example_certs1", "redirect_certs") for line in CERTS_1.splitlines()[2:5]))
    ingress.ok(REDIRECT)
    try:
        cp = ingress.until('curl -s -I -HHost:httpbin.example.com "http://$INGRESS_HOST:$INGRESS_PORT/status/200"',
                           "301")
        head = cp.stdout.lower()
        assert head.startswith("http/1.1 301 moved permanently"), cp.stdout
        assert "location: https://httpbin.example.com/status/200" in head and "server: istio-envoy" in head
        cp = ingress.until(CURL.format(ca="redirect_certs/example.com.crt", extra=""), "HTTP/2 418")
        assert _teapot(cp), cp.stderr
    finally:
        ingress.sh("kubectl delete gateway redirect-gateway\nkubectl delete virtualservice httpbin-redirect\n"
                   "kubectl -n istio-system delete secret redirect-credential")
