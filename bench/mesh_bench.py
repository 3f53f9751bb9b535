"""Data-plane benchmarks: Sluice's sidecar pair against a bare Envoy pair and the direct path, interleaved in one
run; what each thing a Sluice sidecar adds costs; config propagation to 10/50/100 sidecars; `sluice demo` to all
pods ready. Prints a Markdown section.

    python bench/mesh_bench.py [--duration S] [--reps N] [--load RATExCONNS ...] [--features all|F,F]
                               [--log-on-only] [--settle S] [--sections dataplane,propagation,demo]

Sluice's pair runs twice: `sluice` with the sidecars' access log on (Istio's demo profile, Sluice's default) and
`sluice-nolog` with the mesh config's `accessLogFile: ""` (Istio's default profile), the ConfigMap switched
before each of their runs (`--log-on-only`: the first only). Every path runs once per round, the rounds
rotating the order, so a burst of load from elsewhere on the machine lands on all of them alike; each figure is the median over the rounds with its min–max. Everything runs on
this machine's cores: the load generator (Python), the Envoys, the daemon and the server share them, so
absolute numbers are pessimistic next to Istio's published ones (separate nodes). The bare pair, measured under
the same conditions, is the baseline Sluice's pair is held to: ≤ 1.1× at p50/p90/p99 and in proxy CPU per 1000 rps.

The defaults are the full run (20 s × 5 rounds; 1000 rps on 4 connections with every bare-pair feature variant,
500 rps on one connection for direct/bare/sluice/sluice-nolog; then propagation and demo): about 25 minutes, for a quiet
machine. A short look on a shared one, under a minute:
`--duration 2 --reps 5 --load 1000x4 --features '' --sections dataplane`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.run import exit_on_sigterm  # noqa: E402
from envoy_pair import FEATURES, SLUICE_FEATURES, AlsTarget, BarePair, pair_configs  # noqa: E402
from kubernetes import client, config  # noqa: E402
from tests.conftest import Daemon, free_port, start_daemon, stop_daemon, wait_for  # noqa: E402

from sluice.load import LoadConfig  # noqa: E402
from sluice.load.runner import run_load  # noqa: E402

NS = "bench"
PAYLOAD = 1024
SERVER = (
    "import asyncio,os\n"
    f"BODY=b'x'*{PAYLOAD}\n"
    "RESP=b'HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\ncontent-type: text/plain\\r\\n\\r\\n' % len(BODY) + BODY\n"
    "async def handle(r,w):\n"
    "    try:\n"
    "        while True:\n"
    "            head=await r.readuntil(b'\\r\\n\\r\\n')\n"
    "            w.write(RESP)\n"
    "            await w.drain()\n"
    "    except Exception:\n"
    "        w.close()\n"
    "async def main():\n"
    "    s=await asyncio.start_server(handle,os.environ['SLUICE_BIND'],8000)\n"
    "    await s.serve_forever()\n"
    "asyncio.run(main())\n")
# Istio's published figures (kept for reference; they come from separate nodes, Istio 1.24 for CPU and memory,
# 1.20 for latency at 1000 rps).
ISTIO_CPU_PER_SIDECAR = 0.20
ISTIO_ADDED_P90, ISTIO_ADDED_P99 = 0.228, 0.298
ISTIO_MEMORY_MB = 60


def deployment(name: str, replicas: int, command: list[str], sidecar: bool = True, port: int | None = None
               ) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": name}}
    if not sidecar:
        meta["annotations"] = {"sidecar.istio.io/inject": "false"}
    c: dict[str, Any] = {"name": name, "image": "local", "command": command}
    if port:
        c["ports"] = [{"containerPort": port}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": meta, "spec": {"terminationGracePeriodSeconds": 1,
                                                             "containers": [c]}}}}


def ready(apps: client.AppsV1Api) -> bool:
    items = apps.list_namespaced_deployment(NS).items
    return all((d.status.available_replicas or 0) == d.spec.replicas for d in items)


def envoy_pids(home: Path) -> dict[str, int]:
    """Pod name → Envoy pid, from /proc (the sidecar is the envoy process whose bootstrap is in the pod dir)."""
    out: dict[str, int] = {}
    for e in Path("/proc").iterdir():
        if not e.name.isdigit():
            continue
        try:
            cmd = (e / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"envoy") and str(home).encode() in b" ".join(cmd):
            cfg = next((c.decode() for c in cmd if c.endswith(b".json")), "")
            try:
                node = json.loads(Path(cfg).read_text())["node"]["id"]
            except (OSError, ValueError, KeyError):
                continue
            out[node.split("~")[2].rsplit(".", 1)[0]] = int(e.name)
    return out


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def sidecar_concurrency(pid: int) -> int:
    """The `--concurrency` a running Envoy was started with (without one, Envoy runs a worker per core)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(argv[argv.index("--concurrency") + 1]) if "--concurrency" in argv else os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of all of a process's threads: the sum of /proc/PID/task/*/schedstat (nanoseconds,
    where /proc/PID/stat counts 10 ms ticks, too coarse for a few seconds of one Envoy), /proc/PID/stat where
    schedstat is missing."""
    total, found = 0, False
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that just exited
    if found:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def private_mib(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    kb = sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean", "Private_Dirty")))
    return kb / 1024


def syncz(d: Daemon) -> list[dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(d.home / "pki" / "ca.crt"))
    req = urllib.request.Request(d.api_url + "/debug/syncz", headers={"Authorization": f"Bearer {d.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
        return list(json.loads(r.read()))


def all_acked(d: Daemon, n: int) -> bool:
    rows = syncz(d)
    return len(rows) >= n and all(t.get("state") == "SYNCED" for r in rows for t in r["types"].values())


def rds_acked(d: Daemon) -> dict[str, str]:
    return {r["proxy"]: str(r["types"].get("RDS", {}).get("acked")) for r in syncz(d)}


# ---------------------------------------------------------------------------------------------- arguments
@dataclass(frozen=True)
class Load:
    rate: float
    connections: int

    @classmethod
    def parse(cls, text: str) -> Load:
        rate, _, conns = text.lower().partition("x")
        try:
            load = cls(float(rate), int(conns or "1"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid load {text!r}: want RATExCONNECTIONS, e.g. 1000x4") from None
        if load.rate <= 0 or load.connections < 1:
            raise argparse.ArgumentTypeError(f"invalid load {text!r}: rate must be > 0 and connections ≥ 1")
        return load

    def __str__(self) -> str:
        conns = "one connection" if self.connections == 1 else f"{self.connections} connections"
        return f"{self.rate:g} rps on {conns}"


SECTIONS = ("dataplane", "propagation", "demo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per path per round (default 20)")
    p.add_argument("--reps", type=int, default=5, help="rounds of every path (default 5)")
    p.add_argument("--load", type=Load.parse, action="append", dest="loads",
                   help="RATExCONNECTIONS, repeatable (default 1000x4 and 500x1)")
    p.add_argument("--features", default="all",
                   help=f"bare pair variants, comma-separated, each a feature or features joined by '+' "
                        f"({', '.join(FEATURES)}); 'all' (the default) = each of {', '.join(SLUICE_FEATURES)} alone "
                        "and all together; '' = none. "
                        "They run at the first --load only")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--log-on-only", action="store_true",
                   help="run Sluice's pair with the access log on only (by default also off, as in Istio's "
                        "default profile, with the mesh config switched between runs)")
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds after each run still counted for CPU (buffered access-log entries; default 0.5)")
    args = p.parse_args(argv)
    args.loads = args.loads or [Load(1000, 4), Load(500, 1)]
    feats = [f.strip() for f in args.features.split(",") if f.strip()]
    args.features = list(SLUICE_FEATURES) + ["+".join(SLUICE_FEATURES)] if feats == ["all"] else feats
    for f in args.features:
        for part in f.split("+"):
            if part not in FEATURES:
                p.error(f"unknown feature {part!r}; known: {', '.join(FEATURES)}, all")
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for s in args.sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r}; known: {', '.join(SECTIONS)}")
    if args.reps < 1 or args.duration <= 0:
        p.error("--reps must be ≥ 1 and --duration > 0")
    return args


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Sample:
    p50: float
    p90: float
    p99: float
    rps: float
    errors: int
    proxy_cpu: float | None  # vCPU-seconds per 1000 requests, both proxies
    extra_cpu: dict[str, float] = field(default_factory=dict)  # other processes' vCPU per 1000 rps


@dataclass
class Path_:
    """One way from the load generator to a server: its URL, proxy and the processes whose CPU it costs."""

    name: str
    url: str
    proxy: str | None
    proxies: list[int]  # the Envoy pids
    others: dict[str, Callable[[], list[int]]] = field(default_factory=dict)  # label → pids, e.g. log shims
    prepare: Callable[[], None] | None = None  # run before each of its runs (e.g. the mesh config it needs)


async def _load(path: Path_, load: Load, seconds: float) -> Any:
    return await run_load(LoadConfig(path.url, rate=load.rate, concurrency=load.connections, duration=seconds,
                                     proxy=path.proxy, timeout=5))


def measure(path: Path_, load: Load, seconds: float, idle: dict[str, float], settle: float) -> Sample:
    """One run of `load` on `path`. CPU is counted until `settle` seconds after the last response, so that the
    access-log entries Envoy still buffers (and the collector's work on them) count for the run that made them."""
    others = {label: pids() for label, pids in path.others.items()}
    t0 = time.perf_counter()
    before = [cpu_seconds(p) for p in path.proxies]
    others0 = {label: sum(cpu_seconds(p) for p in pids) for label, pids in others.items()}
    res = asyncio.run(_load(path, load, seconds))
    time.sleep(settle)
    n = max(res.requests, 1)
    cpu = sum(cpu_seconds(p) for p in path.proxies) - sum(before) if path.proxies else None
    window = time.perf_counter() - t0
    extra = {label: max(0.0, sum(cpu_seconds(p) for p in pids) - others0[label] - idle.get(label, 0.0) * window)
             / n * 1000 for label, pids in others.items()}
    lat = res.latency
    return Sample(lat.p50, lat.p90, lat.p99, res.achieved_rps, res.error_count,
                  None if cpu is None else cpu / n * 1000, extra)


def idle_rate(pids: list[int], seconds: float = 2.0) -> float:
    c0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    time.sleep(seconds)
    return (sum(cpu_seconds(p) for p in pids) - c0) / (time.perf_counter() - t0)


def rounds(paths: list[Path_], load: Load, reps: int, seconds: float, idle: dict[str, float], settle: float
           ) -> dict[str, list[Sample]]:
    """`reps` rounds of every path, each round starting one path further along (so no path always follows the
    same neighbour, or always runs first after a pause)."""
    for p in paths:  # warm-up: connections opened, first-request costs paid
        if p.prepare is not None:
            p.prepare()
        asyncio.run(_load(p, load, min(1.0, seconds)))
    out: dict[str, list[Sample]] = {p.name: [] for p in paths}
    for r in range(reps):
        for p in paths[r % len(paths):] + paths[:r % len(paths)]:
            if p.prepare is not None:
                p.prepare()
            out[p.name].append(measure(p, load, seconds, idle, settle))
    return out


# ---------------------------------------------------------------------------------------------- reporting
def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 2) -> str:
    return f"{med(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def added(samples: dict[str, list[Sample]], name: str, attr: str) -> list[float]:
    """Per round, this path minus the direct path at the same percentile."""
    return [getattr(s, attr) - getattr(d, attr) for s, d in zip(samples[name], samples["direct"], strict=True)]


