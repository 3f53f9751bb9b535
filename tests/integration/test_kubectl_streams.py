"""`kubectl exec`, `attach` and `port-forward` (and `sluice exec` / `port-forward`) against a real daemon.

Everything runs the real kubectl and checks what a user sees: output, exit codes, messages, HTTP answers
through a forwarded port. Three clients: kubectl 1.35 over WebSocket (`v5.channel.k8s.io`, the SPDY/3.1
port-forward tunnel), kubectl 1.35 with its WebSocket switches off (a SPDY/3.1 upgrade, offering v5 first)
and kubectl 1.20 (SPDY/3.1 only, v4).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TOOLS, Daemon, Kubectl, free_port, wait_for
from tests.integration.cli_helpers import ROOT, Sluice

NS = "streams"

# An app that prints a tick every 0.2 s (stdout) and a warning (stderr) until the file $1 exists, then "done".
TALKER = ("import os, sys, time\n"
          "i = 0\n"
          "while not os.path.exists(sys.argv[1]):\n"
          "    i += 1\n"
          "    print('tick', i, flush=True)\n"
          "    print('warn', i, file=sys.stderr, flush=True)\n"
          "    time.sleep(0.2)\n"
          "print('done', flush=True)\n")

NO_SIDECAR = {"sidecar.istio.io/inject": "false"}
SPDY_ENV = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
CLIENTS = ("1.35", "1.35-spdy", "1.20")


@dataclass
class Client(Kubectl):
    """A kubectl with extra environment (the WebSocket switches)."""

    extra: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return super().__call__(*args, input=input, env={**self.extra, **(env or {})}, check=check, timeout=timeout)

    @property
    def environ(self) -> dict[str, str]:
        return {**self.daemon.env, **self.extra}

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), f"--cache-dir={self.cache}", *args]


def _server(name: str, port: int) -> dict[str, object]:
    # $SLUICE_BIND: the pod's address in loopback mode (0.0.0.0 in netns mode). The shell expands it: Kubernetes'
    # $(VAR) in `command` refers to the container's own `env` only.
    return {"name": name, "image": "local/python",
            "command": ["sh", "-c", f'exec python3 -m http.server {port} --bind "$SLUICE_BIND"']}


def _manifests(workdir: Path) -> list[dict[str, object]]:
    pod = {"apiVersion": "v1", "kind": "Pod"}
    return [
        {**pod, "metadata": {"name": "shell", "annotations": NO_SIDECAR},
         "spec": {"containers": [{"name": "main", "image": "local/sh", "command": ["sleep", "3600"],
                                  "workingDir": str(workdir), "env": [{"name": "GREETING", "value": "hello"}]}]}},
        {**pod, "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": NO_SIDECAR},
         "spec": {"containers": [_server("one", 8000), _server("two", 8001)]}},
        {**pod, "metadata": {"name": "reader", "annotations": NO_SIDECAR},
         "spec": {"containers": [{"name": "r", "image": "local/sh", "command": ["sleep", "3600"], "stdin": True}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8000}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleeper"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleeper"}},
                  "template": {"metadata": {"labels": {"app": "sleeper"}},
                               "spec": {"terminationGracePeriodSeconds": 0,
                                        "containers": [{"name": "sleeper", "image": "local/sh",
                                                        "command": ["sleep", "3600"]}]}}}},
    ]


def _all_running(k: Kubectl) -> bool:
    cp = k("get", "pods", "-n", NS, "-o", "json")
    items = json.loads(cp.stdout or "{}").get("items") or []
    if len(items) < 4:
        return False
    return all(p.get("status", {}).get("phase") == "Running"
               and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}]) for p in items)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streams-work")


@pytest.fixture(scope="module")
def k(sluice_daemon: Daemon, workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    kubectl = Kubectl("1.35", TOOLS / "kubectl-1.35", sluice_daemon, tmp_path_factory.mktemp("kcache-streams"))
    kubectl("create", "namespace", NS, check=True)
    docs = {"apiVersion": "v1", "kind": "List", "items": _manifests(workdir)}
    kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(docs), check=True)
    wait_for(lambda: _all_running(kubectl), timeout=60, interval=0.3)
    yield kubectl
    # Leave nothing terminating behind for the modules that run next on the same daemon.
    kubectl("delete", "namespace", NS, "--timeout=90s", timeout=120)
    wait_for(lambda: "NotFound" in kubectl("get", "namespace", NS).stderr
             and not kubectl("get", "pods", "-n", NS, "-o", "name").stdout.strip(), timeout=90, interval=0.3)


@pytest.fixture(params=CLIENTS)
def kc(request: pytest.FixtureRequest, k: Kubectl) -> Client:
    version = request.param.split("-")[0]
    return Client(version, TOOLS / f"kubectl-{version}", k.daemon, k.cache.parent / f"kcache-streams-{version}",
                  SPDY_ENV if request.param.endswith("-spdy") else {})


# ------------------------------------------------------------------------------------------------ exec
def test_exec_stdin_piped(kc: Client) -> None:
    cp = kc("exec", "-i", "-n", NS, "shell", "--", "cat", input="hi\nthere\n")
    assert (cp.returncode, cp.stdout) == (0, "hi\nthere\n"), cp.stderr


def test_exec_exit_code_stderr_env_and_workdir(kc: Client, workdir: Path) -> None:
    cp = kc("exec", "-n", NS, "shell", "--", "sh", "-c", 'echo out; echo err >&2; echo "$GREETING $POD_NAME"; pwd; exit 3')
    assert cp.returncode == 3
    assert cp.stdout == f"out\nhello shell\n{workdir}\n"
    assert cp.stderr == "err\ncommand terminated with exit code 3\n"


def test_exec_errors_read_like_kube_apiserver(kc: Client) -> None:
    cp = kc("exec", "-n", NS, "shell", "--", "no-such-program")
    assert cp.returncode == 1
    assert cp.stderr.startswith("error: Internal error occurred: error executing command in container: "
                                "failed to exec in container: failed to start exec ")
    assert cp.stderr.rstrip().endswith('unable to start container process: exec: "no-such-program": '
                                       "executable file not found in $PATH: unknown")
    cp = kc("exec", "-n", NS, "shell", "-c", "nope", "--", "true")
    assert (cp.returncode, cp.stderr.strip()) == (1, "Error from server (BadRequest): container nope is not valid "
                                                     "for pod shell")
    cp = kc("exec", "-n", NS, "ghost", "--", "true")
    assert (cp.returncode, cp.stderr.strip()) == (1, 'Error from server (NotFound): pods "ghost" not found')


def test_kubectl_cp_both_ways(k: Kubectl, workdir: Path, tmp_path: Path) -> None:
    # `kubectl cp` is exec + tar, with stdin's end signalled on the v5 close channel.
    src = tmp_path / "up.txt"
    src.write_text("payload\n" * 1000)
    k("cp", "-n", NS, str(src), f"shell:{workdir}/copied.txt", check=True)
    assert (workdir / "copied.txt").read_text() == src.read_text()
    back = tmp_path / "back.txt"
    k("cp", "-n", NS, f"shell:{workdir}/copied.txt", str(back), check=True)
    assert back.read_text() == src.read_text()


def test_exec_into_a_container_that_is_not_running(k: Kubectl) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unpulled", "annotations": NO_SIDECAR},
           "spec": {"containers": [{"name": "main", "image": "registry.example/nothing:1"}]}}
    k("apply", "-n", NS, "-f", "-", input=json.dumps(pod), check=True)

    def waiting_reason() -> str:
        return k("get", "pod", "-n", NS, "unpulled", "-o",
                 "jsonpath={.status.containerStatuses[0].state.waiting.reason}").stdout

    wait_for(lambda: waiting_reason() == "ErrImagePull")
    cp = k("exec", "-n", NS, "unpulled", "--", "true")
    assert (cp.returncode, cp.stderr.strip()) == (
        1, 'Error from server (BadRequest): unable to upgrade connection: container not found ("main")')
    k("delete", "pod", "-n", NS, "unpulled", "--wait=false")


def _read_until(fd: int, token: bytes, seen: bytearray, timeout: float = 20.0) -> bool:
    """Read into `seen` until `token` is in it (an empty token: until anything new arrives)."""
    if token and token in seen:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return token in seen
            if not data:
                return token in seen
            seen += data
            if token in seen:  # always true for b""
                return True
    return False


def _drive_tty(argv: list[str], env: dict[str, str]) -> None:
    """Run `argv` (an exec of `sh -i` with -it) on a terminal: size, resize, exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the client on a terminal of 33 rows × 111 columns
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        os.execve(argv[0], argv, env)
    seen = bytearray()
    try:
        _read_until(fd, b"", seen, timeout=60)  # the shell's prompt: the session is up (typing earlier races raw mode)

        def shows(command: bytes, token: bytes) -> None:
            # Sizes travel on their own channel, asynchronously to what is typed: ask until the answer is there.
            deadline = time.monotonic() + 60
            while token not in seen and time.monotonic() < deadline:
                os.write(fd, command)
                _read_until(fd, token, seen, timeout=1.0)
            assert token in seen, bytes(seen)

        shows(b"stty size; tty\r", b"33 111")
        assert _read_until(fd, b"/dev/pts/", seen), bytes(seen)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        shows(b"stty size\r", b"40 120")
        os.write(fd, b"exit 5\r")
        _read_until(fd, b"command terminated with exit code 5", seen, timeout=30.0)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done[0] == pid, f"the client did not exit: {bytes(seen)!r}"
        assert os.waitstatus_to_exitcode(done[1]) == 5, bytes(seen)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_exec_tty_size_resize_and_exit(kc: Client) -> None:
    _drive_tty(kc.argv("exec", "-it", "-n", NS, "shell", "--", "sh"), kc.environ)


