"""Runs the benchmarks in bench/ and writes their sections of docs/benchmarks.md with the numbers, date and machine.

`python bench/run.py` (`make bench`) runs all of them and rewrites the file; `python bench/run.py query_bench
mesh_bench` runs those only and replaces their sections (from a section's `## … (`bench/<name>.py`)` heading to
the next `## ` heading), leaving the others as they are."""

from __future__ import annotations

import datetime
import os
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ["demo_bench", "netns_bench", "api_bench", "mesh_bench", "tsdb_bench", "query_bench", "console_bench",
           "promql_safety_bench", "push_stall_bench", "checkpoint_bench", "als_trust_bench", "propagation_bench",
           "rollouts_bench"]


def exit_on_sigterm() -> None:
    """A benchmark stopped with SIGTERM (`kill`, `timeout`) exits through its `finally` blocks, which stop the
    daemon and the pods it started, instead of dying at once and leaving them running."""
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))


def task_cpu_ns(pid: int) -> int:
    """CPU time (ns) every thread of `pid` has had so far (`/proc/PID/task/*/schedstat`; 0 once it is gone)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just exited
    return total


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def replace_sections(doc: str, fresh: dict[str, str]) -> str:
    """`doc` with the section of each bench in `fresh` replaced by its new text (appended if it has none)."""
    parts = re.split(r"(?m)^(?=## )", doc)
    for name, text in fresh.items():
        marker = f"(`bench/{name}.py`)"
        at = [i for i, part in enumerate(parts) if part.startswith("## ") and marker in part.partition("\n")[0]]
        if at:
            parts[at[0]] = text.rstrip("\n") + "\n\n"
        else:
            parts.append(text.rstrip("\n") + "\n\n")
    return "".join(parts).rstrip("\n") + "\n"


def main() -> int:
    names = sys.argv[1:] or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; one of: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    sections = []
    fresh: dict[str, str] = {}
    for name in names:
        print(f"running bench/{name}.py …", flush=True)
        out = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py")], capture_output=True, text=True,
                             cwd=ROOT)
        if out.returncode != 0:
            print(out.stdout + out.stderr, file=sys.stderr)
            return 1
        # Each section says when and where it was measured, and how loaded the machine was after it.
        stamp = (f"_Measured {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}; load average "
                 f"after the run {os.getloadavg()[0]:.1f}._\n\n")
        text = out.stdout.strip()
        head, sep, rest = text.partition("\n")
        sections.append(f"{head}\n\n{stamp}{rest.lstrip()}" if sep and head.startswith("#") else stamp + text)
        fresh[name] = sections[-1]
    path = ROOT / "docs" / "benchmarks.md"
    if sys.argv[1:] and path.exists():
        path.write_text(replace_sections(path.read_text(), fresh))
        print("\n\n".join(sections))
        return 0
    date = datetime.date.today().isoformat()
    doc = (f"# Benchmarks\n\nMeasured on {date} on {machine()}.\nRe-run with `make bench`; numbers are from one run "
           "and vary by a few percent between runs.\n\n" + "\n\n".join(sections) + "\n")
    (ROOT / "docs" / "benchmarks.md").write_text(doc)
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
