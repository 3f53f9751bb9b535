"""The shim fork server (`sluice.runtime.zygote`), driven as the kubelet drives it: a shim forked from it runs
a preloaded built-in program in-process and an ordinary program by exec, each with the container's
environment, output in the CRI log and exit code in `N.exit`; its shims outlive it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from sluice.runtime import procs
from sluice.runtime.zygote import Zygote


def _wait_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def _args(directory: Path, *program: str) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    return [str(directory), "0", "", "10485760", "5", "--", *program]


def _log_text(directory: Path) -> str:
    return "".join(line.split(" ", 3)[3] for line in (directory / "0.log").read_text().splitlines(True))


@pytest.fixture
async def zygote(tmp_path: Path):  # type: ignore[no-untyped-def]
    z = Zygote(str(tmp_path))
    await z.start()
    yield z
    await z.stop()


async def test_preloaded_program_runs_in_the_forked_shim(zygote: Zygote, tmp_path: Path) -> None:
    ok, bad = tmp_path / "ok", tmp_path / "bad"
    env = {"PATH": os.environ["PATH"], "HOSTNAME": "web-1"}
    pid = await zygote.spawn(_args(ok, sys.executable, "-m", "sluice.load", "--help"), env, str(tmp_path / "e"))
    assert pid is not None and pid != os.getpid()
    assert _wait_file(ok / "0.exit").split()[:2] == ["0", "0"]
    assert _log_text(ok).startswith("usage: python -m sluice.load")
    # argparse's refusal: its message on stderr and exit code 2, as from a fresh interpreter.
    assert await zygote.spawn(_args(bad, sys.executable, "-m", "sluice.load"), env, str(tmp_path / "e"))
    assert _wait_file(bad / "0.exit").split()[:2] == ["2", "0"]
    assert "error: the following arguments are required: url" in _log_text(bad)
    assert " stderr F python -m sluice.load: error" in (bad / "0.log").read_text()


async def test_other_programs_are_execed_with_the_container_env(zygote: Zygote, tmp_path: Path) -> None:
    d = tmp_path / "sh"
    env = {"PATH": os.environ["PATH"], "GREETING": "hello from the pod"}
    assert await zygote.spawn(_args(d, "sh", "-c", 'echo "$GREETING"; exit 3'), env, str(tmp_path / "e"))
    assert _wait_file(d / "0.exit").split()[:2] == ["3", "0"]
    assert _log_text(d) == "hello from the pod\n"


async def test_shims_outlive_the_fork_server(tmp_path: Path) -> None:
    z = Zygote(str(tmp_path))
    await z.start()
    d = tmp_path / "long"
    pid = await z.spawn(_args(d, "sleep", "60"), {"PATH": os.environ["PATH"]}, str(tmp_path / "e"))
    assert pid is not None
    shim = procs.ProcRef.of(pid)
    child = _wait_file(d / "0.pid").split()
    await z.stop()
    try:
        assert shim.alive()
        assert procs.ProcRef(int(child[0]), child[1]).alive()
        assert os.getsid(pid) == pid  # its own session, like a shim the kubelet starts directly
    finally:
        shim.signal(signal.SIGTERM)  # forwarded to `sleep`
    assert _wait_file(d / "0.exit").split()[:2] == ["143", "15"]
    # A stopped fork server answers nothing: the kubelet falls back to starting shims itself.
    assert await z.spawn(_args(tmp_path / "after", "true"), {"PATH": os.environ["PATH"]}, str(tmp_path / "e")) \
        is None