def ratio(samples: dict[str, list[Sample]], num: str, den: str, attr: str,
          of: Callable[[list[float]], float] = med) -> str:
    a = [getattr(s, attr) for s in samples[num]]
    b = [getattr(s, attr) for s in samples[den]]
    if any(v is None for v in a + b) or of(b) == 0:
        return "–"
    return f"{of(a) / of(b):.2f}×"


def dataplane_table(samples: dict[str, list[Sample]], load: Load, seconds: float, reps: int) -> list[str]:
    out = [f"**{load}**, {reps} rounds of {seconds:g} s per path; median (min–max) over the rounds.\n",
           "| path | p50 ms | p90 ms | p99 ms | added p50 / p90 / p99 ms (median) | proxy vCPU per 1000 rps "
           "(both) | achieved rps | errors |",
           "|---|---|---|---|---|---|---:|---:|"]
    for name, ss in samples.items():
        add = ("–" if name == "direct" else
               " / ".join(f"{med(added(samples, name, a)):.2f}" for a in ("p50", "p90", "p99")))
        cpu = [s.proxy_cpu for s in ss if s.proxy_cpu is not None]
        out.append(f"| {name} | {spread([s.p50 for s in ss])} | {spread([s.p90 for s in ss])} | "
                   f"{spread([s.p99 for s in ss])} | {add} | {spread(cpu, 3) if cpu else '–'} | "
                   f"{med([s.rps for s in ss]):,.0f} | {sum(s.errors for s in ss)} |")
    for name in [n for n in samples if n.startswith("sluice")] if "bare" in samples else []:
        out.append(f"| **{name} / bare** (medians) | {ratio(samples, name, 'bare', 'p50')} | "
                   f"{ratio(samples, name, 'bare', 'p90')} | {ratio(samples, name, 'bare', 'p99')} | | "
                   f"{ratio(samples, name, 'bare', 'proxy_cpu')} | | |")
        # Contention from elsewhere only ever adds; on a busy machine the best rounds are nearer each path's own cost.
        out.append(f"| {name} / bare (best rounds) | {ratio(samples, name, 'bare', 'p50', min)} | "
                   f"{ratio(samples, name, 'bare', 'p90', min)} | {ratio(samples, name, 'bare', 'p99', min)} "
                   f"| | {ratio(samples, name, 'bare', 'proxy_cpu', min)} | | |")
    out.append(f"| Istio (published, separate nodes) | | | | – / {ISTIO_ADDED_P90} / {ISTIO_ADDED_P99} | "
               f"{2 * ISTIO_CPU_PER_SIDECAR:.2f} ({ISTIO_CPU_PER_SIDECAR:.2f} per sidecar) | 1,000 | |")
    short = [f"{name} ({sum(s.rps < 0.95 * load.rate for s in ss)} of {len(ss)})" for name, ss in samples.items()
             if any(s.rps < 0.95 * load.rate for s in ss)]
    if short:
        out.append(f"\n**The machine did not keep up**: rounds below 95 % of {load.rate:g} rps in "
                   f"{', '.join(short)}; their latency is mostly queueing, and CPU per request rises under contention.")
    extras = {label for ss in samples.values() for s in ss for label in s.extra_cpu}
    notes = []
    for label in sorted(extras):
        for name, ss in samples.items():
            vals = [s.extra_cpu[label] for s in ss if label in s.extra_cpu]
            if vals:
                notes.append(f"{label} for `{name}`: {spread(vals, 3)} vCPU per 1000 rps")
    if notes:
        out.append("\nOutside the proxies: " + "; ".join(notes) + ".")
    return out


