"""Istio's own sample manifests (as istio/istio ships them, images included) on a netns-mode daemon: the
images run as built-in programs and answer through the mesh the way Istio's tasks expect.

What is checked is what the docs' commands print: `kubectl exec deploy/sleep -- curl …` against httpbin
(`/status/418`, `/headers`), helloworld's reply, tcp-echo's prefixed echo, and the circuit-breaking task's
`kubectl exec deploy/fortio-deploy -c fortio -- /usr/bin/fortio load …` summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

# samples/httpbin/httpbin.yaml (istio/istio master, 2026-08), license header left out.
HTTPBIN = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: httpbin
---
apiVersion: v1
kind: Service
metadata:
  name: httpbin
  labels:
    app: httpbin
    service: httpbin
spec:
  ports:
  - name: http
    port: 8000
    targetPort: 8080
  selector:
    app: httpbin
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpbin
      version: v1
  template:
    metadata:
      labels:
        app: httpbin
        version: v1
    spec:
      serviceAccountName: httpbin
      containers:
      - image: docker.io/mccutchen/go-httpbin:v2.15.0
        imagePullPolicy: IfNotPresent
        name: httpbin
        ports:
        - containerPort: 8080
"""

# samples/sleep/sleep.yaml
SLEEP = """
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sleep
---
apiVersion: v1
kind: Service
metadata:
  name: sleep
  labels:
    app: sleep
    service: sleep
spec:
  ports:
  - port: 80
    name: http
  selector:
    app: sleep
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sleep
  template:
    metadata:
      labels:
        app: sleep
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: sleep
      containers:
      - name: sleep
        image: docker.io/curlimages/curl:8.16.0
        command: ["/bin/sleep", "infinity"]
        imagePullPolicy: IfNotPresent
        volumeMounts:
        - mountPath: /etc/sleep/tls
          name: secret-volume
      volumes:
      - name: secret-volume
        secret:
          secretName: sleep-secret
          optional: true
"""

# samples/httpbin/sample-client/fortio-deploy.yaml
FORTIO = """
apiVersion: v1
kind: Service
metadata:
  name: fortio
  labels:
    app: fortio
    service: fortio
spec:
  ports:
  - port: 8080
    name: http
  selector:
    app: fortio
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fortio-deploy
spec:
  replicas: 1
  selector:
    matchLabels:
      app: fortio
  template:
    metadata:
      annotations:
        # This annotation causes Envoy to serve cluster.outbound statistics via 15000/stats
        # in addition to the stats normally served by Istio. The Circuit Breaking example task
        # gives an example of inspecting Envoy stats via proxy config.
        proxy.istio.io/config: |-
          proxyStatsMatcher:
            inclusionPrefixes:
            - "cluster.outbound"
            - "cluster_manager"
            - "listener_manager"
            - "server"
            - "cluster.xds-grpc"
      labels:
        app: fortio
    spec:
      containers:
      - name: fortio
        image: docker.io/fortio/fortio:latest_release
        imagePullPolicy: Always
        ports:
        - containerPort: 8080
          name: http-fortio
        - containerPort: 8079
          name: grpc-ping
"""

# samples/helloworld/helloworld.yaml
HELLOWORLD = """
apiVersion: v1
kind: Service
metadata:
  name: helloworld
  labels:
    app: helloworld
    service: helloworld
spec:
  ports:
  - port: 5000
    name: http
  selector:
    app: helloworld
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld-v1
  labels:
    app: helloworld
    version: v1
spec:
  replicas: 1
  selector:
    matchLabels:
      app: helloworld
      version: v1
  template:
    metadata:
      labels:
        app: helloworld
        version: v1
    spec:
      containers:
      - name: helloworld
        image: registry.istio.io/release/examples-helloworld-v1:1.0
        resources:
          requests:
            cpu: "100m"
        imagePullPolicy: IfNotPresent #Always
        ports:
        - containerPort: 5000
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld-v2
  labels:
    app: helloworld
    version: v2
spec:
  replicas: 1
  selector:
    matchLabels:
      app: helloworld
      version: v2
  template:
    metadata:
      labels:
        app: helloworld
        version: v2
    spec:
      containers:
      - name: helloworld
        image: registry.istio.io/release/examples-helloworld-v2:1.0
        resources:
          requests:
            cpu: "100m"
        imagePullPolicy: IfNotPresent #Always
        ports:
        - containerPort: 5000
"""

