"""The TSDB read (select, series, label names and values) from query worker threads while the scraper appends: every read is consistent (timestamps
and values of the same length, strictly increasing, each value the one written at its timestamp), across head
appends, chunk sealing, new series, stale markers and retention."""

from __future__ import annotations

import math
import threading

from sluice.metrics.promql import Engine
from sluice.metrics.series import Matcher, labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.tsdb.chunks import CHUNK_SAMPLES

N_SCRAPES = 3 * CHUNK_SAMPLES + 7  # several chunks sealed while readers run


def test_reads_in_threads_while_appending() -> None:
    db = TSDB(None, retention_ms=200_000)
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0]

    def reader() -> None:
        try:
            while not done.is_set():
                for s in db.select([Matcher("__name__", "=~", "m.*")], 0, 10**12):
                    ts, vs = list(s.timestamps), list(s.values)
                    assert len(ts) == len(vs)
                    assert all(a < b for a, b in zip(ts, ts[1:], strict=False))
                    assert all(math.isnan(v) or v == t for t, v in zip(ts, vs, strict=True))
                Engine(db).instant("sum(rate(m[1m]))", 10**9)
                assert all(dict(lab)["__name__"] == "m" for lab in db.series([Matcher("i", "=~", ".+")], 0, 10**12))
                assert set(db.label_values("i", [], 0, 10**12)) <= {str(i) for i in range(50)}
                assert set(db.label_names([Matcher("__name__", "=", "m")], 0, 10**12)) <= {"__name__", "i"}
                reads[0] += 1
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for k in range(N_SCRAPES):
            t = k * 1000
            # A changing set of series: new ones appear, some go stale (a stale marker is appended to them).
            batch = [(labels_of({"__name__": "m", "i": str(i)}), float(t)) for i in range(k % 40, 40 + k % 7)]
            db.append(t, batch, scrape_target="x")
            if k % 50 == 49:
                db.apply_retention()
    finally:
        done.set()
        for th in threads:
            th.join(timeout=60)
    assert not errors, errors[0]
    assert reads[0] > 0
