"""`sluice demo` from a stopped daemon to all of Bookinfo's pods ready: wall time and the CPU it costs.

Interleaved runs of {netns, loopback} × {fork server on, off} (the `fork_server` setting), each in a fresh
SLUICE_HOME with free ports. CPU is the `sluice demo` command's own (rusage of the child) plus the daemon's
process tree at the moment the demo returns (every process descended from the daemon, with the CPU of the
children each has reaped): what the 2 cores had to do. Prints a markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port  # noqa: E402

REPEATS = int(os.environ.get("DEMO_BENCH_REPEATS", "3"))
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every live descendant, including what each has reaped."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for e in Path("/proc").iterdir():
        if e.name.isdigit() and (f := _stat(int(e.name))) is not None:
            parent[int(e.name)] = int(f[1])
            cpu[int(e.name)] = sum(int(x) for x in f[11:15]) / TICK  # utime stime cutime cstime
    total = 0.0
    for pid in cpu:
        p = pid
        while p > 1:
            if p == root:
                total += cpu[pid]
                break
            p = parent.get(p, 0)
    return total


def one_run(tmp: Path, network: str, fork: bool, n: int) -> tuple[float, float]:
    home = tmp / f"{network}-{'fork' if fork else 'exec'}-{n}"
    home.mkdir()
    (home / "config.yaml").write_text(f"network: {network}\nfork_server: {'true' if fork else 'false'}\n" + "".join(
        f"{k}: {free_port()}\n" for k in ("api_port", "xds_port", "metrics_port", "console_port")))
    env = {**os.environ, "SLUICE_HOME": str(home)}
    sluice = str(Path(sys.executable).parent / "sluice")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sluice, "demo"], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    daemon = int((home / "daemon.pid").read_text())
    cpu = cli + tree_cpu(daemon)
    subprocess.run([sluice, "down"], env=env, check=True, capture_output=True)
    return wall, cpu


def main() -> int:
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    loads = []
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as d:
        for n in range(REPEATS):
            for network in ("netns", "loopback"):
                for fork in (True, False):
                    loads.append(os.getloadavg()[0])
                    results.setdefault((network, fork), []).append(one_run(Path(d), network, fork, n))
    rows = []
    for (network, fork), runs in results.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        rows.append(f"| {network} | {'on' if fork else 'off'} | {statistics.median(walls):.2f} "
                    f"({min(walls):.2f}–{max(walls):.2f}) | {statistics.median(cpus):.1f} |")
    print("\n".join([
        "## `sluice demo` ready time (`bench/demo_bench.py`)\n",
        f"`sluice demo` in a fresh SLUICE_HOME until all 9 pods (Bookinfo's 6, sleep, the traffic generator, the "
        f"ingress gateway) are ready; {REPEATS} interleaved runs per row, median (range). CPU: the command's own "
        "plus the daemon's process tree when it returns. *fork server*: shims and the built-in Python programs "
        f"forked from one process with their imports done (`fork_server`). Load average before the runs: "
        f"{min(loads):.1f}–{max(loads):.1f}.\n",
        "| network | fork server | wall s, median (range) | CPU s, median |", "|---|---|---:|---:|", *rows, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
