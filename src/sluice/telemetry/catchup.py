"""Counting what ALS missed: a ledger of counted requests, fed by ALS entries and by the sidecars' log files.

Every sidecar logs each request twice: an ALS entry (what the daemon counts live) and Istio's TEXT line in
its `istio-proxy` container log on disk (`<pods>/<uid>/containers/istio-proxy/<N>.log`, CRI records written by
`sluice.runtime.shim`; `<pods>/<uid>/pod.json` names the pod and `envoy.json` holds its proxy's node). ALS
entries are lost when the daemon is down or killed with entries in flight; the file keeps them. So:

- `admit` (the servicer's hook, once per ALS HTTP entry) remembers the entry's key as *pending* — counted,
  its line not read yet — or refuses the entry when its line was already counted from the file;
- `scan` reads each sidecar's log from where it stopped: a line whose key is pending is settled; a line with
  no ALS entry after `grace` seconds (right away at start-up and shutdown, when no entry can still come
  for it) is counted from the file, through the servicer's own code, and its key kept so that a late ALS
  entry is refused. Reading stops at the first line still inside the grace period.

`dump`/`restore` carry the read positions and both key sets across a restart, in the same checkpoint as the
registry's values (`sluice.telemetry.collector`), so what one process counted is never counted again by the
next and what it had not written down is counted from the files. Keys are `textlog.entry_key`/`line_key`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2
from google.protobuf import json_format

from sluice import mesh
from sluice.xds.identity import ProxyIdentity

from .textlog import Key, raw_key, split_line, to_entry, to_line

__all__ = ["Ledger", "GRACE_S"]

log = logging.getLogger(__name__)

GRACE_S = 5.0  # ALS batches every second; an entry later than this is refused if its line was counted
PENDING_KEEP_S = 600.0  # an ALS entry whose line has not been read (its file may be behind): kept this long
COUNTED_KEEP_S = 30.0  # a line counted from the file: its ALS entry can only come soon after (a reconnect)
MAX_KEYS = 200_000  # per sidecar and set: beyond it the oldest keys go
_READ = 1 << 20
_WAIT = object()

SidecarKey = tuple[str, str, str]  # (namespace, pod, pod IP)


def _stamp(seconds: float) -> bytes:
    """A CRI record time in the shim's fixed format, so that records compare with it as bytes."""
    ns = int(seconds * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z").encode()


class _Keys:
    """A multiset of keys with the time each was first added, oldest first. Two requests may share a key (a
    client that sends one x-request-id on concurrent requests): each occurrence is settled once."""

    __slots__ = ("first", "more")

    def __init__(self) -> None:
        self.first: dict[Key, float] = {}
        self.more: dict[Key, int] = {}  # extra occurrences of a key, beyond the first

    def __len__(self) -> int:
        return len(self.first)

    def __contains__(self, key: Key) -> bool:
        return key in self.first

    def add(self, key: Key, now: float) -> None:
        if key in self.first:
            self.more[key] = self.more.get(key, 0) + 1
        else:
            self.first[key] = now

    def take(self, key: Key) -> bool:
        """Remove one occurrence; False if there is none."""
        if key not in self.first:
            return False
        n = self.more.pop(key, 0)
        if n:
            if n > 1:
                self.more[key] = n - 1
        else:
            del self.first[key]
        return True

    def expire(self, before: float) -> None:
        """Drop keys added before `before`, and the oldest beyond MAX_KEYS (dicts keep insertion order)."""
        doomed: list[Key] = []
        first = self.first
        for k, t in first.items():
            if t >= before and len(first) - len(doomed) <= MAX_KEYS:
                break
            doomed.append(k)
        for k in doomed:
            del first[k]
            self.more.pop(k, None)

    def dump(self) -> list[Any]:
        return [[list(k), t, self.more.get(k, 0)] for k, t in self.first.items()]

    @classmethod
    def load(cls, rows: Any) -> _Keys:
        keys = cls()
        for k, t, more in rows or []:
            key = (str(k[0]), int(k[1]), str(k[2]), int(k[3]), int(k[4]))
            keys.first[key] = float(t)
            if more:
                keys.more[key] = int(more)
        return keys


@dataclass(eq=False)
class _Sidecar:
    key: SidecarKey
    uid: str = ""
    attempt: int = -1  # N of the N.log being read; -1: the oldest there is
    inode: int = 0
    head: bytes = b""  # the file's first bytes: an inode number is reused once a rotated file is compressed
    offset: int = 0
    mtime_ns: int = 0  # the file's modification time when last opened (with `inode`, tells it is the same file)
    # The time of the last settled line and how many settled lines had that time: where to resume when the
    # file being read was rotated and compressed before it was finished.
    last_ts: bytes = b""
    last_k: int = 0
    skip: tuple[bytes, int] | None = None  # while re-reading rotated files: (last_ts, last_k) to skip up to
    pending: _Keys = field(default_factory=lambda: _Keys())  # counted over ALS, line not read yet
    counted: _Keys = field(default_factory=lambda: _Keys())  # counted from the file
    stream: Any = None


class Ledger:
    """Not thread-safe: the daemon's event loop owns it (ALS handlers, the scan task, checkpoints)."""

    def __init__(self, servicer: Any, pods_dir: Path, *, grace: float = GRACE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.servicer = servicer
        self.pods_dir = pods_dir
        self.grace = grace
        self._clock = clock
        self.sidecars: dict[SidecarKey, _Sidecar] = {}
        self._dirs: dict[str, SidecarKey | None] = {}  # pod uid → its sidecar (None: no proxy there, yet)
        self._replaying = False
        # Whether the sidecars write Istio's TEXT lines (the mesh config); while they do not, lines are passed
        # over (another format, or lines written before the switch whose entries were never remembered).
        self.file_lines = True
        self._budget = 0
        self.behind = False  # the last scan stopped at its budget, not at the end of what it could settle
        self.recovered = 0  # entries counted from the files
        self.refused = 0  # ALS entries refused because the file had counted them
        self.unattributed = 0  # lines of a proxy whose node could not be read

    # ------------------------------------------------------------------ ALS side (hot path)
    def admit(self, st: Any, request_id: str, cp: Any, code: int) -> bool:
        """Whether the servicer should count an ALS entry of stream `st` (see the module docstring). Once per
        entry: `textlog.key_of` and `_Keys.add` written out, as calls cost here."""
        if self._replaying:
            return True
        own = st.own
        k = (own.namespace, own.pod, own.ip)
        sc = self.sidecars.get(k)
        if sc is None:
            sc = self.sidecars[k] = _Sidecar(k)
        t = cp.start_time
        local = cp.downstream_local_address.socket_address
        key = (request_id, t.seconds * 1000 + t.nanos // 1_000_000, local.address, local.port_value, code)
        if sc.counted.first and sc.counted.take(key):
            self.refused += 1
            return False
        first = sc.pending.first
        if key in first:
            more = sc.pending.more
            more[key] = more.get(key, 0) + 1
        else:
            first[key] = self._clock()
        return True

    # ------------------------------------------------------------------ file side
    def scan(self, final: bool = False, budget: int = 20_000) -> int:
        """Read every sidecar's log as far as it can be settled; `final`: no ALS entry can still come, so
        count every unmatched line now. At most `budget` lines per call: `behind` says whether more are waiting
        (the caller yields to the event loop and calls again). Returns the entries counted from the files."""
        before = self.recovered
        self._budget = budget
        self.behind = False
        now = self._clock()
        threshold = None if final else _stamp(now - self.grace)
        present = self._discover()
        for uid, k in present.items():
            sc = self.sidecars.get(k)
            if sc is None:
                sc = self.sidecars[k] = _Sidecar(k)
            sc.uid = uid
            try:
                self._read(sc, uid, threshold, final, now)
            except (OSError, EOFError) as e:  # the pod went while we read, a disk fault, a cut .gz: next time
                log.debug("reading the access log of %s/%s: %s", k[0], k[1], e)
        live = set(present.values())
        for k, sc in list(self.sidecars.items()):
            sc.pending.expire(now - PENDING_KEEP_S)
            sc.counted.expire(now - COUNTED_KEEP_S)
            if k not in live and (sc.uid or (not sc.pending and not sc.counted)):
                del self.sidecars[k]  # its pod directory is gone (deleted pod), or nothing is left to remember
        return self.recovered - before

    def _discover(self) -> dict[str, SidecarKey]:
        out: dict[str, SidecarKey] = {}
        try:
            uids = [e.name for e in os.scandir(self.pods_dir) if e.is_dir()]
        except FileNotFoundError:
            uids = []
        for uid in uids:
            k = self._dirs.get(uid)
            if k is None:  # read once it names a pod with a proxy (its containers appear after pod.json)
                k = self._dirs[uid] = _sidecar_of(self.pods_dir / uid)
            if k is not None:
                out[uid] = k
        for uid in [u for u in self._dirs if u not in out and not (self.pods_dir / u).is_dir()]:
            del self._dirs[uid]
        return out

    def _read(self, sc: _Sidecar, uid: str, threshold: bytes | None, final: bool, now: float) -> None:
        # Plain strings until there is something to read: paths built with pathlib for every sidecar every
        # second cost more than the directory listing and the stat that usually settle it.
        logs_dir = f"{self.pods_dir}/{uid}/containers/{mesh.SIDECAR_CONTAINER}"
        runs = _runs(logs_dir)
        if not runs:
            return
        if sc.attempt < runs[0]:
            sc.attempt, sc.inode, sc.offset, sc.head = runs[0], 0, 0, b""
        if sc.attempt == runs[-1] and _unchanged(sc, f"{logs_dir}/{sc.attempt}.log"):
            return  # nothing written since it was read to the end: most sidecars, most seconds
        pod_dir = self.pods_dir / uid
        logs = Path(logs_dir)
        while True:
            path = logs / f"{sc.attempt}.log"
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                f = None
            if f is not None:
                with f:
                    st = os.fstat(f.fileno())
                    if sc.inode and not _same(sc, st.st_ino, f):
                        if not self._rotated(sc, pod_dir, logs / f"{sc.attempt}.log", threshold, now):
                            return
                        sc.offset, sc.head = 0, b""
                    sc.inode, sc.mtime_ns = st.st_ino, st.st_mtime_ns
                    if len(sc.head) < 64:
                        sc.head = _head(f)
                    if st.st_size < sc.offset:
                        sc.offset = 0  # truncated
                    if not self._consume(sc, pod_dir, f, threshold, now):
                        return
            later = [n for n in runs if n > sc.attempt]
            if not later:
                return
            # The shim writes N.exit once it has drained the run's output: only then is N.log complete.
            if f is not None and not final and not (logs / f"{sc.attempt}.exit").exists():
                return
            sc.attempt, sc.inode, sc.offset, sc.head = later[0], 0, 0, b""

    def _rotated(self, sc: _Sidecar, pod_dir: Path, current: Path, threshold: bytes | None, now: float) -> bool:
        """The file being read was rotated (kubelet's scheme: `N.log` renamed `N.log.<stamp>`, older ones
        gzip-compressed to `.gz`). Finish it where it still lies plain (same inode); if it has been compressed
        since, read the rotated files in order and skip what was settled — every record before the last
        settled one's time, and the first `last_k` records at that time. False if stopped (grace, budget)."""
        files = _rotated_files(current)
        for i, path in enumerate(files):
            if path.name.endswith(".gz"):
                continue
            with open(path, "rb") as f:
                if not _same(sc, os.fstat(f.fileno()).st_ino, f):
                    continue
                if not self._consume(sc, pod_dir, f, threshold, now):
                    return False
            return self._chain(sc, pod_dir, files[i + 1:], threshold, now)
        sc.skip = (sc.last_ts, sc.last_k)
        return self._chain(sc, pod_dir, files, threshold, now)

    def _chain(self, sc: _Sidecar, pod_dir: Path, files: list[Path], threshold: bytes | None, now: float) -> bool:
        for path in files:
            sc.offset = 0
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as f:
                if not self._consume(sc, pod_dir, f, threshold, now):
                    # An offset in this file means nothing next time (it has no inode of its own once
                    # compressed): resume by the last settled line's time instead.
                    sc.inode = -1
                    return False
        return True

    def _consume(self, sc: _Sidecar, pod_dir: Path, f: Any, threshold: bytes | None, now: float) -> bool:
        """Settle complete lines from `sc.offset`; False when stopped at a line still in its grace period."""
        entries: list[Any] = []
        try:
            while True:
                if self._budget <= 0:
                    self.behind = True
                    return False
                f.seek(sc.offset)
                data = f.read(_READ)
                cut = data.rfind(b"\n")
                if cut < 0:
                    return True
                start = sc.offset
                base = sc.offset
                pos = 0
                line_start = -1
                first_ts = b""
                pieces: list[bytes] = []
                for rec in data[:cut].split(b"\n"):
                    end = pos + len(rec) + 1
                    parts = rec.split(b" ", 3)
                    if len(parts) < 4 or parts[1] != b"stdout":  # Envoy's own log (stderr), or not CRI
                        if line_start < 0:
                            sc.offset = base + end
                        pos = end
                        continue
                    ts, _, tag, content = parts
                    if line_start < 0:
                        line_start, first_ts = base + pos, ts
                    pieces.append(content)
                    pos = end
                    if tag == b"P":
                        continue
                    text = b"".join(pieces).decode("utf-8", errors="replace")
                    pieces = []
                    if sc.skip is not None and _settled_before(sc, first_ts):
                        pass  # read again after a rotation: settled already
                    elif self._line(sc, text, first_ts, threshold, entries, now) is _WAIT:
                        sc.offset = line_start
                        return False
                    if first_ts == sc.last_ts:
                        sc.last_k += 1
                    else:
                        sc.last_ts, sc.last_k = first_ts, 1
                    line_start = -1
                    sc.offset = base + end
                    self._budget -= 1
                    if self._budget <= 0:
                        self.behind = True
                        return False
                if sc.offset == start:
                    return True  # only the start of a long line so far
        finally:
            if entries:
                self._feed(sc, pod_dir, entries)

    def _line(self, sc: _Sidecar, text: str, ts: bytes, threshold: bytes | None, entries: list[Any],
              now: float) -> object:
        raw = split_line(text) if self.file_lines else None
        if raw is None:
            return None
        key = raw_key(raw)
        if sc.pending.take(key):
            return None
        if threshold is not None and ts > threshold:
            return _WAIT
        entries.append(to_entry(to_line(raw)))
        sc.counted.add(key, now)
        return None

    def _feed(self, sc: _Sidecar, pod_dir: Path, entries: list[Any]) -> None:
        """Count recovered entries through the servicer, as if its ALS stream had sent them."""
        if sc.stream is None:
            sc.stream = self._open(pod_dir)
        if sc.stream is None:
            self.unattributed += len(entries)
            log.warning("cannot attribute %d access-log lines of %s/%s: its proxy cannot be identified",
                        len(entries), sc.key[0], sc.key[1])
            return
        msg = als_pb2.StreamAccessLogsMessage()
        msg.http_logs.log_entry.extend(entries)
        stats = self.servicer.stats
        self._replaying = True
        try:
            self.servicer.handle(sc.stream, msg)
        finally:
            self._replaying = False
            stats.http_entries -= len(entries)  # they did not come over ALS
        self.recovered += len(entries)

    def _open(self, pod_dir: Path) -> Any:
        """The stream the proxy's ALS would open: its node is in the bootstrap the pod was started with, and
        where streams must prove their pod (`require_identity`), the pod directory is the proof — the runtime
        made it, and the proxy's log in it holds only what that proxy wrote. None if it cannot be read."""
        try:
            node = json_format.ParseDict(json.loads((pod_dir / "envoy.json").read_text())["node"], base_pb2.Node(),
                                         ignore_unknown_fields=True)
            if not getattr(self.servicer, "require_identity", False):
                stream = self.servicer._open(node)
            else:
                stream = self.servicer._open(node, _identity(pod_dir, str(node.id)))
        except (OSError, ValueError, KeyError, TypeError, ImportError, AttributeError, json_format.ParseError):
            return None
        return stream if hasattr(stream, "own") else None  # a refused stream counts nothing

    # ------------------------------------------------------------------ persistence
    def dump(self) -> list[dict[str, Any]]:
        return [{"namespace": k[0], "pod": k[1], "ip": k[2], "uid": sc.uid, "attempt": sc.attempt,
                 "inode": sc.inode, "head": sc.head.hex(), "offset": sc.offset, "last_ts": sc.last_ts.decode("ascii", "replace"),
                 "last_k": sc.last_k, "pending": sc.pending.dump(),
                 "counted": sc.counted.dump()} for k, sc in self.sidecars.items()]

    def restore(self, data: list[dict[str, Any]]) -> None:
        for d in data:
            k = (str(d["namespace"]), str(d["pod"]), str(d["ip"]))
            self.sidecars[k] = _Sidecar(
                k, uid=str(d.get("uid") or ""), attempt=int(d.get("attempt", -1)), inode=int(d.get("inode", 0)),
                head=bytes.fromhex(str(d.get("head") or "")),
                offset=int(d.get("offset", 0)), last_ts=str(d.get("last_ts") or "").encode(),
                last_k=int(d.get("last_k", 0)), pending=_Keys.load(d.get("pending")),
                counted=_Keys.load(d.get("counted")))


def _head(f: Any) -> bytes:
    f.seek(0)
    return bytes(f.read(64))


def _runs(logs: str) -> list[int]:
    """The N of each `N.log` in a container's log directory, in order. A directory listing, not a pathlib
    glob: this runs for every sidecar every second, and the glob was most of a scan's time."""
    try:
        names = os.listdir(logs)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(n[:-4]) for n in names if n.endswith(".log") and n[:-4].isascii() and n[:-4].isdecimal())


def _unchanged(sc: _Sidecar, path: str) -> bool:
    """Whether `path` is the file `sc` read last and it has been read to its end: nothing to open. Its size
    equals the offset only when every line was settled (a line waiting out its grace period, a cut line or a
    spent budget leave the offset short of it); the inode and modification time tell a new file apart."""
    if not sc.inode or sc.skip is not None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_ino == sc.inode and st.st_size == sc.offset and st.st_mtime_ns == sc.mtime_ns


def _same(sc: _Sidecar, inode: int, f: Any) -> bool:
    """Whether open file `f` (with `inode`) is the one `sc` was reading."""
    return inode == sc.inode and _head(f)[:len(sc.head)] == sc.head  # a head read short may have grown since


def _settled_before(sc: _Sidecar, ts: bytes) -> bool:
    """In skip mode (`sc.skip`): whether the line stamped `ts` was settled before the rotation; the first
    line that was not ends skip mode. Lines are settled in file order, so time order."""
    assert sc.skip is not None
    until, k = sc.skip
    if ts < until:
        return True
    if ts == until and k > 0:
        sc.skip = (until, k - 1)
        return True
    sc.skip = None
    return False


def _rotated_files(current: Path) -> list[Path]:
    """`N.log.<YYYYmmdd-HHMMSS>[.gz]` beside `N.log`, oldest first; a stamp with both (being compressed)
    counts once, as its `.gz` (written under a temporary name and renamed, so complete when it exists)."""
    prefix = current.name + "."
    found: dict[str, Path] = {}
    try:
        names = [p for p in current.parent.iterdir() if p.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    for p in names:
        rest = p.name[len(prefix):]
        stamp = rest[:-3] if rest.endswith(".gz") else rest
        if len(stamp) != 15 or stamp[8] != "-" or not (stamp[:8] + stamp[9:]).isdigit():
            continue
        if rest.endswith(".gz") or stamp not in found:
            found[stamp] = p
    return [found[k] for k in sorted(found)]


def _identity(pod_dir: Path, node_id: str) -> Any:
    """The `ProxyIdentity` the daemon issued to this pod's proxy, from the runtime's `pod.json`."""
    parsed = mesh.parse_node_id(node_id)
    if parsed is None:
        raise ValueError(f"unknown node id {node_id!r}")
    kind, ip, pod, namespace = parsed
    info = json.loads((pod_dir / "pod.json").read_text())["pod"]
    spec = info.get("spec") or {}
    return ProxyIdentity(kind=kind, ip=ip, pod=pod, namespace=namespace, uid=str(info["metadata"].get("uid") or ""),
                    service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"))


def _sidecar_of(pod_dir: Path) -> SidecarKey | None:
    """(namespace, name, IP) from the runtime's `pod.json`, if the pod runs a proxy."""
    if not (pod_dir / "containers" / mesh.SIDECAR_CONTAINER).is_dir() and not (pod_dir / "envoy.json").exists():
        return None
    try:
        info = json.loads((pod_dir / "pod.json").read_text())
        meta = info["pod"]["metadata"]
        return str(meta.get("namespace") or "default"), str(meta["name"]), str(info["ip"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