def feature_table(samples: dict[str, list[Sample]], features: list[str]) -> list[str]:
    base = samples["bare"]
    out = ["| bare pair + | Δp50 ms | Δp90 ms | Δp99 ms | Δ proxy vCPU per 1000 rps | CPU vs bare |",
           "|---|---:|---:|---:|---:|---:|"]
    for f in features:
        ss = samples[f"bare+{f}"]
        d = {a: med([getattr(s, a) for s in ss]) - med([getattr(s, a) for s in base]) for a in ("p50", "p90", "p99")}
        c = med([s.proxy_cpu or 0 for s in ss]) - med([s.proxy_cpu or 0 for s in base])
        out.append(f"| {f} | {d['p50']:+.3f} | {d['p90']:+.3f} | {d['p99']:+.3f} | {c:+.3f} | "
                   f"{ratio(samples, f'bare+{f}', 'bare', 'proxy_cpu')} |")
    return out


# ---------------------------------------------------------------------------------------------- sections
def start_mesh(d: Daemon) -> tuple[client.ApiClient, dict[str, str]]:
    api = config.new_client_from_config(str(d.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NS}})
    apps.create_namespaced_deployment(NS, deployment("server", 1, [sys.executable, "-c", SERVER], port=8000))
    apps.create_namespaced_deployment(NS, deployment("client", 1, ["sleep", "infinity"]))
    apps.create_namespaced_deployment(NS, deployment("direct", 1, [sys.executable, "-c", SERVER], sidecar=False,
                                                     port=8000))
    core.create_namespaced_service(NS, {"metadata": {"name": "server"}, "spec": {
        "selector": {"app": "server"}, "ports": [{"name": "http", "port": 8000}]}})
    wait_for(lambda: ready(apps), timeout=120, interval=0.2)
    ips = {p.metadata.labels["app"]: p.status.pod_ip for p in core.list_namespaced_pod(NS).items}
    return api, ips