# samples/tcp-echo/tcp-echo-services.yaml
TCP_ECHO = """
apiVersion: v1
kind: Service
metadata:
  name: tcp-echo
  labels:
    app: tcp-echo
    service: tcp-echo
spec:
  ports:
  - name: tcp
    port: 9000
  - name: tcp-other
    port: 9001
  # Port 9002 is omitted intentionally for testing the pass through filter chain.
  selector:
    app: tcp-echo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tcp-echo-v1
  labels:
    app: tcp-echo
    version: v1
spec:
  replicas: 1
  selector:
    matchLabels:
      app: tcp-echo
      version: v1
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v1
    spec:
      containers:
      - name: tcp-echo
        image: registry.istio.io/release/tcp-echo-server:1.3
        imagePullPolicy: IfNotPresent
        args: [ "9000,9001,9002", "one" ]
        ports:
        - containerPort: 9000
        - containerPort: 9001
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tcp-echo-v2
  labels:
    app: tcp-echo
    version: v2
spec:
  replicas: 1
  selector:
    matchLabels:
      app: tcp-echo
      version: v2
  template:
    metadata:
      labels:
        app: tcp-echo
        version: v2
    spec:
      containers:
      - name: tcp-echo
        image: registry.istio.io/release/tcp-echo-server:1.3
        imagePullPolicy: IfNotPresent
        args: [ "9000,9001,9002", "two" ]
        ports:
        - containerPort: 9000
        - containerPort: 9001
"""

# The mirroring task's httpbin-v1 (kennethreitz/httpbin with gunicorn's access log) and its Service.
HTTPBIN_V1_MIRRORING = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin-v1
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpbin
      version: v1
  template:
    metadata:
      labels:
        app: httpbin
        version: v1
    spec:
      containers:
      - image: docker.io/kennethreitz/httpbin
        imagePullPolicy: IfNotPresent
        name: httpbin
        command: ["gunicorn", "--access-logfile", "-", "-b", "0.0.0.0:80", "httpbin:app"]
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: httpbin
  labels:
    app: httpbin
spec:
  ports:
  - name: http
    port: 8000
    targetPort: 80
  selector:
    app: httpbin
