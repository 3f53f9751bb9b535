"""The embedded TSDB seen from outside: what `select`/`series`/labels return after scrapes, restarts, crashes
and retention."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest

from sluice.metrics.series import Labels, Matcher, MemStorage, Series, is_stale, labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.tsdb import chunks as chunkcodec

T0 = 1_700_000_000_000
STEP = 5_000
ALL = (-(2**62), 2**62)


def L(name: str, **kv: str) -> Labels:
    return labels_of({"__name__": name, **kv})


def eq(name: str, value: str) -> Matcher:
    return Matcher(name, "=", value)


def pts(s: Series) -> list[tuple[int, float]]:
    return list(zip(s.timestamps, s.values, strict=True))


def by_labels(db: TSDB, *matchers: Matcher, start: int = ALL[0], end: int = ALL[1]) -> dict[Labels, Series]:
    return {s.labels: s for s in db.select(list(matchers), start, end)}


A = L("req_total", app="a", reporter="destination")
B = L("req_total", app="b", reporter="destination")
C = L("req_total", app="c", reporter="source")


def test_append_and_select_with_equality_and_regex_matchers() -> None:
    db = TSDB(None)
    db.append(T0, [(A, 1.0), (B, 2.0), (C, 3.0)], scrape_target="t")
    db.append(T0 + STEP, [(A, 1.5), (B, 2.5), (C, 3.5)], scrape_target="t")
    got = by_labels(db, eq("__name__", "req_total"), eq("reporter", "destination"))
    assert sorted(got) == [A, B]
    assert pts(got[A]) == [(T0, 1.0), (T0 + STEP, 1.5)]
    assert set(by_labels(db, Matcher("app", "=~", "a|c"))) == {A, C}
    assert set(by_labels(db, eq("__name__", "req_total"), Matcher("app", "!=", "a"))) == {B, C}
    assert set(by_labels(db, eq("__name__", "req_total"), Matcher("missing", "=", ""))) == {A, B, C}
    assert set(by_labels(db, eq("__name__", "req_total"), Matcher("app", "!~", "a|b"))) == {C}
    assert by_labels(db, eq("app", "nope")) == {}
    # Time bounds are inclusive on both ends.
    only_second = by_labels(db, eq("app", "a"), start=T0 + 1, end=T0 + STEP)
    assert pts(only_second[A]) == [(T0 + STEP, 1.5)]
    assert by_labels(db, eq("app", "a"), start=T0 + 1, end=T0 + STEP - 1) == {}


def test_a_repeated_selector_sees_series_that_come_and_go(tmp_path: Path) -> None:
    db = TSDB(tmp_path, retention_ms=3_600_000)
    dest = [eq("__name__", "req_total"), Matcher("reporter", "=~", "dest.*"), Matcher("app", "!=", "z")]
    db.append(T0, [(A, 1.0)], scrape_target="t")
    assert list(by_labels(db, *dest)) == [A]
    assert list(by_labels(db, *dest)) == [A]  # asked again: the same answer
    db.append(T0 + STEP, [(A, 2.0), (B, 1.0), (C, 1.0)], scrape_target="t")
    assert list(by_labels(db, *dest)) == [A, B]  # a new series is selected at once
    for i in range(2, 800):  # past the retention, with B gone
        db.append(T0 + i * STEP, [(A, float(i))], scrape_target="t")
    assert db.apply_retention() == 2
    assert list(by_labels(db, *dest)) == [A]
    db.close()


def test_series_and_label_queries() -> None:
    db = TSDB(None)
    db.append(T0, [(A, 1.0), (B, 2.0)], scrape_target="t1")
    db.append(T0 + 60_000, [(C, 3.0)], scrape_target="t2")
    assert db.series([eq("reporter", "destination")], *ALL) == [A, B]
    assert db.series([eq("__name__", "req_total")], T0 + 1, T0 + 60_000) == [C]
    assert db.label_names([], *ALL) == ["__name__", "app", "reporter"]
    assert db.label_values("app", [], *ALL) == ["a", "b", "c"]
    assert db.label_values("app", [eq("reporter", "source")], *ALL) == ["c"]
    assert db.label_values("app", [], T0 + 1, T0 + 60_000) == ["c"]
    assert db.label_values("nope", [], *ALL) == []


def test_disappearing_series_gets_a_stale_marker_like_prometheus() -> None:
    db = TSDB(None)
    db.append(T0, [(A, 1.0), (B, 1.0)], scrape_target="pod-1")
    db.append(T0, [(C, 1.0)], scrape_target="pod-2")
    db.append(T0 + STEP, [(A, 2.0)], scrape_target="pod-1")  # B gone from pod-1's scrape
    db.append(T0 + 2 * STEP, [(A, 3.0)], scrape_target="pod-1")  # still gone: no second marker
    db.append(T0 + 2 * STEP, [], scrape_target="pod-2")  # a failed scrape: everything goes stale
    got = by_labels(db)
    assert [t for t, _ in pts(got[B])] == [T0, T0 + STEP]
    assert is_stale(got[B].values[-1])
    assert not any(math.isnan(v) for v in got[A].values)
    assert is_stale(got[C].values[-1]) and got[C].timestamps[-1] == T0 + 2 * STEP
    # The series comes back: normal samples continue after the marker.
    db.append(T0 + 3 * STEP, [(A, 4.0), (B, 7.0)], scrape_target="pod-1")
    assert by_labels(db, eq("app", "b"))[B].values[-1] == 7.0


def test_drop_target_marks_all_its_series_stale() -> None:
    db = TSDB(None)
    db.append(T0, [(A, 1.0), (B, 1.0)], scrape_target="pod-1")
    db.drop_target(T0 + STEP, "pod-1")
    assert all(is_stale(s.values[-1]) for s in db.select([eq("__name__", "req_total")], *ALL))


def test_out_of_order_and_duplicate_samples_are_dropped() -> None:
    db = TSDB(None)
    db.append(T0, [(A, 1.0)], scrape_target="t")
    db.append(T0, [(A, 9.0)], scrape_target="t")
    db.append(T0 - 1, [(A, 9.0)], scrape_target="t")
    db.append(T0 + STEP, [(A, 2.0), (A, 3.0)], scrape_target="t")  # the same series twice in one scrape
    assert pts(by_labels(db)[A]) == [(T0, 1.0), (T0 + STEP, 2.0)]
    assert db.stats().out_of_order == 3


def test_many_samples_cross_chunk_boundaries_and_match_a_reference() -> None:
    db = TSDB(None)
    ref = MemStorage()
    n = chunkcodec.CHUNK_SAMPLES * 3 + 17
    for i in range(n):
        t = T0 + i * STEP + (i % 3)  # slightly irregular, as real scrapes are
        samples = [(A, float(i)), (B, i * 0.1 + 1e-9), (C, math.nan if i % 50 == 0 else -i * 1e300)]
        db.append(t, samples, scrape_target="t")
        for labels, v in samples:
            ref.append(labels, t, v)
    assert db.stats().chunks == 9
    for start, end in [ALL, (T0 + 100 * STEP, T0 + 300 * STEP), (T0 + 119 * STEP, T0 + 121 * STEP + 2)]:
        mine = {s.labels: pts(s) for s in db.select([eq("__name__", "req_total")], start, end)}
        theirs = {s.labels: pts(s) for s in ref.select([eq("__name__", "req_total")], start, end)}
        assert mine.keys() == theirs.keys()
        for k in mine:
            assert [t for t, _ in mine[k]] == [t for t, _ in theirs[k]]
            assert all(a == b or (math.isnan(a) and math.isnan(b)) for (_, a), (_, b) in zip(mine[k], theirs[k], strict=True))


def test_chunk_codec_keeps_nan_bit_patterns() -> None:
    from array import array

    from sluice.metrics.series import STALE_NAN

    ts = array("q", [T0, T0 + 5000, T0 + 10_000])
    vs = array("d", [1.0, STALE_NAN, math.nan])
    dt, dv = chunkcodec.decode(chunkcodec.encode(ts, vs))
    assert list(dt) == list(ts)
    assert dv[0] == 1.0 and is_stale(dv[1]) and math.isnan(dv[2]) and not is_stale(dv[2])


def test_retention_drops_old_samples_and_empty_series(tmp_path: Path) -> None:
    db = TSDB(tmp_path, retention_ms=3_600_000)
    for i in range(800):  # a bit over an hour at 5 s, with B only at the start
        samples = [(A, float(i))] + ([(B, 1.0)] if i < 10 else [])
        db.append(T0 + i * STEP, samples, scrape_target="t")
    dropped = db.apply_retention()
    assert dropped == 1
    assert db.series([eq("__name__", "req_total")], *ALL) == [A]
    assert db.label_values("app", [], *ALL) == ["a"]
    oldest = by_labels(db)[A].timestamps[0]
    newest = T0 + 799 * STEP
    # Whole chunks go: everything older than the cutoff's chunk is gone, the last hour is all there.
    assert newest - 3_600_000 - chunkcodec.CHUNK_SAMPLES * STEP < oldest <= newest - 3_600_000
    db.compact()
    db.close()
    reopened = TSDB(tmp_path, retention_ms=3_600_000)
    assert reopened.series([eq("__name__", "req_total")], *ALL) == [A]
    assert by_labels(reopened)[A].timestamps[0] == oldest
    reopened.close()


def _fill(db: TSDB, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        db.append(T0 + i * STEP, [(A, float(i)), (B, i * 2.0)], scrape_target="pod")


def test_history_survives_a_restart(tmp_path: Path) -> None:
    db = TSDB(tmp_path)
    _fill(db, 300)
    before = {k: pts(v) for k, v in by_labels(db).items()}
    db.close()
    db2 = TSDB(tmp_path)
    assert {k: pts(v) for k, v in by_labels(db2).items()} == before
    # The scrape memory survives too: B vanishing right after the restart still gets its stale marker.
    db2.append(T0 + 300 * STEP, [(A, 300.0)], scrape_target="pod")
    assert is_stale(by_labels(db2)[B].values[-1])
    db2.close()


def test_restart_after_compaction_and_more_appends(tmp_path: Path) -> None:
    db = TSDB(tmp_path)
    _fill(db, 250)
    db.compact()
    _fill(db, 100, start=250)
    expected = {k: pts(v) for k, v in by_labels(db).items()}
    db.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.startswith("snapshot-")] == ["snapshot-00000002"]
    db2 = TSDB(tmp_path)
    assert {k: pts(v) for k, v in by_labels(db2).items()} == expected
    assert len(expected[A]) == 350
    db2.close()


def test_torn_tail_after_a_crash_is_ignored(tmp_path: Path) -> None:
    db = TSDB(tmp_path)
    _fill(db, 50)
    db.close()
    wal = max(tmp_path.glob("wal-*"))
    good_size = wal.stat().st_size
    # A crash in the middle of writing the next record: a header promising more bytes than follow.
    with open(wal, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78partial")
    db2 = TSDB(tmp_path)
    got = by_labels(db2)
    assert len(got[A].timestamps) == 50
    assert wal.stat().st_size == good_size  # the garbage was cut off
    _fill(db2, 10, start=50)
    db2.close()
    db3 = TSDB(tmp_path)
    assert len(by_labels(db3)[A].timestamps) == 60
    db3.close()


def test_corrupted_record_stops_replay_at_that_point(tmp_path: Path) -> None:
    db = TSDB(tmp_path)
    _fill(db, 20)
    db.close()
    wal = max(tmp_path.glob("wal-*"))
    data = bytearray(wal.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last record's payload: its checksum no longer matches
    wal.write_bytes(bytes(data))
    db2 = TSDB(tmp_path)
    assert len(by_labels(db2)[A].timestamps) == 19
    db2.close()


async def test_maintain_compacts_in_a_worker_thread(tmp_path: Path) -> None:
    db = TSDB(tmp_path, wal_compact_bytes=1)
    _fill(db, 200)
    await db.maintain()
    _fill(db, 5, start=200)
    db.close()
    assert sorted(p.name for p in tmp_path.glob("snapshot-*")) == ["snapshot-00000002"]
    db2 = TSDB(tmp_path)
    assert len(by_labels(db2)[A].timestamps) == 205
    db2.close()


def test_memory_and_disk_footprint_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints bytes per series and per sample (no thresholds: numbers go to bench/tsdb_bench.py)."""
    series = [L("istio_requests_total", reporter="destination", source_workload=f"w{i % 10}",
                destination_workload=f"d{i // 10}", response_code="200", le=str(i % 20)) for i in range(500)]
    tracemalloc.start()
    db = TSDB(tmp_path)
    values = [0.0] * len(series)
    for k in range(360):
        for i in range(len(series)):
            values[i] += (i * k) % 7
        db.append(T0 + k * STEP, zip(series, values, strict=True), scrape_target="t")
    mem, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    db.compact()
    st = db.stats()
    samples = len(series) * 360
    with capsys.disabled():
        print(f"\n[tsdb] {len(series)} series x 360 samples: {mem / len(series):,.0f} B/series in memory "
              f"(incl. samples), chunks {st.chunk_bytes / st.chunk_samples:.2f} B/sample, "
              f"disk after compaction {st.disk_bytes / samples:.2f} B/sample")
    assert st.series == len(series)
    db.close()