def answers(url: str, proxy: str) -> Callable[[], bool]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))

    def check() -> bool:
        try:
            return bool(opener.open(url, timeout=2).status == 200)
        except OSError:  # 503 until the endpoints reach the client's sidecar; refused until Envoy listens
            return False
    return check


def lds_acked(d: Daemon) -> dict[str, str]:
    return {r["proxy"]: str(r["types"].get("LDS", {}).get("acked")) for r in syncz(d)}


class AccessLogSwitch:
    """Sets the mesh config's `accessLogFile` (ConfigMap istio-system/istio) for the Sluice path about to run:
    `""` as in Istio's default profile, `/dev/stdout` as in its demo profile (and Sluice's default). A change
    waits until every sidecar has ACKed its new listeners, then for Envoy's drain (2 s) to close the connections
    opened under the old ones, so that a run sees one configuration only."""

    def __init__(self, d: Daemon, api: client.ApiClient) -> None:
        self.d, self.core = d, client.CoreV1Api(api)
        self.state = True  # no mesh config: Sluice's default, the log on
        self.created = False

    def __call__(self, on: bool) -> Callable[[], None]:
        def prepare() -> None:
            if self.state == on:
                return
            before = lds_acked(self.d)
            cm = {"metadata": {"name": "istio", "namespace": "istio-system"},
                  "data": {"mesh": f"accessLogFile: {'/dev/stdout' if on else chr(34) * 2}\n"}}
            if not self.created:
                try:
                    self.core.create_namespace({"metadata": {"name": "istio-system"}})
                except client.ApiException as e:
                    if e.status != 409:
                        raise
                self.core.create_namespaced_config_map("istio-system", cm)
                self.created = True
            else:
                self.core.replace_namespaced_config_map("istio", "istio-system", cm)
            wait_for(lambda: all(v != before.get(p) for p, v in lds_acked(self.d).items()) and all_acked(self.d, 2),
                     timeout=60, interval=0.05)
            time.sleep(2.5)  # Envoy's drain time for the listeners it replaced (`envoy_command`)
            self.state = on
        return prepare


