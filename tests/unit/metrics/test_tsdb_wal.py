"""The TSDB's WAL under damage (issue 9, point 8): a corrupt record in the middle is skipped, logged and
counted and every record after it is kept; a torn tail is dropped quietly; first-format files still load."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest

from sluice.metrics.series import Labels, Matcher, labels_of
from sluice.metrics.tsdb import TSDB, wal
from sluice.metrics.tsdb import records as rec

T0 = 1_700_000_000_000
STEP = 5_000
A = labels_of({"__name__": "req_total", "app": "a"})
B = labels_of({"__name__": "req_total", "app": "b"})


def _fill(db: TSDB, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        db.append(T0 + i * STEP, [(A, float(i)), (B, 2.0 * i)], scrape_target="pod")


def _values(db: TSDB, labels: Labels) -> list[float]:
    got = {s.labels: list(s.values) for s in db.select([Matcher("__name__", "=", "req_total")], 0, 2**62)}
    return got.get(labels, [])


def _record_offsets(data: bytes) -> list[int]:
    offs = []
    off = data.find(wal.SYNC)
    while off >= 0:
        offs.append(off)
        off = data.find(wal.SYNC, off + 1)
    return offs


def _one_wal(tmp_path: Path, scrapes: int) -> Path:
    db = TSDB(tmp_path)
    _fill(db, scrapes)
    db.close()
    (path,) = tmp_path.glob("wal-*")
    return path


@pytest.mark.parametrize("where", ["payload", "length", "sync"])
def test_a_damaged_record_mid_wal_is_skipped_and_the_rest_kept(tmp_path: Path, where: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    path = _one_wal(tmp_path, 200)
    data = bytearray(path.read_bytes())
    offs = _record_offsets(bytes(data))
    victim = offs[len(offs) // 2]  # a samples record in the middle (scrape ~100)
    data[victim + {"payload": 20, "length": 5, "sync": 1}[where]] ^= 0x40
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="sluice.metrics.tsdb"):
        db = TSDB(tmp_path)
    values = _values(db, A)
    assert len(values) == 199, "exactly one scrape lost"
    assert values[-1] == 199.0, "the records after the damage are kept"
    assert db.wal_corruptions == 1
    assert any("is damaged at offset" in r.getMessage() and "kept the records after them" in r.getMessage()
               for r in caplog.records)
    _fill(db, 5, start=200)  # and the store goes on as usual
    db.close()
    db2 = TSDB(tmp_path)
    assert _values(db2, A)[-1] == 204.0
    db2.close()


def test_a_zeroed_stretch_loses_only_the_records_it_covers(tmp_path: Path) -> None:
    path = _one_wal(tmp_path, 300)
    data = bytearray(path.read_bytes())
    offs = _record_offsets(bytes(data))
    lo, hi = offs[100], offs[110]  # ten whole records (a page of zeros, as a lost disk write leaves)
    data[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(data))
    db = TSDB(tmp_path)
    values = _values(db, A)
    assert len(values) == 290 and values[-1] == 299.0
    assert db.wal_corruptions == 1
    db.close()


def test_a_lost_series_record_does_not_hand_its_id_to_another_series(tmp_path: Path) -> None:
    db = TSDB(tmp_path)
    _fill(db, 3)
    c = labels_of({"__name__": "req_total", "app": "c"})
    for i in range(3, 10):
        db.append(T0 + i * STEP, [(A, float(i)), (B, 2.0 * i), (c, 1.0)], scrape_target="pod")
    db.close()
    (path,) = tmp_path.glob("wal-*")
    data = bytearray(path.read_bytes())
    series_record = next(o for o in _record_offsets(bytes(data)) if data[o + 16] == rec.SERIES and
                         b"app\x00" not in data[o:o + 16] and b"\x01\x00c" in data[o + 16:o + 80])
    data[series_record + 20] ^= 0xFF  # c's series record: its samples cannot be placed any more
    path.write_bytes(bytes(data))
    db = TSDB(tmp_path)
    assert db.wal_corruptions == 1
    assert _values(db, A)[-1] == 9.0
    d = labels_of({"__name__": "req_total", "app": "d"})
    db.append(T0 + 10 * STEP, [(A, 10.0), (d, 5.0)], scrape_target="pod")
    assert _values(db, d) == [5.0], "a new series gets a fresh id, not the lost one's samples"
    db.close()


def test_a_torn_tail_is_dropped_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _one_wal(tmp_path, 50)
    size = path.stat().st_size
    last = wal.frame(b"\x02" + bytes(40))
    with open(path, "ab") as f:
        f.write(last[: len(last) - 7])  # kill -9 in the middle of a write
    with caplog.at_level(logging.WARNING, logger="sluice.metrics.tsdb"):
        db = TSDB(tmp_path)
    assert len(_values(db, A)) == 50
    assert db.wal_corruptions == 0 and not caplog.records
    assert path.stat().st_size == size, "the torn bytes were cut off"
    db.close()


def test_every_single_flipped_byte_loses_at_most_one_record() -> None:
    payloads = [bytes([rec.SAMPLES]) + bytes([i]) * (5 + i % 13) for i in range(40)]
    data = wal.MAGIC + b"".join(wal.frame(p) for p in payloads)
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        got = wal.read(bytes(damaged))
        assert len(got.payloads) >= len(payloads) - 1, i
        it = iter(payloads)
        assert all(p in it for p in got.payloads), "only original records, in their order"
        if i >= len(data) - len(wal.frame(payloads[-1])):
            assert not got.corruptions and got.torn  # damage in the last record is a torn tail
        else:
            assert len(got.corruptions) == 1, i


def _legacy_frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def test_wal_files_of_the_first_format_still_load(tmp_path: Path) -> None:
    sid_a, sid_b = 0, 1
    recs = [rec.encode_target(0, "pod"), rec.encode_series(sid_a, A), rec.encode_series(sid_b, B)]
    from array import array
    for i in range(30):
        recs.append(rec.encode_samples(T0 + i * STEP, 0, array("I", [sid_a, sid_b]),
                                       array("d", [float(i), 2.0 * i]), array("I")))
    frames = [_legacy_frame(r) for r in recs]
    frames[10] = frames[10][:-1] + bytes([frames[10][-1] ^ 0xFF])  # a damaged payload in the middle
    (tmp_path / "wal-00000001").write_bytes(b"".join(frames))
    db = TSDB(tmp_path)
    values = _values(db, A)
    assert len(values) == 29 and values[-1] == 29.0
    assert db.wal_corruptions == 1
    _fill(db, 2, start=30)
    db.close()
    db2 = TSDB(tmp_path)  # the old file and the new-format one written after it, together
    assert _values(db2, A)[-2:] == [30.0, 31.0]
    db2.close()
