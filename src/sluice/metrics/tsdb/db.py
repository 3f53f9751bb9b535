"""The embedded time-series database: scrape ingestion with staleness, selection, retention, persistence.

The daemon's scraper calls `TSDB.append` once per scrape of one target; the PromQL engine and the HTTP API
read through the `Storage` methods (`select`, `label_names`, `label_values`) and `series`.

Layout in memory: one `_Series` per series id with a *head* (the newest ≤ 120 samples as `array('q')` and
`array('d')`) and a list of sealed, compressed chunks (`chunks.encode`). On disk (`path`): `wal-N` files of
framed records (new series, targets, one record per scrape) and at most one `snapshot-N` holding every
series' chunks and head as of the moment `wal-N` was started. Recovery loads the newest complete snapshot and
replays `wal-N`, `wal-N+1`, … through the same code path as live appends, so it rebuilds exactly the same
chunks; a torn record at a WAL's end (crash, `kill -9`) is cut off, a damaged one in the middle is skipped,
logged and counted (`wal` has the file format). A full disk never stops ingestion or queries: WAL bytes wait
in memory until a write succeeds (see `_commit`). `compact` (or `maintain`) writes a new
snapshot — serialisation can run in a worker thread, as it only touches immutable chunk bytes and copies — and
then deletes what it superseded, which is also how data past retention leaves the disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sluice.metrics.series import STALE_NAN, Labels, Matcher, Part, Series
from sluice.metrics.tsdb import chunks as chunkcodec
from sluice.metrics.tsdb import records as rec
from sluice.metrics.tsdb import wal as walfile
from sluice.metrics.tsdb.index import SeriesIndex
from sluice.ratelog import RateLimitedLog

__all__ = ["TSDB", "TSDBStats"]

_MIN_T = -(2**63)
DEFAULT_RETENTION_MS = 24 * 3600 * 1000
# Compact once the WAL holds this much: replaying 16 MiB (≈1.4 M samples) on start takes about a second.
DEFAULT_WAL_COMPACT_BYTES = 16 << 20
# WAL bytes kept in memory while the disk refuses them (full disk): written as soon as a write succeeds again.
# Past this, they are dropped and the next `maintain` writes a snapshot instead (see `_commit`).
WAL_BACKLOG_BYTES = 32 << 20

log = logging.getLogger("sluice.metrics.tsdb")


class _Series:
    __slots__ = ("head_t", "head_v", "chunks", "chunk_max", "last_t")

    def __init__(self) -> None:
        self.head_t = array("q")
        self.head_v = array("d")
        self.chunks: list[bytes] = []
        self.chunk_max = array("q")  # max timestamp of each sealed chunk, ascending
        self.last_t = _MIN_T

    def min_t(self) -> int:
        if self.chunks:
            return chunkcodec.first_timestamp(self.chunks[0])
        return self.head_t[0] if self.head_t else _MIN_T

    def seal(self) -> None:
        self.chunks.append(chunkcodec.encode(self.head_t, self.head_v))
        self.chunk_max.append(self.head_t[-1])
        self.head_t = array("q")
        self.head_v = array("d")

    def snapshot(self, start: int) -> tuple[list[bytes], array[int], array[float]]:
        """What `read_snapshot` needs, copied under the TSDB's lock: the sealed chunks that may hold samples
        at or after `start` (immutable bytes, shared) and a copy of the head (which appends change)."""
        lo = bisect_left(self.chunk_max, start)
        return self.chunks[lo:], self.head_t[:], self.head_v[:]

    def overlaps(self, start: int, end: int) -> bool:
        return self.last_t >= start and self.last_t != _MIN_T and self.min_t() <= end


def _pieces(snap: tuple[list[bytes], array[int], array[float]], end: int) -> list[tuple[array[int], array[float]]]:
    """The decoded chunks and the head copy of a snapshot that start by `end`, in time order."""
    chunk_list, head_t, head_v = snap
    parts: list[tuple[array[int], array[float]]] = []
    for chunk in chunk_list:
        if chunkcodec.first_timestamp(chunk) > end:
            break
        parts.append(chunkcodec.decode_cached(chunk))
    if head_t and head_t[0] <= end:
        parts.append((head_t, head_v))
    return parts


def _read_snapshot(snap: tuple[list[bytes], array[int], array[float]], start: int,
                   end: int) -> tuple[array[int], array[float]]:
    parts = _pieces(snap, end)
    if len(parts) == 1:  # a short range within one chunk: slice it, no concatenation
        ct, cv = parts[0]
        lo, hi = bisect_left(ct, start), bisect_right(ct, end)
        return ct[lo:hi], cv[lo:hi]
    ts = array("q")
    vs = array("d")
    for ct, cv in parts:
        ts.extend(ct)
        vs.extend(cv)
    return _clip(ts, vs, start, end)


def _snapshot_parts(snap: tuple[list[bytes], array[int], array[float]], start: int, end: int) -> list[Part]:
    """`_read_snapshot`'s samples as pieces, without joining them. The pieces follow one another in time, so
    only the first can start before `start` and only the last end after `end`: those two are cut."""
    parts: list[Part] = _pieces(snap, end)
    if not parts:
        return parts
    # A chunk's worth at most is copied at either end: a copy costs less than a view.
    ct, cv = parts[0]
    lo = bisect_left(ct, start)
    hi = bisect_right(ct, end) if len(parts) == 1 else len(ct)
    if lo or hi < len(ct):
        parts[0] = (ct[lo:hi], cv[lo:hi])
    if len(parts) > 1:
        ct, cv = parts[-1]
        hi = bisect_right(ct, end)
        if hi < len(ct):
            parts[-1] = (ct[:hi], cv[:hi])
    # Only the two cut ends can have come out empty.
    if not len(parts[-1][0]):
        parts.pop()
    if parts and not len(parts[0][0]):
        parts.pop(0)
    return parts


def _clip(ts: array[int], vs: array[float], start: int, end: int) -> tuple[array[int], array[float]]:
    lo = bisect_left(ts, start)
    hi = bisect_right(ts, end)
    if lo == 0 and hi == len(ts):
        return ts, vs
    return ts[lo:hi], vs[lo:hi]


@dataclass
class TSDBStats:
    series: int
    head_samples: int
    chunks: int
    chunk_samples: int
    chunk_bytes: int
    disk_bytes: int
    out_of_order: int


@dataclass
class _Capture:
    """Everything a snapshot needs, copied on the event loop so the writer can run in a thread."""

    seq: int
    tmp: Path
    final: Path
    next_sid: int
    series: list[tuple[int, Labels, list[bytes], array[int], array[int], array[float]]]
    targets: list[tuple[int, str, array[int]]]
    done: bool = field(default=False)

    def write(self) -> None:
        with open(self.tmp, "wb") as f:
            buf: list[bytes] = []
            size = 0
            for sid, labels, chunk_list, cmax, ht, hv in self.series:
                buf.append(rec.frame(rec.encode_series(sid, labels)))
                for c, mx in zip(chunk_list, cmax, strict=True):
                    buf.append(rec.frame(rec.encode_chunk(sid, mx, c)))
                    size += len(c)
                if ht:
                    buf.append(rec.frame(rec.encode_head(sid, ht, hv)))
                if size > 1 << 20:
                    f.write(b"".join(buf))
                    buf.clear()
                    size = 0
            for tid, name, last in self.targets:
                buf.append(rec.frame(rec.encode_target(tid, name)))
                buf.append(rec.frame(rec.encode_last(tid, last)))
            buf.append(rec.frame(bytes([rec.END]) + self.next_sid.to_bytes(4, "little")))
            f.write(b"".join(buf))
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        self.done = True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seq(p: Path) -> int:
    """The sequence number in `wal-N` / `snapshot-N`; -1 for anything else (temporary or foreign files)."""
    tail = p.name.split("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


class TSDB:
    """An embedded Prometheus-style TSDB; `path=None` keeps everything in memory.

    Writes (`append`, retention, the start of a compaction) come from the daemon's event loop; `select` may
    run in query worker threads at the same time. A lock makes each write atomic for readers: a reader takes
    it only briefly, to pick the matching series ids and copy a batch of series' chunk lists and heads, and
    decodes outside it, so it never sees a half-appended head or a chunk sealed twice, and a query never holds
    the lock for long.
    """

    _SELECT_BATCH = 256  # series copied per hold of the lock

    def __init__(self, path: Path | None, *, retention_ms: int = DEFAULT_RETENTION_MS,
                 wal_compact_bytes: int = DEFAULT_WAL_COMPACT_BYTES) -> None:
        self.path = path
        self.retention_ms = retention_ms
        self.wal_compact_bytes = wal_compact_bytes
        self._lock = threading.RLock()
        self._reset()
        self._wal: walfile.WalWriter | None = None
        self._pending: list[bytes] = []
        self._backlog: list[bytes] = []  # WAL bytes a failed write left unwritten, oldest first
        self._backlog_bytes = 0
        self._wal_incomplete = False  # the WAL lost records (backlog overflow): only a snapshot repairs it
        self.wal_corruptions = 0  # damaged WAL regions skipped at recovery (prometheus_tsdb_wal_corruptions_total)
        self.wal_write_failures = 0  # failed WAL writes (prometheus_tsdb_wal_writes_failed_total)
        self._ratelog = RateLimitedLog(log, period=60.0)
        self._wal_seq = 0
        self._wal_bytes = 0
        self._compacting = False
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._recover(path)
            self.apply_retention()
            self._open_wal(self._wal_seq + 1)

    def _reset(self) -> None:
        self._index = SeriesIndex()
        self._series: list[_Series | None] = []
        self._targets: dict[str, int] = {}
        self._target_names: list[str] = []
        self._last: dict[int, set[int]] = {}  # target id → series ids present in its last scrape
        self._scrape_cache: dict[int, dict[int, tuple[Labels, int]]] = {}
        self._min_t = _MIN_T
        self._max_t = _MIN_T
        self._out_of_order = 0

    # ---- ingestion -------------------------------------------------------------------------------------

    def append(self, t_ms: int, samples: Iterable[tuple[Labels, float]], *, scrape_target: str) -> int:
        """Record one scrape of `scrape_target` at `t_ms`; returns the number of samples stored.

        Series the target exposed last time but not now get Prometheus's stale marker at `t_ms` (an empty
        `samples` is a failed scrape: everything goes stale). A sample at or before its series' newest
        timestamp is dropped, as Prometheus drops out-of-order and duplicate samples.
        """
        with self._lock:
            return self._append(t_ms, samples, scrape_target)

    def _append(self, t_ms: int, samples: Iterable[tuple[Labels, float]], scrape_target: str) -> int:
        tid = self._targets.get(scrape_target)
        if tid is None:
            tid = self._new_target(scrape_target)
        get = self._index.get
        series = self._series
        sids = array("I")
        values = array("d")
        present: set[int] = set()
        # Prometheus keeps a per-target scrape cache so a known series costs no label hashing; here the key is
        # the identity of the Labels tuple (collectors hand out the same tuple every scrape), checked with
        # `is` because the cache holds the tuple and so its id cannot be reused meanwhile.
        cache = self._scrape_cache.get(tid)
        if cache is None or len(cache) > 2 * len(self._last.get(tid, ())) + 1024:
            cache = self._scrape_cache[tid] = {}
        for labels, v in samples:
            hit = cache.get(id(labels))
            if hit is not None and hit[0] is labels:
                sid = hit[1]
            else:
                found = get(labels)
                sid = self._new_series(labels) if found is None else found
                cache[id(labels)] = (labels, sid)
            s = series[sid]
            if s is None or t_ms <= s.last_t or sid in present:  # out of order, or twice in one scrape
                present.add(sid)
                self._out_of_order += 1
                continue
            present.add(sid)
            sids.append(sid)
            values.append(v)
        stale = array("I")
        prev = self._last.get(tid)
        if prev:
            for sid in sorted(prev - present):
                s = series[sid]
                if s is not None and s.last_t < t_ms:
                    stale.append(sid)
        self._log(rec.encode_samples(t_ms, tid, sids, values, stale))
        self._commit()
        self._apply(t_ms, tid, sids, values, stale, present)
        return len(sids)

    def drop_target(self, t_ms: int, scrape_target: str) -> None:
        """The target is gone (pod deleted): mark all its series stale now, as Prometheus does."""
        if scrape_target in self._targets:
            self.append(t_ms, (), scrape_target=scrape_target)

    def _apply(self, t_ms: int, tid: int, sids: array[int], values: array[float], stale: array[int],
               present: set[int]) -> None:
        series = self._series
        limit = chunkcodec.CHUNK_SAMPLES
        for sid, v in zip(sids, values, strict=True):
            s = series[sid]
            if s is None:  # only when replaying a WAL written before retention removed the series
                continue
            s.head_t.append(t_ms)
            s.head_v.append(v)
            s.last_t = t_ms
            if len(s.head_t) >= limit:
                s.seal()
        for sid in stale:
            s = series[sid]
            if s is not None:
                s.head_t.append(t_ms)
                s.head_v.append(STALE_NAN)
                s.last_t = t_ms
                if len(s.head_t) >= limit:
                    s.seal()
        self._last[tid] = present
        if sids or stale:
            if t_ms > self._max_t:
                self._max_t = t_ms
            if self._min_t == _MIN_T or t_ms < self._min_t:
                self._min_t = t_ms

    def _new_series(self, labels: Labels) -> int:
        sid = self._index.add(labels)
        self._log(rec.encode_series(sid, self._index.labels[sid] or labels))
        self._put_series(sid)
        return sid

    def _put_series(self, sid: int) -> None:
        while len(self._series) <= sid:
            self._series.append(None)
        self._series[sid] = _Series()

    def _put_target(self, tid: int, name: str) -> None:
        """Register a target read back from the snapshot or the WAL under its recorded id."""
        self._targets[name] = tid
        while len(self._target_names) <= tid:
            self._target_names.append("")
        self._target_names[tid] = name

    def _new_target(self, name: str) -> int:
        tid = len(self._target_names)
        self._targets[name] = tid
        self._target_names.append(name)
        self._log(rec.encode_target(tid, name))
        return tid

    # ---- reading -----------------------------------------------------------------------------------------

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> Iterator[Series]:
        """Series matching all matchers with their samples in [start_ms, end_ms], stale markers included.

        A generator: each step decodes one series' overlapping chunks. Safe to call from another thread than
        the writer's (see the class docstring).
        """
        for item in self._selected(matchers, start_ms, end_ms):
            if isinstance(item, Series):
                yield item
                continue
            lab, snap = item
            ts, vs = _read_snapshot(snap, start_ms, end_ms)
            if ts:
                yield Series(lab, ts, vs)

    def select_parts(self, matchers: Sequence[Matcher], start_ms: int,
                     end_ms: int) -> Iterator[tuple[Labels, list[Part]]]:
        """`select`'s series as the pieces their samples come in (decoded chunks, a copy of the head, the ends
        cut to the range), for a reader that joins many series' samples into one array anyway: no array is
        built per series. The pieces are read-only."""
        for item in self._selected(matchers, start_ms, end_ms):
            if isinstance(item, Series):
                yield item.labels, [(cast("array[int]", item.timestamps), cast("array[float]", item.values))]
                continue
            parts = _snapshot_parts(item[1], start_ms, end_ms)
            if parts:
                yield item[0], parts

    def _selected(self, matchers: Sequence[Matcher], start_ms: int,
                  end_ms: int) -> Iterator[Series | tuple[Labels, tuple[list[bytes], array[int], array[float]]]]:
        """Per matching series with samples in the range: the samples themselves when they all lie in the
        head (sliced under the lock), else what `_read_snapshot` needs, copied under the lock."""
        labels = self._index.labels
        with self._lock:
            sids = list(self._index.matching(matchers))
        for i in range(0, len(sids), self._SELECT_BATCH):
            batch: list[Series | tuple[Labels, tuple[list[bytes], array[int], array[float]]]] = []
            with self._lock:
                for sid in sids[i:i + self._SELECT_BATCH]:
                    s = self._series[sid]
                    lab = labels[sid]
                    if s is None or lab is None or s.last_t < start_ms or s.last_t == _MIN_T:
                        continue
                    head_t = s.head_t
                    if head_t and head_t[0] <= start_ms:
                        # The whole range lies in the head (a short window at the newest samples, the common
                        # case for dashboards): slice it here, no chunk to look at.
                        lo = bisect_left(head_t, start_ms)
                        hi = bisect_right(head_t, end_ms)
                        if lo < hi:
                            batch.append(Series(lab, head_t[lo:hi], s.head_v[lo:hi]))
                    elif s.min_t() <= end_ms:
                        batch.append((lab, s.snapshot(start_ms)))
            yield from batch

    def samples_bound(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int, *, max_series: int,
                      max_samples: int) -> tuple[int, int] | None:
        """(series, samples): upper bounds on what `select(matchers, start_ms, end_ms)` reads, worked out without
        decoding anything and in at most `max_series` cheap steps: None when the matcher set's series are not
        remembered by the index (finding them may run a regex over every label value), when there are more
        than `max_series` of them, or when the bound passes `max_samples`. Counts whole chunks (their headers
        say how many samples they hold) and whole heads, as `select` may read them."""
        sids = self._index.remembered(matchers)
        if sids is None or len(sids) > max_series:
            return None
        total = 0
        if not sids:
            return 0, 0
        count = chunkcodec.sample_count
        with self._lock:
            for sid in sids:
                s = self._series[sid]
                if s is None or s.last_t < start_ms or s.last_t == _MIN_T:
                    continue
                total += len(s.head_t)
                if not (s.head_t and s.head_t[0] <= start_ms):
                    for chunk in s.chunks[bisect_left(s.chunk_max, start_ms):]:
                        if chunkcodec.first_timestamp(chunk) > end_ms or total > max_samples:
                            break
                        total += count(chunk)
                if total > max_samples:
                    return None
        return len(sids), total

    def series(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[Labels]:
        """Label sets of matching series with data in the range (decided from chunk bounds, as Prometheus's
        head does, without decoding samples). Safe from another thread, like `select`."""
        out = []
        labels = self._index.labels
        with self._lock:
            sids = list(self._index.matching(matchers))
        batch = 4 * self._SELECT_BATCH  # no copies here, only a look at each series' bounds
        for i in range(0, len(sids), batch):
            with self._lock:
                for sid in sids[i:i + batch]:
                    s = self._series[sid]
                    lab = labels[sid]
                    if s is not None and lab is not None and s.overlaps(start_ms, end_ms):
                        out.append(lab)
        out.sort()
        return out

    def _covers_all(self, start_ms: int, end_ms: int) -> bool:
        return start_ms <= self._min_t and end_ms >= self._max_t

    def label_names(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        with self._lock:
            if not matchers and self._covers_all(start_ms, end_ms):
                return self._index.names()
        names: set[str] = set()
        for lab in self.series(matchers, start_ms, end_ms):
            names.update(k for k, _ in lab)
        return sorted(names)

    def label_values(self, name: str, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[str]:
        with self._lock:
            if not matchers and self._covers_all(start_ms, end_ms):
                return sorted(self._index.values(name))
        values: set[str] = set()
        for lab in self.series(matchers, start_ms, end_ms):
            for k, v in lab:
                if k == name:
                    values.add(v)
                    break
        return sorted(values)

    # ---- retention, stats ------------------------------------------------------------------------------

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Drop samples older than `now_ms` − retention (default now: the newest sample stored), whole chunks
        at a time, and series left empty. Returns the number of series dropped."""
        with self._lock:
            return self._apply_retention(now_ms)

    def _apply_retention(self, now_ms: int | None) -> int:
        now = self._max_t if now_ms is None else now_ms
        if now == _MIN_T:
            return 0
        cutoff = now - self.retention_ms
        dead = []
        new_min = _MIN_T
        for sid, s in enumerate(self._series):
            if s is None:
                continue
            k = bisect_left(s.chunk_max, cutoff)
            if k:
                del s.chunks[:k]
                del s.chunk_max[:k]
            if s.head_t and s.head_t[0] < cutoff:
                j = bisect_left(s.head_t, cutoff)
                del s.head_t[:j]
                del s.head_v[:j]
            if not s.chunks and not s.head_t:
                dead.append(sid)
                continue
            m = s.min_t()
            if new_min == _MIN_T or m < new_min:
                new_min = m
        if dead:
            for sid in dead:
                self._series[sid] = None
            self._index.remove(dead)
            gone = set(dead)
            self._scrape_cache.clear()  # cached ids may point at dropped series
            for present in self._last.values():
                present -= gone
        self._min_t = new_min
        if new_min == _MIN_T:
            self._max_t = _MIN_T
        return len(dead)

    def stats(self) -> TSDBStats:
        head = chunks = chunk_samples = chunk_bytes = 0
        for s in self._series:
            if s is None:
                continue
            head += len(s.head_t)
            chunks += len(s.chunks)
            chunk_samples += len(s.chunks) * chunkcodec.CHUNK_SAMPLES
            chunk_bytes += sum(map(len, s.chunks))
        disk = 0
        if self.path is not None:
            disk = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return TSDBStats(len(self._index), head, chunks, chunk_samples, chunk_bytes, disk, self._out_of_order)

    # ---- persistence -----------------------------------------------------------------------------------

    def _log(self, payload: bytes) -> None:
        if self._wal is not None:
            self._pending.append(walfile.frame(payload))

    def _commit(self) -> None:
        """One write per scrape: the new series and target records, then the samples record.

        The write goes into the OS page cache (it survives kill -9; fsync happens in `maintain`). When it fails
        (a full disk), the records stay in memory, queries keep seeing them, and they are written with the next
        write that succeeds; past `WAL_BACKLOG_BYTES` they are dropped and `maintain` snapshots everything."""
        if self._wal is None or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if self._wal_incomplete:
            return  # appending to a WAL with a hole would replay wrongly: wait for the snapshot
        if self._backlog:
            self._backlog.append(data)
            data = b"".join(self._backlog)
        try:
            self._wal.write(data)
        except OSError as e:
            self.wal_write_failures += 1
            self._backlog = [data]
            self._backlog_bytes = len(data)
            if self._backlog_bytes > WAL_BACKLOG_BYTES:
                self._backlog, self._backlog_bytes = [], 0
                self._wal_incomplete = True
                self._ratelog("wal-lost", f"TSDB: cannot write the WAL ({e.strerror or e}); more than "
                              f"{WAL_BACKLOG_BYTES >> 20} MiB waiting, dropped from the WAL: a snapshot will "
                              "be written once there is space (samples stay queryable meanwhile)")
            else:
                self._ratelog("wal-write", f"TSDB: cannot write the WAL {self._wal.path} ({e.strerror or e}); "
                              f"keeping {self._backlog_bytes} bytes in memory until a write succeeds "
                              "(queries keep working)")
            return
        if self._backlog:
            log.info("TSDB: WAL writes resumed; %d bytes held back were written", len(data))
            self._backlog, self._backlog_bytes = [], 0
        self._wal_bytes += len(data)

    def _open_wal(self, seq: int) -> None:
        assert self.path is not None
        self._wal = walfile.WalWriter(self.path / f"wal-{seq:08d}")
        self._wal_seq = seq
        self._wal_bytes = 0

    def _recover(self, path: Path) -> None:
        for tmp in path.glob("*.tmp"):
            tmp.unlink()
        snaps = sorted((p for p in path.glob("snapshot-*") if _seq(p) >= 0), key=_seq, reverse=True)
        wals = sorted((p for p in path.glob("wal-*") if _seq(p) >= 0), key=_seq)
        base = 0
        for snap in snaps:
            if self._load_snapshot(snap):
                base = _seq(snap)
                break
            self._reset()  # an incomplete snapshot (disk trouble): fall back to the one before it
        for wal in wals:
            if _seq(wal) >= base:
                self._replay_wal(wal)
        self._wal_seq = max([base, *(_seq(w) for w in wals)])

    def _load_snapshot(self, snap: Path) -> bool:
        complete = False
        with open(snap, "rb") as f:
            for _, p in rec.read_frames(f):
                typ = p[0]
                if typ == rec.SERIES:
                    sid, labels = rec.decode_series(p)
                    self._index.add(labels, sid)
                    self._put_series(sid)
                elif typ == rec.CHUNK:
                    sid, max_t, chunk = rec.decode_chunk(p)
                    s = self._series[sid]
                    assert s is not None
                    s.chunks.append(chunk)
                    s.chunk_max.append(max_t)
                    s.last_t = max_t
                elif typ == rec.HEAD:
                    sid, ts, vs = rec.decode_head(p)
                    s = self._series[sid]
                    assert s is not None
                    s.head_t, s.head_v, s.last_t = ts, vs, ts[-1]
                elif typ == rec.TARGET:
                    self._put_target(*rec.decode_target(p))
                elif typ == rec.LAST:
                    tid, sids = rec.decode_last(p)
                    self._last[tid] = set(sids)
                elif typ == rec.END:
                    next_sid = int.from_bytes(p[1:5], "little")
                    while len(self._series) < next_sid:
                        self._series.append(None)
                        self._index.labels.append(None)
                    complete = True
        if complete:
            for s in self._series:
                if s is not None and s.last_t != _MIN_T:
                    m = s.min_t()
                    self._min_t = m if self._min_t == _MIN_T else min(self._min_t, m)
                    self._max_t = max(self._max_t, s.last_t)
        return complete

    def _replay_wal(self, wal: Path) -> None:
        got = walfile.read_file(wal)
        for c in got.corruptions:
            self.wal_corruptions += 1
            log.warning("TSDB: %s is damaged at offset %d: skipped %d bytes, kept the records after them",
                        wal, c.offset, c.length)
        for p in got.payloads:
            typ = p[0]
            if typ == rec.SAMPLES:
                t_ms, tid, sids, values, stale = rec.decode_samples(p)
                self._pad(max(max(sids, default=-1), max(stale, default=-1)), tid)
                self._apply(t_ms, tid, sids, values, stale, set(sids))
            elif typ == rec.SERIES:
                sid, labels = rec.decode_series(p)
                self._index.add(labels, sid)
                self._put_series(sid)
            elif typ == rec.TARGET:
                self._put_target(*rec.decode_target(p))
        if got.torn:
            # A torn tail (a crash mid-write): cut it so that nothing appended later can hide behind garbage.
            with open(wal, "r+b") as f:
                f.truncate(got.good_end)

    def _pad(self, sid: int, tid: int) -> None:
        """Samples whose series or target record was lost to damage: their ids stay taken (and empty), so new
        series and targets never reuse them."""
        while len(self._series) <= sid:
            self._series.append(None)
        while len(self._index.labels) <= sid:
            self._index.labels.append(None)
        while len(self._target_names) <= tid:
            self._target_names.append("")

    def _begin_compaction(self) -> _Capture:
        with self._lock:
            return self._capture()

    def _capture(self) -> _Capture:
        assert self.path is not None and self._wal is not None
        old = self._wal
        self._open_wal(self._wal_seq + 1)  # first: if the disk refuses a new file, the old one goes on
        old.close()
        seq = self._wal_seq
        # Everything up to now is in this capture, held-back WAL bytes included: the new WAL starts whole.
        self._backlog, self._backlog_bytes = [], 0
        self._wal_incomplete = False
        captured = []
        labels = self._index.labels
        for sid, s in enumerate(self._series):
            lab = labels[sid]
            if s is None or lab is None:
                continue
            captured.append((sid, lab, list(s.chunks), array("q", s.chunk_max), array("q", s.head_t),
                             array("d", s.head_v)))
        targets = [(tid, name, array("I", sorted(self._last.get(tid, ()))))
                   for tid, name in enumerate(self._target_names)]
        return _Capture(seq, self.path / f"snapshot-{seq:08d}.tmp", self.path / f"snapshot-{seq:08d}",
                        len(self._series), captured, targets)

    def _finish_compaction(self, job: _Capture) -> None:
        assert self.path is not None
        if not job.done:
            return
        for p in [*self.path.glob("snapshot-*"), *self.path.glob("wal-*")]:
            if 0 <= _seq(p) < job.seq:
                p.unlink()

    def compact(self) -> None:
        """Apply retention, write a snapshot of everything, delete the files it supersedes (blocking)."""
        if self.path is None:
            self.apply_retention()
            return
        self.apply_retention()
        job = self._begin_compaction()
        self._write_snapshot(job)
        self._finish_compaction(job)

    def _write_snapshot(self, job: _Capture) -> None:
        try:
            job.write()
        except OSError as e:
            self._snapshot_failed(job, e)

    def _snapshot_failed(self, job: _Capture, e: OSError) -> None:
        with self._lock:
            # The new WAL started at the capture only makes sense on top of this snapshot: until one is
            # written, nothing more goes to the WAL.
            self._wal_incomplete = True
        self.wal_write_failures += 1
        try:
            job.tmp.unlink()
        except OSError:
            pass
        self._ratelog("snapshot", f"TSDB: cannot write a snapshot ({e.strerror or e}); retrying at the next "
                      "maintenance (queries keep working)")

    async def maintain(self) -> None:
        """Periodic housekeeping for the daemon: retention, fsync of the WAL, and a snapshot (written in a
        worker thread) once the WAL has grown past `wal_compact_bytes`."""
        self.apply_retention()
        if self._wal is None:
            return
        try:
            # In a thread: a minute of appends can take the disk a while to flush, and the loop serves the API,
            # xDS and ALS meanwhile (appends go on; they write to the same descriptor, which fsync allows).
            await asyncio.to_thread(self._wal.sync)
        except OSError as e:
            self._ratelog("fsync", f"TSDB: cannot sync the WAL ({e.strerror or e})")
        if self._wal is None:
            return
        if (self._wal_bytes >= self.wal_compact_bytes or self._wal_incomplete) and not self._compacting:
            self._compacting = True  # a second maintain() while the thread writes must not start another
            try:
                repairing = self._wal_incomplete
                try:
                    job = self._begin_compaction()
                except OSError as e:
                    self._ratelog("snapshot", f"TSDB: cannot start a new WAL file ({e.strerror or e}); "
                                  "retrying at the next maintenance")
                    return
                try:
                    await asyncio.to_thread(job.write)
                except OSError as e:
                    self._snapshot_failed(job, e)
                if repairing and job.done:
                    log.info("TSDB: snapshot written, writing the WAL again")
                self._finish_compaction(job)
            finally:
                self._compacting = False

    def close(self) -> None:
        if self._wal is not None:
            if self._backlog:
                try:
                    self._wal.write(b"".join(self._backlog))
                except OSError as e:
                    log.error("TSDB: %d WAL bytes could not be written at shutdown (%s): the samples since the "
                              "disk filled are lost", self._backlog_bytes, e.strerror or e)
            try:
                self._wal.sync()
            except OSError:
                pass
            self._wal.close()
            self._wal = None

    def __enter__(self) -> TSDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