def test_exec_deploy_svc_default_container_and_sidecar(k: Kubectl) -> None:
    cp = k("exec", "-n", NS, "deploy/sleeper", "--", "sh", "-c", 'echo "$HOSTNAME"; printenv SLUICE_BIND', check=True)
    host, bind = cp.stdout.split()
    assert host.startswith("sleeper-") and bind
    assert "Defaulted container" not in cp.stderr  # the injector's default-container annotation picks the app
    # The sidecar's own environment (no SLUICE_BIND), and its admin: on the pod's localhost:15000 in netns mode,
    # on a Unix socket only the daemon's user opens in loopback mode ($SLUICE_ADMIN_SOCKET).
    cp = k("exec", "-n", NS, "deploy/sleeper", "-c", "istio-proxy", "--", "sh", "-c",
           'printenv SLUICE_BIND; curl -s localhost:15000/ready || curl -s --unix-socket "$SLUICE_ADMIN_SOCKET" '
           "localhost/ready")
    assert cp.stdout.strip() == "LIVE", cp.stderr
    cp = k("exec", "-n", NS, "svc/web", "-c", "two", "--", "sh", "-c", "echo $HOSTNAME", check=True)
    assert cp.stdout == "web\n"


def test_exec_kills_what_it_started_when_the_client_leaves(kc: Client, workdir: Path,
                                                           request: pytest.FixtureRequest) -> None:
    marker = workdir / f"loop-{request.node.callspec.id}.pid"
    proc = subprocess.Popen([str(kc.binary), f"--cache-dir={kc.cache}", "exec", "-n", NS, "shell", "--", "sh", "-c",
                             f"echo $$ > {marker}; while true; do sleep 0.1; done"], env=kc.environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip())
        pid = int(marker.read_text())
        assert Path(f"/proc/{pid}").exists()
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: _gone(pid))