def test_samples_bound_is_never_below_what_select_reads() -> None:
    db = TSDB(None)
    m = labels_of({"__name__": "m", "i": "0"})
    for t in range(1000, 1_000_001, 1000):  # 1000 samples: 8 sealed chunks and a head of 40
        db.append(t, [(m, float(t))] + ([(labels_of({"__name__": "m", "i": "1"}), 1.0)] if t < 300_000 else []),
                  scrape_target="x")
    matchers = [eq("__name__", "m")]
    assert db.samples_bound(matchers, 0, 10**9, max_series=10, max_samples=10**6) is None  # not known yet
    list(db.select(matchers, 0, 10**9))
    for start, end in [(990_000, 1_000_000), (960_000, 1_000_000), (500_000, 1_000_000), (1, 10**9),
                       (120_500, 240_500), (150_000, 150_000), (299_000, 310_000), (2_000_000, 3_000_000)]:
        read = list(db.select(matchers, start, end))
        bound = db.samples_bound(matchers, start, end, max_series=10, max_samples=10**6)
        assert bound is not None
        assert bound[0] >= len(read)
        assert bound[1] >= sum(len(s.timestamps) for s in read), (start, end)
    assert db.samples_bound(matchers, 1, 10**9, max_series=1, max_samples=10**6) is None
    assert db.samples_bound(matchers, 1, 10**9, max_series=10, max_samples=999) is None