"""

# `echo hi | nc tcp-echo 9000` where there is no nc: the same conversation from Python.
NC = ("import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10); "
      "s.sendall(b'hi\\n'); print(s.makefile('rb').readline().decode(), end='')")


# fortio's gRPC health service, asked as `fortio grpcping -health` would (the ping server's health name "ping").
GRPC_HEALTH = ("import grpc, sys; ch = grpc.insecure_channel(sys.argv[1]); "
               "check = ch.unary_unary('/grpc.health.v1.Health/Check'); "
               "print(check(b'\\x0a\\x04ping', timeout=10).hex())")


class Kube:
    def __init__(self, d: Daemon) -> None:
        self.d = d

    def run(self, *args: str, input: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=self.d.env,
                              capture_output=True, text=True, timeout=timeout)

    def __call__(self, *args: str, input: str | None = None) -> str:
        cp = self.run(*args, input=input)
        if cp.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {cp.stderr}")
        return cp.stdout


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    d = start_daemon(tmp_path_factory.mktemp("istio-samples-home"), network="netns")
    k = Kube(d)
    try:
        for manifest in (SLEEP, HTTPBIN, FORTIO, HELLOWORLD, TCP_ECHO):
            k("apply", "-f", "-", input=manifest)
        k("create", "namespace", "mirror")
        k("apply", "-n", "mirror", "-f", "-", input=HTTPBIN_V1_MIRRORING)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        k("wait", "-n", "mirror", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        yield k
    finally:
        stop_daemon(d)


def _exec_ok(k: Kube, *argv: str) -> str:
    """The output of a command in a pod once it succeeds (routes reach a new sidecar shortly after start)."""
    last: list[subprocess.CompletedProcess[str]] = []

    def attempt() -> bool:
        cp = k.run("exec", *argv)
        last[:] = [cp]
        return cp.returncode == 0

    try:
        wait_for(attempt, timeout=60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"kubectl exec {' '.join(argv)}: {last[0].stdout} {last[0].stderr}") from None
    return last[0].stdout


def test_pods_run_the_sample_images(samples: Kube) -> None:
    pods = json.loads(samples("get", "pods", "-o", "json"))["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"] if c["name"] != "istio-proxy"}
    assert "docker.io/fortio/fortio:latest_release" in images and "registry.istio.io/release/tcp-echo-server:1.3" in images
    for p in pods:
        for cs in p["status"]["containerStatuses"]:
            assert cs["ready"] and "running" in cs["state"], (p["metadata"]["name"], cs)


@pytest.mark.istio_sample("httpbin", "httpbin")
@pytest.mark.istio_sample("sleep", "sleep")
def test_httpbin_through_the_mesh(samples: Kube) -> None:
    code = _exec_ok(samples, "deploy/sleep", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://httpbin:8000/status/418")
    assert code == "418"
    headers = json.loads(_exec_ok(samples, "deploy/sleep", "--", "curl", "-s", "http://httpbin:8000/headers"))
    assert headers["headers"]["Host"] == ["httpbin:8000"]  # go-httpbin's shape: every value in a list
    assert headers["headers"]["User-Agent"][0].startswith("curl/")
    assert "X-Request-Id" in headers["headers"]  # stamped by the sidecars on the way


@pytest.mark.istio_sample("httpbin", "httpbin")
def test_kennethreitz_httpbin_as_the_mirroring_task_runs_it(samples: Kube) -> None:
    out = _exec_ok(samples, "deploy/sleep", "-c", "sleep", "--", "curl", "-sS", "http://httpbin.mirror:8000/headers")
    headers = json.loads(out)["headers"]
    assert headers["Host"] == "httpbin.mirror:8000" and headers["User-Agent"].startswith("curl/")  # plain strings
    assert '",\n' not in out and '", \n' in out  # Flask's pretty print
    wait_for(lambda: '"GET /headers HTTP/1.1" 200 ' in samples("logs", "-n", "mirror", "deploy/httpbin-v1", "-c",
                                                               "httpbin"), timeout=30)
    line = next(x for x in samples("logs", "-n", "mirror", "deploy/httpbin-v1", "-c", "httpbin").splitlines()
                if "GET /headers" in x)
    assert re.fullmatch(r'\S+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /headers HTTP/1.1" 200 \d+ "-" '
                        r'"curl/[^"]+"', line), line


@pytest.mark.istio_sample("helloworld", "helloworld")
def test_helloworld_replies_from_both_versions(samples: Kube) -> None:
    seen: set[str] = set()

    def both() -> bool:
        out = _exec_ok(samples, "deploy/sleep", "--", "curl", "-s", "http://helloworld:5000/hello")
        m = re.fullmatch(r"Hello version: (v[12]), instance: helloworld-\1-[a-z0-9]+-[a-z0-9]+\n", out)
        assert m, out
        seen.add(m.group(1))
        return seen == {"v1", "v2"}

    wait_for(both, timeout=60, interval=0)  # each request picks a version at random: both show up


@pytest.mark.istio_sample("tcp-echo", "tcp-echo")
def test_tcp_echo_prefixes_the_line(samples: Kube) -> None:
    replies = {_exec_ok(samples, "deploy/sleep", "--", "python3", "-c", NC, "tcp-echo", "9000") for _ in range(3)}
    assert replies <= {"one hi\n", "two hi\n"} and replies, replies
    assert _exec_ok(samples, "deploy/sleep", "--", "python3", "-c", NC, "tcp-echo", "9001") in ("one hi\n", "two hi\n")


@pytest.mark.istio_sample("httpbin/sample-client", "fortio (httpbin's sample client)")
def test_fortio_load_as_the_circuit_breaking_task_runs_it(samples: Kube) -> None:
    pod = samples("get", "pods", "-lapp=fortio", "-o", "jsonpath={.items[0].metadata.name}")
    _exec_ok(samples, pod, "-c", "fortio", "--", "/usr/bin/fortio", "curl", "-quiet", "http://httpbin:8000/get")
    # fortio ≥ 1.22 writes the response's headers to stderr and its body to stdout (a terminal shows both).
    cp = samples.run("exec", pod, "-c", "fortio", "--", "/usr/bin/fortio", "curl", "-quiet", "http://httpbin:8000/get")
    assert cp.returncode == 0 and cp.stderr.startswith("HTTP/1.1 200 OK\n"), cp.stderr
    assert json.loads(cp.stdout)["url"] == "http://httpbin:8000/get"
    assert json.loads(cp.stdout)["headers"]["User-Agent"] == ["fortio.org/fortio-1.75.2"]
    cp = samples.run("exec", pod, "-c", "fortio", "--", "/usr/bin/fortio", "load", "-c", "2", "-qps", "0", "-n", "20",
                     "-loglevel", "Warning", "http://httpbin:8000/get")
    assert cp.returncode == 0, cp.stderr
    text = cp.stdout + cp.stderr
    assert "Code 200 : 20 (100.0 %)" in text, text
    assert "Starting at max qps with 2 thread(s)" in text
    assert re.search(r"^# target 50% \S+$", text, re.M) and "# range, mid point, percentile, count" in text
    assert "All done 20 calls (plus 0 warmup)" in text


@pytest.mark.istio_sample("httpbin/sample-client", "fortio (httpbin's sample client)")
def test_fortio_server_echoes_through_the_mesh(samples: Kube) -> None:
    code = _exec_ok(samples, "deploy/sleep", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://fortio:8080/echo?status=418")
    assert code == "418"
    assert _exec_ok(samples, "deploy/sleep", "--", "curl", "-s", "-d", "abc", "http://fortio:8080/") == "abc"
    ip = samples("get", "pods", "-lapp=fortio", "-o", "jsonpath={.items[0].status.podIP}")
    assert _exec_ok(samples, "deploy/sleep", "--", sys.executable, "-c", GRPC_HEALTH, f"{ip}:8079") == "0801\n"