def test_exec_ends_with_the_command_not_its_background_children(k: Kubectl, workdir: Path) -> None:
    marker = workdir / "background.pid"
    # The left-behind `sleep` holds stdout open; the session must still end (well inside kubectl's 60 s) …
    cp = k("exec", "-n", NS, "shell", "--", "sh", "-c", f"sleep 600 & echo $! > {marker}; echo started; exit 4")
    assert (cp.returncode, cp.stdout) == (4, "started\n")
    pid = int(marker.read_text())
    # … and take the background process with it.
    wait_for(lambda: _gone(pid))


# ------------------------------------------------------------------------------------------------ attach
def test_attach_follows_output_until_the_container_ends(kc: Client, k: Kubectl, workdir: Path,
                                                        request: pytest.FixtureRequest) -> None:
    name = "talker-" + request.node.callspec.id.replace(".", "")
    talker = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": NO_SIDECAR},
              "spec": {"restartPolicy": "Never",
                       "containers": [{"name": "t", "image": "local/python", "workingDir": str(workdir),
                                       "command": ["python3", "-c", TALKER, f"go-{name}"]}]}}
    k("apply", "-n", NS, "-f", "-", input=json.dumps(talker), check=True)
    wait_for(lambda: k("get", "pod", "-n", NS, name, "-o", "jsonpath={.status.phase}").stdout == "Running")
    proc = subprocess.Popen(kc.argv("attach", "-n", NS, name), env=kc.environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)  # the reads below block: bound them
    watchdog.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("tick "), first
        (workdir / f"go-{name}").touch()
        rest = proc.stdout.read()  # to the end: attach ends when the container does
        assert rest.splitlines()[-1] == "done"
        assert proc.wait(30) == 0
        assert proc.stderr is not None and "warn " in proc.stderr.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_attach_stdin_is_refused_clearly(k: Kubectl) -> None:
    cp = k("attach", "-i", "-n", NS, "reader", input="")
    assert cp.returncode == 1
    assert "Error from server (BadRequest): attaching to the stdin of container r is not supported" in cp.stderr


