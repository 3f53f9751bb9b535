"""docs/istio-tasks.md is generated from the tests' istio_task / istio_sample marks and must stay so."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "istio_tasks.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("istio_tasks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_page_is_what_the_marks_say() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    cp = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
    assert cp.returncode == 0, cp.stdout + cp.stderr  # stale: run `make docs`


def test_a_mark_turns_an_entry_to_yes_and_unknown_pages_get_rows() -> None:
    g = generator()
    marks = [g.Mark("istio_task", "traffic-management/tcp-traffic-shifting", "TCP Traffic Shifting",
                    "tests/x.py::test_tcp"),
             g.Mark("istio_task", g._normalise("https://istio.io/latest/docs/tasks/traffic-management/egress/new-one/"),
                    "A New Egress Task", "tests/x.py::test_new"),
             g.Mark("istio_sample", "curl", "curl", "tests/x.py::test_curl")]
    page = g.render(marks).splitlines()
    assert ("| [TCP Traffic Shifting](https://istio.io/latest/docs/tasks/traffic-management/tcp-traffic-shifting/) "
            "| yes | `tests/x.py::test_tcp` |") in page
    assert ("| [A New Egress Task](https://istio.io/latest/docs/tasks/traffic-management/egress/new-one/) | yes "
            "| `tests/x.py::test_new` |") in page
    assert page.index("## Egress") < page.index(next(line for line in page if "A New Egress Task" in line))
    assert any(line.startswith("| [curl](") and "| yes |" in line for line in page)
    unmarked = next(line for line in g.render([]).splitlines() if line.startswith("| [Circuit Breaking]"))
    assert "| not yet: no test runs it yet | — |" in unmarked


def test_every_unsupported_entry_says_why() -> None:
    g = generator()
    for entry in (*g.TASKS, *g.SAMPLES):
        assert entry.path == g._normalise(entry.path) and entry.title
    reasons = {e.path: e.not_yet for e in g.TASKS}
    assert reasons["traffic-management/circuit-breaking"] == ""  # proved by a test instead
    assert all(reasons[p] for p in ("traffic-management/ingress/kubernetes-ingress",
                                    "traffic-management/egress/egress-control"))
