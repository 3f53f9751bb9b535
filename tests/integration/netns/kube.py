"""The real kubectl 1.35 against a test daemon, for the netns-mode tests."""

from __future__ import annotations

import subprocess

from tests.conftest import TOOLS, Daemon


class Kube:
    def __init__(self, d: Daemon) -> None:
        self.d = d

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=self.d.env,
                            capture_output=True, text=True, timeout=60)
        if check and cp.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {cp.stderr}")
        return cp.stdout