# ------------------------------------------------------------------------------------------------ port-forward
class Forward:
    """A port-forward command in the background; its stdout lines are collected as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def wait_line(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout}s: {self.seen}") from None
            assert line, f"port-forward ended: {self.seen} {self.proc.stderr.read() if self.proc.stderr else ''}"
            self.seen.append(line)

    def ended(self) -> tuple[int, str]:
        """Wait for the command to end by itself."""
        self.proc.wait(30)
        return self.proc.returncode, self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        return self.proc.returncode, err


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def test_port_forward_two_ports_several_connections(kc: Client) -> None:
    a, b = free_port(), free_port()
    fw = Forward([str(kc.binary), f"--cache-dir={kc.cache}", "port-forward", "-n", NS, "pod/web", f"{a}:8000",
                  f"{b}:8001"], kc.environ)
    try:
        fw.wait_line(f"Forwarding from 127.0.0.1:{a} -> 8000")
        fw.wait_line(f"Forwarding from 127.0.0.1:{b} -> 8001")
        for _ in range(3):
            code, body = _get(f"http://127.0.0.1:{a}/")
            assert code == 200 and "Directory listing" in body
        assert _get(f"http://127.0.0.1:{b}/")[0] == 200
        fw.wait_line(f"Handling connection for {b}")
    finally:
        fw.stop()


def test_port_forward_service_and_refused_port(k: Kubectl) -> None:
    a = free_port()
    fw = Forward([str(k.binary), f"--cache-dir={k.cache}", "port-forward", "-n", NS, "svc/web", f"{a}:80"],
                 k.daemon.env)
    try:
        fw.wait_line(f"Forwarding from 127.0.0.1:{a} -> 8000")  # the service port 80 is the pod's 8000
        assert _get(f"http://127.0.0.1:{a}/")[0] == 200
    finally:
        fw.stop()
    c = free_port()
    fw = Forward([str(k.binary), f"--cache-dir={k.cache}", "port-forward", "-n", NS, "web", f"{c}:8009"],
                 k.daemon.env)
    try:
        fw.wait_line(f"Forwarding from 127.0.0.1:{c} -> 8009")
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{c}/")
        code, err = fw.ended()  # kubectl ≥ 1.23 ends the whole session on a forwarding error
    finally:
        fw.stop()
    assert code == 1
    assert "error forwarding port 8009 to pod web" in err and "connection refused" in err
    assert "error: lost connection to pod" in err


# ------------------------------------------------------------------------------------------------ Python client
def test_official_python_client_exec_and_port_forward(k: Kubectl) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward, stream

    v1 = client.CoreV1Api(config.new_client_from_config(str(k.daemon.kubeconfig)))
    resp = stream(v1.connect_get_namespaced_pod_exec, "shell", NS, command=["sh", "-c", "echo hi; echo err >&2; exit 3"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=30)
    assert (resp.read_stdout(), resp.read_stderr(), resp.returncode) == ("hi\n", "err\n", 3)
    # Its port-forward is kubelet's channel form (`?ports=`, two channels per port, no SPDY), which has no
    # per-port end: each local socket ends when the WebSocket does, once every port's connection is done.
    pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", NS, ports="8000,8001")
    try:
        socks = {port: pf.socket(port) for port in (8000, 8001)}
        for sock in socks.values():
            sock.setblocking(True)
            sock.settimeout(20)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        for port, sock in socks.items():
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.0 200 OK"), data[:100]
            assert pf.error(port) is None
    finally:
        pf.close()


# ------------------------------------------------------------------------------------------------ sluice CLI
@pytest.fixture(scope="module")
def sluice(k: Kubectl) -> Sluice:
    return Sluice(k.daemon.env)


def test_sluice_exec(k: Kubectl, sluice: Sluice) -> None:
    cp = sluice("exec", "-i", "-n", NS, "shell", "--", "cat", input="piped\n")
    assert (cp.returncode, cp.stdout) == (0, "piped\n"), cp.stderr
    cp = sluice("exec", "-n", NS, "deploy/sleeper", "--", "sh", "-c", "echo $HOSTNAME; echo oops >&2; exit 3")
    assert cp.returncode == 3 and cp.stdout.startswith("sleeper-")
    assert cp.stderr == "oops\ncommand terminated with exit code 3\n"
    cp = sluice("exec", "-n", NS, "shell", "-c", "nope", "--", "true")
    assert (cp.returncode, cp.stderr.strip()) == (1, "Error from server (BadRequest): container nope is not valid "
                                                     "for pod shell")


def test_sluice_exec_tty(k: Kubectl) -> None:
    env = {**k.daemon.env, "PYTHONPATH": str(ROOT / "src")}
    _drive_tty([sys.executable, "-m", "sluice.cli", "exec", "-it", "-n", NS, "shell", "--", "sh"], env)


def test_sluice_port_forward(k: Kubectl) -> None:
    a = free_port()
    env = dict(k.daemon.env)
    env["PYTHONPATH"] = str(ROOT / "src")
    fw = Forward([sys.executable, "-m", "sluice.cli", "port-forward", "-n", NS, "svc/web", f"{a}:80"], env)
    try:
        fw.wait_line(f"Forwarding from 127.0.0.1:{a} -> 8000")
        assert _get(f"http://127.0.0.1:{a}/")[0] == 200
        assert _get(f"http://127.0.0.1:{a}/")[0] == 200
        fw.wait_line(f"Handling connection for {a}")
    finally:
        fw.stop()
    cp = subprocess.run([sys.executable, "-m", "sluice.cli", "port-forward", "-n", NS, "web", "--address",
                         "0.0.0.0", "9999:8000"], env=env, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 1 and "loopback only" in cp.stderr


def _gone(pid: int) -> bool:
    """The process has exited (a zombie counts): it may vanish between any two reads of /proc."""
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
