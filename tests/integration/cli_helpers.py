"""Running the real `sluice` CLI as a subprocess against the test daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".venv" / "bin" / "sluice"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl-1.35"


def sluice_command() -> list[str]:
    # The console script once the package is installed; the module otherwise (same entry point).
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sluice.cli"]


@dataclass
class Sluice:
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        e = dict(self.env)
        e["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
        e.pop("KUBE_EDITOR", None)
        e.update(env or {})
        return subprocess.run([*sluice_command(), *args], input=input, env=e, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        cp = self(*args, input=input, env=env)
        assert cp.returncode == 0, f"sluice {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}"
        assert "Traceback" not in cp.stderr
        return cp.stdout


def with_namespace(env: dict[str, str], kubeconfig: Path, namespace: str, target: Path) -> dict[str, str]:
    """An environment whose kubeconfig context namespace is `namespace` (what a user of the story has)."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    cfg["contexts"][0]["context"]["namespace"] = namespace
    target.write_text(yaml.safe_dump(cfg))
    return {**env, "KUBECONFIG": str(target)}


def split_columns(line: str) -> list[str]:
    """Cells of a kubectl-style table line (columns are separated by at least 3 spaces)."""
    import re

    return re.split(r" {3,}", line.rstrip())
