"""A full disk under SLUICE_HOME (issue 9, point 8): a real tmpfs of a few MB mounted as the daemon's home and
filled up. `kubectl apply` answers 507 naming the cause and the remedy, nothing is stored, reads keep
working, the daemon stays up, and the same apply succeeds once space is freed."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.metrics.series import Matcher, labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.tsdb import db as tsdb_db
from sluice.runtime import logfiles
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

FS_SIZE = "24m"


def _mount_tmpfs(size: str) -> Path:
    mnt = Path(tempfile.mkdtemp(prefix="sluice-fullfs-"))
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mnt)],
                        capture_output=True, text=True)
    if cp.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {cp.stderr.strip()}")
    return mnt


def _unmount(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], check=False)
    mnt.rmdir()


@pytest.fixture(scope="module")
def small_fs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = _mount_tmpfs(FS_SIZE)
    try:
        yield mnt
    finally:
        _unmount(mnt)


@pytest.fixture(scope="module")
def daemon(small_fs: Path) -> Iterator[Daemon]:
    home = small_fs / "home"
    home.mkdir()
    (home / "config.yaml").write_text("scrape_interval: 0.2\n")  # the TSDB writes its WAL often
    d = start_daemon(home)
    try:
        yield d
    finally:
        stop_daemon(d)


def fill(fs: Path) -> Path:
    """Write a filler file until the filesystem refuses more; return it (deleting it frees the space)."""
    filler = fs / "filler"
    block = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


def _configmap(name: str, size: int) -> str:
    # Bigger than whatever room SQLite's write-ahead log already has, so the write must grow a file.
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
            f"data:\n  blob: {'x' * size}\n")


def _kubectl(version: str, d: Daemon, cache: Path, *args: str, input: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / f"kubectl-{version}"), f"--cache-dir={cache}", *args], input=input,
                          env=d.env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", ["1.35", "1.20"])
def test_full_disk_answers_507_then_recovers(daemon: Daemon, small_fs: Path, tmp_path: Path, version: str) -> None:
    name = f"big-{version.replace('.', '')}"
    manifest = _configmap(name, 120_000)
    filler = fill(small_fs)
    try:
        cp = _kubectl(version, daemon, tmp_path, "apply", "-f", "-", input=manifest)
        assert cp.returncode != 0, cp.stdout
        assert "Error from server (InsufficientStorage)" in cp.stderr, cp.stderr
        assert "is full" in cp.stderr and "Free space on that filesystem and retry" in cp.stderr, cp.stderr
        assert "cannot rollback" not in cp.stderr
        # Nothing changed, and reads keep working while the disk is full.
        got = _kubectl(version, daemon, tmp_path, "get", "configmap", name)
        assert got.returncode != 0 and "NotFound" in got.stderr, got.stderr
        ns = _kubectl(version, daemon, tmp_path, "get", "namespace", "default", "-o", "name")
        assert ns.returncode == 0 and ns.stdout.strip() == "namespace/default", ns.stderr
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon is still running"
    finally:
        filler.unlink()
    # Space is back: the very same write now succeeds and is there to read.
    cp = _kubectl(version, daemon, tmp_path, "apply", "-f", "-", input=manifest)
    assert cp.returncode == 0, cp.stderr
    assert f"configmap/{name} created" in cp.stdout
    wait_for(lambda: _kubectl(version, daemon, tmp_path, "get", "configmap", name, "-o",
                              "jsonpath={.data.blob}").stdout == "x" * 120_000)


def _metric(d: Daemon, name: str) -> float:
    for line in _prom(d, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def test_full_disk_keeps_metrics_queries_working_and_the_wal_resumes(daemon: Daemon, small_fs: Path) -> None:
    wal_dir = daemon.home / "tsdb"
    failures = _metric(daemon, "prometheus_tsdb_wal_writes_failed_total")
    filler = fill(small_fs)
    try:
        wait_for(lambda: _metric(daemon, "prometheus_tsdb_wal_writes_failed_total") >= failures + 3)
        t = time.time()
        # Queries keep answering, with the samples the disk refused.
        wait_for(lambda: _count_at(daemon, time.time()) > _count_at(daemon, t))
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        filler.unlink()
    size = sum(p.stat().st_size for p in wal_dir.glob("wal-*"))
    wait_for(lambda: sum(p.stat().st_size for p in wal_dir.glob("wal-*")) > size)  # writing again
    stalled = _metric(daemon, "prometheus_tsdb_wal_writes_failed_total")
    wait_for(lambda: sum(p.stat().st_size for p in wal_dir.glob("wal-*")) > size + 2000)
    assert _metric(daemon, "prometheus_tsdb_wal_writes_failed_total") == stalled
    log = (daemon.home / "test-daemon.log").read_text()
    assert log.count("TSDB: cannot write the WAL") <= 2, "rate-limited"


# ---- the TSDB on a full disk: in-process, on its own small filesystem --------------------------------------

T0 = 1_700_000_000_000


def _scrape(db: TSDB, i: int) -> None:
    db.append(T0 + i * 5000, [(labels_of({"__name__": "req_total", "app": "a"}), float(i))], scrape_target="t")


def _req_values(db: TSDB) -> list[float]:
    return [v for s in db.select([Matcher("__name__", "=", "req_total")], 0, 2**62) for v in s.values]


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = _mount_tmpfs("1m")
    try:
        yield mnt
    finally:
        _unmount(mnt)


def test_tsdb_keeps_serving_on_a_full_disk_and_catches_up_when_space_returns(
        tiny_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = TSDB(tiny_fs / "tsdb")
    _scrape(db, 0)
    filler = fill(tiny_fs)
    with caplog.at_level(logging.WARNING, logger="sluice.metrics.tsdb"):
        for i in range(1, 200):
            _scrape(db, i)  # never raises
    assert _req_values(db) == [float(i) for i in range(200)], "queries see every sample meanwhile"
    assert db.wal_write_failures > 0
    warnings = [r.getMessage() for r in caplog.records if "cannot write the WAL" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one line per minute, not one per scrape
    assert "No space left on device" in warnings[0]
    filler.unlink()
    _scrape(db, 200)  # the first write with space writes everything held back
    db.close()
    db2 = TSDB(tiny_fs / "tsdb")
    assert _req_values(db2) == [float(i) for i in range(201)], "nothing was lost"
    db2.close()


async def test_tsdb_repairs_its_wal_with_a_snapshot_after_a_long_outage(
        tiny_fs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tsdb_db, "WAL_BACKLOG_BYTES", 2000)  # a long outage, in few scrapes
    db = TSDB(tiny_fs / "tsdb")
    _scrape(db, 0)
    filler = fill(tiny_fs)
    for i in range(1, 100):
        _scrape(db, i)
    await db.maintain()  # the snapshot cannot be written either; no exception, retried later
    assert _req_values(db) == [float(i) for i in range(100)]
    filler.unlink()
    await db.maintain()  # space is back: the snapshot holds everything, the WAL goes on from there
    _scrape(db, 100)
    db.close()
    db2 = TSDB(tiny_fs / "tsdb")
    assert _req_values(db2) == [float(i) for i in range(101)]
    db2.close()


# ---- a flipped byte in a real daemon's TSDB WAL ------------------------------------------------------------

def _prom(d: Daemon, path: str, **params: str) -> Any:
    run = json.loads((d.home / "daemon.json").read_text())
    url = f"http://127.0.0.1:{run['metrics_port']}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    return json.loads(body) if path.startswith("/api/") else body


def _count_at(d: Daemon, t: float) -> int:
    got = _prom(d, "/api/v1/query", query="count_over_time(sluice_telemetry_series[1h])", time=f"{t:.3f}")
    result = got["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def test_a_flipped_byte_mid_wal_loses_one_record_not_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("scrape_interval: 0.1\n")
    d = start_daemon(home)
    try:
        wait_for(lambda: _count_at(d, time.time()) >= 150, timeout=60)
        t_q = time.time()
        before = _count_at(d, t_q)
        assert d.proc is not None
        d.proc.terminate()
        d.proc.wait(30)
        (wal,) = sorted((home / "tsdb").glob("wal-*"))[-1:]
        data = bytearray(wal.read_bytes())
        data[len(data) // 3] ^= 0x20  # one byte, a third of the way in: before t_q
        wal.write_bytes(bytes(data))
        d = start_daemon(home, port=d.api_port, xds_port=d.xds_port)
        after = _count_at(d, t_q)
        assert before - 1 <= after <= before, (before, after)  # today's reader kept about a third
        metrics = _prom(d, "/metrics")
        assert "prometheus_tsdb_wal_corruptions_total 1" in metrics
        log = (home / "test-daemon.log").read_text()
        assert "is damaged at offset" in log and "kept the records after them" in log
    finally:
        stop_daemon(d)


# ---- a container's log on a full disk: lines are lost, the container is not ---------------------------------

def test_a_full_disk_drops_log_lines_not_the_container(tiny_fs: Path, tmp_path: Path) -> None:
    ctl = tmp_path  # the program's go/printed files live off the small filesystem
    prog = ("import os, time\n"
            "def wait(name):\n"
            "    while not os.path.exists(os.path.join(CTL, name)):\n"
            "        time.sleep(0.02)\n"
            "print('before', flush=True)\n"
            "wait('go1')\n"
            "for i in range(3000):\n"
            "    print('lost', i, flush=True)\n"
            "open(os.path.join(CTL, 'printed'), 'w').close()\n"
            "wait('go2')\n"
            "print('after', flush=True)\n").replace("CTL", repr(str(ctl)))
    logdir = tiny_fs / "c"
    logdir.mkdir()
    shim = subprocess.Popen([sys.executable, "-m", "sluice.runtime.shim", str(logdir), "0", "", "4096", "3", "--",
                             sys.executable, "-c", prog])
    try:
        wait_for(lambda: (logdir / "0.log").exists() and b"before" in (logdir / "0.log").read_bytes())
        filler = fill(tiny_fs)
        (ctl / "go1").touch()
        wait_for(lambda: (ctl / "printed").exists())
        filler.unlink()
        (ctl / "go2").touch()
        assert shim.wait(30) == 0
    finally:
        if shim.poll() is None:
            shim.kill()
            shim.wait()
    code = (logdir / "0.exit").read_text().split()[0]
    assert code == "0", "the program ran to its end"
    records = b"".join(logfiles.read_whole(p) for p in logfiles.chain(str(logdir / "0.log"))).splitlines()
    assert records[-1].endswith(b" stdout F after")
    assert sum(b" lost " in r for r in records) < 3000, "the disk was full meanwhile"
    assert all(r.split(b" ", 3)[1:3] == [b"stdout", b"F"] for r in records), "no half-written record"