def pod_bootstrap(d: Daemon, pod_prefix: str) -> dict[str, Any]:
    for boot in (d.home / "runtime" / "pods").glob("*/envoy.json"):
        b = json.loads(boot.read_text())
        if str(b["node"]["metadata"]["NAME"]).startswith(pod_prefix + "-"):
            return dict(b)
    raise RuntimeError(f"no sidecar bootstrap for a pod named {pod_prefix}-*")


def dataplane(d: Daemon, args: argparse.Namespace, work: Path, out: list[str]) -> client.ApiClient:
    api, ips = start_mesh(d)
    mesh_proxy = f"http://{ips['client']}:15001"
    wait_for(answers("http://server:8000/", mesh_proxy), timeout=60)
    envoys = envoy_pids(d.home)
    pair = [envoys[n] for n in envoys if n.startswith(("client-", "server-"))]
    shims = [parent_pid(p) for p in pair]
    concurrency = sidecar_concurrency(pair[0])  # the bare pair runs as many workers as the daemon gives sidecars
    assert d.proc is not None
    daemon_pid = d.proc.pid
    app = (ips["direct"], 8000)
    als = AlsTarget(("127.0.0.1", d.xds_port), pod_bootstrap(d, "client"), pod_bootstrap(d, "server"))
    variants: list[tuple[str, frozenset[str]]] = [("bare", frozenset())]
    variants += [(f"bare+{f}", frozenset(f.split("+"))) for f in args.features]
    sink: subprocess.Popen[str] | None = None
    otel_sink: tuple[str, int] | None = None
    if any("otel" in feats for _, feats in variants):
        sink = subprocess.Popen([sys.executable, str(Path(__file__).parent / "otel_sink.py")], text=True,
                                stdout=subprocess.PIPE, start_new_session=True)
        assert sink.stdout is not None
        otel_sink = ("127.0.0.1", int(sink.stdout.readline()))
    pairs: list[BarePair] = []
    paths = [Path_("direct", f"http://{ips['direct']}:8000/", None, [])]
    try:
        for name, feats in variants:
            cl, sv = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
            bp = BarePair(name, work / name.replace("+", "_"),
                          pair_configs(client_listen=cl, server_listen=sv, app=app, features=feats, als=als,
                                       otel_sink=otel_sink),
                          concurrency=concurrency)
            bp.start()
            pairs.append(bp)
            proxy = f"http://{cl[0]}:{cl[1]}"
            wait_for(answers("http://server:8000/", proxy), timeout=30)
            others = {"collector (daemon)": lambda: [daemon_pid]} if any(f.startswith("als") for f in feats) else {}
            paths.append(Path_(name, "http://server:8000/", proxy, bp.pids, others))
        switch = AccessLogSwitch(d, api)
        paths.append(Path_("sluice", "http://server:8000/", mesh_proxy, pair,
                           {"collector (daemon)": lambda: [daemon_pid], "log shims": lambda: shims}, switch(True)))
        if not args.log_on_only:
            paths.append(Path_("sluice-nolog", "http://server:8000/", mesh_proxy, pair,
                               {"collector (daemon)": lambda: [daemon_pid], "log shims": lambda: shims},
                               switch(False)))
        idle = {"collector (daemon)": idle_rate([daemon_pid]), "log shims": idle_rate(shims, 1.0)}
        load_before = os.getloadavg()
        results: dict[Load, dict[str, list[Sample]]] = {}
        main_paths = [p for p in paths if not p.name.startswith("bare+")]
        per_run = args.duration + args.settle
        total = sum(len(paths if i == 0 else main_paths) * (min(1.0, args.duration) + args.reps * per_run)
                    for i in range(len(args.loads)))
        print(f"mesh bench: about {total / 60:.1f} min of load, {len(paths)} paths at {args.loads[0]}"
              + (f", {len(main_paths)} at the others" if len(args.loads) > 1 else ""), file=sys.stderr)
        for i, load in enumerate(args.loads):
            # the bare pair's feature variants run at the first load only: what a part costs, not how it scales
            results[load] = rounds(paths if i == 0 else main_paths, load, args.reps, args.duration, idle,
                                   args.settle)
        load_after = os.getloadavg()
        rss = [rss_mib(p) for p in pair]
        bare_rss = [rss_mib(p) for p in pairs[0].pids]
        priv = [private_mib(p) for p in pair]
    finally:
        for bp in pairs:
            bp.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    out.append("## Data plane (`bench/mesh_bench.py`)\n")
    out.append(f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, load "
               f"average {load_before[0]:.2f} before and {load_after[0]:.2f} after; "
               f"`python bench/mesh_bench.py {shlex.join(sys.argv[1:])}`.\n")
    out.append(f"A {PAYLOAD}-byte response from a small asyncio server, fixed-rate load from sluice's load "
               "generator (latency counted from each request's release by the pacer, so waiting for a busy "
               "connection counts). *direct*: client → server. *bare*: client → Envoy (HTTP proxy) → Envoy → "
               "server, the same Envoy binary and command line as the sidecars "
               f"({concurrency} worker{'s' if concurrency > 1 else ''}), a minimal static config: router only, "
               "no access log, no stats sinks, no admin. *sluice*: client → client sidecar (15001) → server sidecar → server, "
               "the real daemon in loopback mode (access log to the pod log as in Istio's demo profile, gRPC ALS to "
               "the daemon's collector, CORS and fault filters, Istio's retry and cluster settings). "
               "*sluice-nolog*: the same pods with the mesh config's `accessLogFile: \"\"` (Istio's default "
               "profile: no file access log; ALS and metrics as before), switched between runs (each switch waits "
               "for the sidecars' ACK and Envoy's 2 s drain). Added = path − direct in the same "
               "round. Proxy CPU is both Envoys' user+system time (/proc/PID/task/*/schedstat) over the run and "
               f"{args.settle:g} s after it (entries still buffered for the access logs).\n")
    for load, samples in results.items():
        out.extend(dataplane_table(samples, load, args.duration, args.reps))
        out.append("")
        if args.features and any(name.startswith("bare+") for name in samples):
            out.append(f"What each part of a Sluice sidecar costs at {load}: the bare pair with that one part added, "
                       "its median minus the bare pair's.\n")
            out.extend(feature_table(samples, args.features))
            out.append("")
    out.append(f"Istio 1.24 publishes {ISTIO_CPU_PER_SIDECAR:.2f} vCPU and {ISTIO_MEMORY_MB} MB per sidecar per "
               f"1000 rps, and (1.20) {ISTIO_ADDED_P90} ms p90 / {ISTIO_ADDED_P99} ms p99 added. Memory after the "
               f"runs: Sluice sidecar RSS {med(rss):.0f} MiB (median of {len(rss)}), of which {med(priv):.0f} MiB "
               f"private; bare Envoy RSS {med(bare_rss):.0f} MiB; daemon RSS {rss_mib(daemon_pid):.0f} MiB.\n")
    return api


