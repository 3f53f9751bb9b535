"""`sluice up`, `sluice down`, `sluice status`: start, stop and describe the daemon.

Called by the CLI (`sluice.cli`). The daemon runs detached in its own session; its pid and addresses are in
`SLUICE_HOME/daemon.json`. A stale pid file (the process is gone) is cleaned up, not trusted.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console

from sluice.daemon.state import DaemonOptions, Home

__all__ = ["up", "down", "status", "DaemonOptions", "running_pid", "wait_healthy", "console_url",
           "console_login_url"]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0  # SIGTERM → SIGKILL for a daemon that does not stop (a frozen loop, SIGSTOP)
KILL_TIMEOUT = 10.0
LEFTOVER_GRACE = 5.0  # as the kubelet's own grace cap on `sluice down`


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    # A recycled pid that belongs to some other program is not our daemon.
    if b"sluice" not in cmdline:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def running_pid(home: Home) -> int | None:
    try:
        pid = int(home.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    if _alive(pid):
        return pid
    for f in (home.pidfile, home.runfile):  # stale: the process is gone
        try:
            f.unlink()
        except FileNotFoundError:
            pass
    return None


def _healthy(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_healthy(home: Home, proc: subprocess.Popen[bytes] | None, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if home.pidfile.exists() and _healthy(port):
            return True
        time.sleep(0.05)
    return False


def _where(home: Home, opts: DaemonOptions) -> list[tuple[str, str]]:
    return [
        ("API server", f"https://127.0.0.1:{opts.api_port}"),
        ("console", console_login_url(home)),
        ("Prometheus", f"http://127.0.0.1:{opts.metrics_port}"),
        ("kubeconfig", str(home.kubeconfig)),
        ("state", str(home.root)),
        ("log", str(home.logfile)),
    ]


def up(home_dir: Path, *, foreground: bool = False, options: DaemonOptions | None = None) -> int:
    console = Console(stderr=False)
    home = Home(home_dir)
    home.prepare()
    pid = running_pid(home)
    if pid is not None:
        run = home.read_run() or {}
        console.print(f"sluice is already running (pid {pid}), API server at {run.get('api', '?')}; nothing to do")
        return 0
    opts = home.load_options(options)
    if foreground:
        from sluice.daemon import main as daemon_main

        return daemon_main.run(home, opts)
    args = [sys.executable, "-m", "sluice.daemon.main", "--home", str(home.root),
            "--api-port", str(opts.api_port), "--xds-port", str(opts.xds_port),
            "--metrics-port", str(opts.metrics_port), "--console-port", str(opts.console_port)]
    if opts.relative_weights:
        args.append("--relative-weights")
    if not opts.runtime:
        args.append("--no-runtime")
    args += ["--network", opts.network]
    with open(home.logfile, "ab") as logf:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    with console.status("starting the sluice daemon…", spinner="dots"):
        ok = wait_healthy(home, proc, opts.api_port, START_TIMEOUT)
    if not ok:
        if proc.poll() is None:
            proc.terminate()
        tail = home.logfile.read_text(errors="replace").splitlines()[-5:]
        print("error: the sluice daemon did not start; last lines of " + str(home.logfile) + ":", file=sys.stderr)
        for line in tail:
            print("  " + line, file=sys.stderr)
        return 1
    console.print(f"sluice is up (pid {proc.pid})")
    for k, v in _where(home, opts):
        console.print(f"  {k:<11} {v}", soft_wrap=True)  # a wrapped address would not open
    console.print(f"\n  export KUBECONFIG={home.kubeconfig}")
    return 0


def down(home_dir: Path, grace: float = STOP_TIMEOUT) -> int:
    """Stop the daemon (SIGTERM; SIGKILL after `grace` seconds if it does not answer), then stop any pod it
    left running (`sluice.daemon.leftovers`): after `sluice down` nothing of the mesh runs."""
    home = Home(home_dir)
    pid = running_pid(home)
    if pid is None:
        left = _stop_leftovers(home)
        print("sluice is not running" + (f"; stopped {left} containers left running" if left else ""))
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with Console(stderr=True).status("stopping the sluice daemon and its pods…", spinner="dots"):
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
    if _alive(pid):
        print(f"the sluice daemon (pid {pid}) did not stop within {grace:g}s; killing it", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            print(f"error: the sluice daemon (pid {pid}) survived SIGKILL", file=sys.stderr)
            return 1
    running_pid(home)  # clears the files if the daemon could not
    left = _stop_leftovers(home)
    if left:
        print(f"stopped {left} containers the daemon left running")
    print(f"sluice stopped (pid {pid})")
    return 0


def _stop_leftovers(home: Home) -> int:
    from sluice.daemon import leftovers  # the runtime's modules load only when there may be pods

    runs = leftovers.running(home.root)
    if runs:
        leftovers.stop(runs, LEFTOVER_GRACE)
    if (home.root / "runtime").is_dir():
        leftovers.stop_node(home.root)
    return len(runs)


def console_url(home: Home) -> str:
    """The console's address: the running daemon's port, else the configured one."""
    run = home.read_run() or {}
    port = run.get("console_port", home.load_options(None).console_port)
    return f"http://127.0.0.1:{port}"


def console_login_url(home: Home, page: str = "/") -> str:
    """The console's address for `page` (`/graph?namespace=tutorial`) carrying the one-time login token the daemon
    keeps in SLUICE_HOME (0600), Jupyter-style: opening it logs the browser in. Without a readable token (no
    daemon yet, or another user's state), the plain address; the console then asks for a token."""
    from sluice.console.credentials import read_login_token

    url = console_url(home) + "/" + page.lstrip("/")
    token = read_login_token(home.root)
    if token is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}token={urllib.parse.quote(token, safe='')}"


def status(home_dir: Path) -> int:
    home = Home(home_dir)
    pid = running_pid(home)
    if pid is None:
        print(f"sluice is not running (state in {home.root})")
        return 3
    run = home.read_run() or {}
    opts = home.load_options(None)
    healthy = _healthy(int(run.get("api_port", opts.api_port)))
    rows = [("daemon", f"pid {pid}", "running" if healthy else "not answering"),
            ("API server", str(run.get("api", "")), "ready" if healthy else "not ready"),
            ("console", console_login_url(home), ""),
            ("Prometheus API", f"http://127.0.0.1:{run.get('metrics_port', opts.metrics_port)}", ""),
            ("kubeconfig", str(home.kubeconfig), ""), ("state", str(home.root), ""),
            ("log", str(home.logfile), "")]
    if run.get("network"):
        mode, _, why = str(run["network"]).partition(" (")
        rows.append(("pod network", mode, why.rstrip(")")))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'COMPONENT':<{w0}}   {'WHERE':<{w1}}   STATUS")
    for a, b, c in rows:
        print(f"{a:<{w0}}   {b:<{w1}}   {c}".rstrip())
    return 0 if healthy else 1