def test_select_parts_hold_what_select_returns() -> None:
    # Series with stale markers, some only in the head, some over several sealed chunks; windows before,
    # inside, across and after chunk boundaries and the head, and empty ones.
    db = TSDB(None)
    n = 3 * chunkcodec.CHUNK_SAMPLES + 17
    for k in range(n):
        t = 1000 + 5000 * k
        batch = [(L("a", i=str(i)), float(k * (i + 1))) for i in range(3) if not (i == 1 and 100 < k < 130)]
        if k > n - 40:
            batch.append((L("a", i="new"), float(k)))
        db.append(t, batch, scrape_target="x")
    last = 1000 + 5000 * (n - 1)
    edges = [0, 1000, 1001, 500_000, 600_000 + 2500, 1000 + 5000 * chunkcodec.CHUNK_SAMPLES, last - 200_000,
             last - 5000, last, last + 1]
    for start in edges:
        for end in edges:
            want = [(s.labels, list(s.timestamps), [repr(v) for v in s.values])
                    for s in db.select([eq("__name__", "a")], start, end)]
            got = []
            for labels, parts in db.select_parts([eq("__name__", "a")], start, end):
                ts = [t for p in parts for t in p[0]]
                vs = [repr(v) for p in parts for v in p[1]]
                got.append((labels, ts, vs))
            assert got == want, (start, end)


def test_select_parts_never_hold_a_view_of_the_live_head() -> None:
    # A view of the head's arrays would make the next append fail to resize them.
    db = TSDB(None)
    n = chunkcodec.CHUNK_SAMPLES + 10  # a sealed chunk and a head of 10
    for k in range(n):
        db.append(1000 * k, [(L("a"), float(k))], scrape_target="x")
    held = [parts for _, parts in db.select_parts([eq("__name__", "a")], 1000 * (n - 5), 1000 * n - 2500)]
    held += [parts for _, parts in db.select_parts([eq("__name__", "a")], 2500, 1000 * n - 2500)]
    for k in range(n, 400):
        db.append(1000 * k, [(L("a"), float(k))], scrape_target="x")
    assert held and len(pts(next(iter(by_labels(db, eq("__name__", "a")).values())))) == 400