def propagation(d: Daemon, api: client.ApiClient, out: list[str]) -> None:
    """Config propagation: API write → every affected sidecar ACKed (polled on /debug/syncz)."""
    apps = client.AppsV1Api(api)
    out.append("Config propagation: a VirtualService change (its route timeout) written through the API until every "
               "sidecar in the mesh has ACKed the new routes (`/debug/syncz` polled every 2 ms; 15 writes).\n")
    out.append("| sidecars | p50 ms | p99 ms |")
    out.append("|---:|---:|---:|")
    for n in (10, 50, 100):
        apps.patch_namespaced_deployment_scale("client", NS, {"spec": {"replicas": n - 1}})
        wait_for(lambda: ready(apps), timeout=600, interval=0.5)
        wait_for(lambda n=n: all_acked(d, n), timeout=120, interval=0.2)
        co = client.CustomObjectsApi(api)
        samples = []
        for i in range(15):
            vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                  "metadata": {"name": "server"},
                  "spec": {"hosts": ["server"], "http": [{"route": [{"destination": {"host": "server"}}],
                                                          "timeout": f"{10 + i}s"}]}}
            before = rds_acked(d)
            t0 = time.perf_counter()
            if i == 0:
                co.create_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", vs)
            else:
                co.patch_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "server",
                                                  {"spec": vs["spec"]})
            while True:
                now = rds_acked(d)
                if all(now.get(p) != v for p, v in before.items()) and all_acked(d, n):
                    break
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
        co.delete_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "server")
        samples.sort()
        out.append(f"| {n} | {statistics.median(samples):.0f} | {samples[-1]:.0f} |")
    rss = [rss_mib(p) for p in envoy_pids(d.home).values()]
    out.append(f"\nWith 100 sidecars running: daemon RSS {rss_mib(d.proc.pid) if d.proc else 0:.0f} MiB, "
               f"sidecar RSS median {statistics.median(rss):.0f} MiB.\n")


