"""Container log rotation as the kubelet does it (issue 9, point 8): names, compression, how many files stay,
and reading a run's lines across its rotated files."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path

from sluice.runtime import logfiles
from sluice.runtime.logs import read_lines

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _record(i: int) -> bytes:
    return b"2026-01-01T00:00:00.%09dZ stdout F line-%d\n" % (i, i)


def _write_rotating(base: Path, lines: int, per_file: int, policy: logfiles.LogRotation) -> None:
    """Write CRI records like the shim, rotating every `per_file` records one second apart."""
    base.write_bytes(b"")
    now = T0
    for i in range(1, lines + 1):
        with base.open("ab") as f:
            f.write(_record(i))
        if i % per_file == 0:
            now += 1
            fd = logfiles.rotate(str(base), policy, now=now)
            assert fd is not None


def test_rotation_names_compresses_and_keeps_max_files(tmp_path: Path) -> None:
    base = tmp_path / "0.log"
    _write_rotating(base, 70, 10, logfiles.LogRotation(max_size=1, max_files=5))
    names = sorted(p.name for p in tmp_path.iterdir())
    # kubelet: <log>.<YYYYmmdd-HHMMSS>, the newest rotated file plain, older ones gzipped, 5 files in all.
    assert names == ["0.log", "0.log.20260101-000004.gz", "0.log.20260101-000005.gz",
                     "0.log.20260101-000006.gz", "0.log.20260101-000007"]
    assert gzip.decompress((tmp_path / "0.log.20260101-000004.gz").read_bytes()).startswith(_record(31))
    assert [Path(p).name for p in logfiles.chain(str(base))] == names[1:] + ["0.log"]


def test_two_rotations_in_one_second_wait_for_the_next(tmp_path: Path) -> None:
    base = tmp_path / "0.log"
    base.write_bytes(_record(1))
    policy = logfiles.LogRotation(max_size=1, max_files=5)
    assert logfiles.rotate(str(base), policy, now=T0) is not None
    base.write_bytes(_record(2))
    assert logfiles.rotate(str(base), policy, now=T0 + 0.5) is None
    assert base.read_bytes() == _record(2)


def test_read_lines_spans_rotated_files(tmp_path: Path) -> None:
    base = tmp_path / "0.log"
    _write_rotating(base, 75, 10, logfiles.LogRotation(max_size=1, max_files=5))
    got = [text for _, text in read_lines(base, 1000)]
    assert got == [f"line-{i}" for i in range(31, 76)]  # 4 rotated files (10 each) + the current 5
    assert [text for _, text in read_lines(base, 12)] == [f"line-{i}" for i in range(64, 76)]
    assert [text for _, text in read_lines(base, 5)] == [f"line-{i}" for i in range(71, 76)]


def test_the_shim_rotates_its_log(tmp_path: Path) -> None:
    # Three bursts of output, each one write the shim reads whole; each waits until the shim has rotated after the
    # one before and the wall clock has moved to another second (rotations happen at most once a second: rotated
    # files are named by the second).
    prog = [sys.executable, "-c",
            "import os, sys, time\n"
            "d = sys.argv[1]\n"
            "def newest():\n"
            "    return max((n[6:21] for n in os.listdir(d) if n.startswith('0.log.')), default='')\n"
            "for burst in range(3):\n"
            "    before = newest()\n"
            "    # one write under PIPE_BUF: the shim reads the burst whole, so it rotates once, after it\n"
            "    sys.stdout.write(''.join(f'line-{burst * 100 + i + 1}\\n' for i in range(100)))\n"
            "    sys.stdout.flush()\n"
            "    end = time.monotonic() + 20\n"
            "    while time.monotonic() < end and newest() == before:\n"
            "        time.sleep(0.02)\n"
            "    time.sleep(1.01 - time.time() % 1)\n",
            str(tmp_path)]
    subprocess.run([sys.executable, "-m", "sluice.runtime.shim", str(tmp_path), "0", "", "2000", "3", "--", *prog],
                   check=True, timeout=30)
    files = logfiles.chain(str(tmp_path / "0.log"))
    assert 2 <= len(files) <= 3, files
    assert all(Path(p).stat().st_size < 8000 for p in files)
    got = [text for _, text in read_lines(tmp_path / "0.log", 10_000)]
    assert got[-1] == "line-300"
    first = int(got[0].split("-")[1])
    assert got == [f"line-{i}" for i in range(first, 301)], "no line lost or repeated across the files"


def test_the_shim_keeps_the_old_command_line(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "sluice.runtime.shim", str(tmp_path), "0", "", "--", "echo", "hi"],
                   check=True, timeout=20)
    deadline = time.monotonic() + 5
    while not (tmp_path / "0.exit").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "0.log").read_text().endswith(" stdout F hi\n")


def test_rotation_settings_are_checked_like_the_kubelet_checks_them() -> None:
    import pytest

    from sluice.daemon.mesh_parts import log_rotation
    from sluice.daemon.state import DaemonOptions

    assert log_rotation(DaemonOptions()) == logfiles.LogRotation(10 * 1024 * 1024, 5)
    assert log_rotation(DaemonOptions(container_log_max_size="2Ki", container_log_max_files=3)) == \
        logfiles.LogRotation(2048, 3)
    with pytest.raises(SystemExit, match='failed to parse container log max size "ten"'):
        log_rotation(DaemonOptions(container_log_max_size="ten"))
    with pytest.raises(SystemExit, match="invalid container_log_max_files 1, must be > 1"):
        log_rotation(DaemonOptions(container_log_max_files=1))