def demo(home: Path, out: list[str]) -> None:
    """`sluice demo` to all pods ready, on a warm machine (venv and packages installed)."""
    demo_home = home / "demo"
    demo_home.mkdir()
    (demo_home / "config.yaml").write_text(
        "".join(f"{k}: {free_port()}\n" for k in ("api_port", "xds_port", "metrics_port", "console_port")))
    env = {**os.environ, "SLUICE_HOME": str(demo_home)}
    sluice = str(Path(sys.executable).parent / "sluice")
    t0 = time.perf_counter()
    subprocess.run([sluice, "demo"], env=env, check=True, capture_output=True)
    took = time.perf_counter() - t0
    subprocess.run([sluice, "down"], env=env, check=True, capture_output=True)
    out.append(f"`sluice demo` from a stopped daemon to all 9 Bookinfo/sleep/gateway/generator pods ready: "
               f"{took:.1f} s.")


def main(argv: list[str] | None = None) -> None:
    exit_on_sigterm()
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="sluice-mesh-bench-"))
    out: list[str] = []
    try:
        if "dataplane" in args.sections or "propagation" in args.sections:
            d = start_daemon(home / "home")
            try:
                if "dataplane" in args.sections:
                    api = dataplane(d, args, home / "bare", out)
                else:
                    api, _ = start_mesh(d)
                if "propagation" in args.sections:
                    propagation(d, api, out)
            finally:
                stop_daemon(d)
        if "demo" in args.sections:
            demo(home, out)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
