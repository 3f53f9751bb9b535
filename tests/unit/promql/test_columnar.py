"""The column-wise evaluation (`promql/columnar.py`) gives the step-by-step evaluator's answers to the bit:
the same queries over the same awkward data (counter resets, stale markers, gaps, NaN, ±Inf, -0, duplicate
bucket bounds), evaluated both ways as range and instant queries, must agree value for value and in the
errors they raise."""

from __future__ import annotations

import math
import random
import struct

import pytest

from sluice.metrics.promql import Engine, PromQLError
from sluice.metrics.promql.columnar import Block
from sluice.metrics.promql.values import Sample, Series
from sluice.metrics.series import STALE_NAN, Labels, Matcher, MemStorage, labels_of
from sluice.metrics.tsdb import TSDB

START, END, STEP = 0, 3600_000, 15_000


def _storage() -> MemStorage:
    rng = random.Random(12)
    st = MemStorage()
    specials = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308]
    for job in ("a", "b", "c"):
        for inst in ("1", "2", "3"):
            v = 0.0
            for t in range(0, END + 1, 5000):
                if rng.random() < 0.03:
                    continue  # a missed scrape
                v += rng.choice([0.0, 1.0, 2.5, 10.0])
                if rng.random() < 0.01:
                    v = rng.random()  # a counter reset
                st.append(labels_of({"__name__": "req_total", "job": job, "instance": inst,
                                     "code": "500" if inst == "3" else "200"}), t, v)
            for le in ("0.1", "1", "1.0", "10", "+Inf") if job == "c" else ("0.1", "1", "10", "+Inf"):
                lbl = labels_of({"__name__": "dur_bucket", "job": job, "instance": inst, "le": le})
                c = 0.0
                for t in range(0, END + 1, 5000):
                    c += rng.randint(0, 5) * (1 + float(le.replace("+Inf", "9")))
                    st.append(lbl, t, c)
            g = labels_of({"__name__": "gauge", "job": job, "instance": inst})
            for t in range(0, END + 1, 10_000):
                if 1_000_000 < t < 1_300_000 and inst == "2":
                    continue
                x = rng.choice(specials) if rng.random() < 0.05 else rng.uniform(-100, 100)
                st.append(g, t, STALE_NAN if (t == 2_000_000 and inst == "1") else x)
    return st


QUERIES = [
    "req_total", "gauge", "gauge offset 7m", "gauge @ 1800", "req_total @ end()",
    "rate(req_total[1m])", "increase(req_total[5m])", "delta(gauge[2m])", "irate(req_total[1m])",
    "idelta(gauge[1m])", "rate(req_total[7s])", "count_over_time(gauge[1m])", "last_over_time(gauge[2m])",
    "present_over_time(req_total[30s])", "sum_over_time(gauge[5m])", "max_over_time(gauge[3m])",
    "min_over_time(gauge[3m])", "rate(req_total[1m] offset 30s)",
    "sum(rate(req_total[1m]))", "sum by (job) (rate(req_total[1m]))", "sum without (instance) (gauge)",
    "count by (code) (req_total)", "min by (job) (gauge)", "max by (job) (gauge)", "group by (job) (gauge)",
    "sum by (__name__) ({__name__=~'gauge|req_total'})", "sum(gauge)", "max(gauge)",
    "gauge * 2", "2 / gauge", "gauge > 10", "gauge < bool 0", "-gauge + 1", "gauge == -0",
    "rate(req_total[1m]) / rate(req_total[5m])", "gauge - on(job, instance) req_total",
    "sum by (job, code) (rate(req_total[1m])) / ignoring(code) group_left sum by (job) (rate(req_total[1m]))",
    "sum by (job) (gauge) / on(job) group_right sum by (job, instance) (gauge)",
    "gauge and req_total", "gauge or req_total", "gauge unless on(job) (req_total > 100000)",
    "sum(req_total) or vector(0)", "gauge / ignoring(code) req_total",
    "histogram_quantile(0.9, sum by (le, job) (rate(dur_bucket[1m])))",
    "histogram_quantile(0.5, rate(dur_bucket[5m]))", "histogram_quantile(1.5, sum by (le) (rate(dur_bucket[1m])))",
    "histogram_quantile(scalar(sum(gauge)), sum by (le) (rate(dur_bucket[1m])))",
    "max_over_time(sum by (job) (rate(req_total[1m]))[10m:30s])",
    "rate(sum(req_total)[5m:15s])", "sum_over_time(gauge[5m:1m])",
    "sum(rate(req_total[1m])) by (job) > 0", "round(sum(rate(req_total[1m])) by (code), 0.001)",
    "topk(2, rate(req_total[1m]))", "label_replace(gauge, 'job', 'x', 'job', '.*') * 2",
    "sum(label_replace(gauge, 'job', 'x', 'job', '.*'))",
    "gauge + on() group_left gauge", "round(gauge)", "round(gauge, 0.3)", "round(gauge, 0)", "round(-gauge, -2)",
    "absent(gauge)", "absent(nope{job='x'})", "vector(1) + vector(time())", "absent(gauge offset 1h)",
    # topk/bottomk at a range query's root (column-wise there): ties, NaN, ±Inf, -0, gaps, k varying by step.
    "topk(1, gauge > bool 0)", "bottomk by (job) (2, gauge)", "topk without (instance) (1, -0 * gauge)",
    "topk(scalar(count(gauge)) - 7, gauge)", "topk(Inf, gauge)", "bottomk(-Inf, gauge)", "topk(1e300, gauge)",
    "topk(-1, gauge)", "topk(NaN, gauge)", "topk(scalar(gauge{job='a', instance='1'}), req_total)",
    "bottomk(2, sum by (job, code) (rate(req_total[1m])))", "topk(1, nope)", "topk(2, gauge or req_total)",
]


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


def _key(x: Sample | Series) -> tuple[object, ...]:
    if isinstance(x, Sample):
        return (x.metric, _bits(x.value), x.t)
    return (x.metric, tuple(x.timestamps), tuple(_bits(v) for v in x.values))


def _run(engine: Engine, q: str, instant: bool) -> object:
    try:
        res = engine.instant(q, 1_800_000) if instant else engine.range(q, START, END, STEP)
    except PromQLError as e:
        return ("error", str(e))
    value = res.value
    if isinstance(value, list):
        return (res.type, sorted(_key(x) for x in value), res.warnings)
    return (res.type, value, res.warnings)


@pytest.fixture(scope="module")
def storage() -> MemStorage:
    return _storage()


@pytest.mark.parametrize("q", QUERIES)
def test_columnar_matches_step_by_step(storage: MemStorage, q: str) -> None:
    col, step = Engine(storage, columnar=True), Engine(storage, columnar=False)
    auto = Engine(storage)  # column-wise only where there are several steps: a subquery's inner ones
    for instant in (False, True):
        want = _run(step, q, instant)
        assert _run(col, q, instant) == want, (q, "instant" if instant else "range")
        assert _run(auto, q, instant) == want, (q, "instant" if instant else "range", "auto")


def test_sums_of_series_present_at_every_step_match_step_by_step() -> None:
    # No gaps at all: the aggregation's path for series present at every step (±Inf, NaN, -0, overflow).
    rng = random.Random(5)
    st = MemStorage()
    specials = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 1e-300]
    for i in range(7):
        lbl = labels_of({"__name__": "full", "i": str(i), "g": str(i % 3)})
        for t in range(0, END + 1, 5000):
            st.append(lbl, t, rng.choice(specials) if rng.random() < 0.1 else rng.uniform(-1e6, 1e6))
    col, step = Engine(st, columnar=True), Engine(st, columnar=False)
    for q in ("sum(full)", "sum by (g) (full)", "sum without (i) (full) * 2", "sum(rate(full[1m]))",
              "sum by (g) (full offset 1m)"):
        for instant in (False, True):
            assert _run(col, q, instant) == _run(step, q, instant), q


def test_root_topk_breaks_ties_in_the_order_its_argument_came_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # `or` evaluated step by step (as when the column-wise code hands a case back): `b` alone first, then
    # `a` before `b`, so the block's rows (b, a) are not each step's order; ties must still go to `a`.
    from sluice.metrics.promql import columnar

    st = MemStorage()
    for t in range(0, END + 1, 5000):
        st.append(labels_of({"__name__": "x", "l": "b"}), t, 1.0)
        if t >= END // 2:
            st.append(labels_of({"__name__": "x", "l": "a"}), t, 1.0)
    q = "topk(1, x{l='a'} or x{l='b'})"
    want = _run(Engine(st, columnar=False), q, False)
    assert _run(Engine(st, columnar=True), q, False) == want
    real = columnar.evaluate
    monkeypatch.setattr(columnar, "evaluate", lambda ev, node: None if node.type == "vector" and getattr(
        node, "op", "") == "or" else real(ev, node))
    assert _run(Engine(st, columnar=True), q, False) == want


def test_block_from_steps_knows_whether_steps_came_in_row_order() -> None:
    a, b = labels_of({"l": "a"}), labels_of({"l": "b"})
    ordered = Block.from_steps([[Sample(a, 1.0, 0)], [Sample(a, 1.0, 1), Sample(b, 2.0, 1)]], 2)
    swapped = Block.from_steps([[Sample(b, 1.0, 0)], [Sample(a, 1.0, 1), Sample(b, 2.0, 1)]], 2)
    assert ordered.ordered and not swapped.ordered


@pytest.fixture(scope="module")
def tsdb(storage: MemStorage) -> TSDB:
    """The same samples in the daemon's TSDB, scrape by scrape: its reads are machine arrays (chunks and head),
    which the column-wise code joins without a numpy array per series, and a series missing from a scrape
    gets a stale marker."""
    by_time: dict[int, list[tuple[Labels, float]]] = {}
    for s in storage.select([Matcher("__name__", "=~", ".+")], START, END):
        for t, v in zip(s.timestamps, s.values, strict=True):
            by_time.setdefault(t, []).append((s.labels, v))
    db = TSDB(None)
    for t in sorted(by_time):
        db.append(t, by_time[t], scrape_target="t")
    return db


@pytest.mark.parametrize("q", [q for q in QUERIES if "[" in q or "sum" in q or "topk" in q])
def test_columnar_matches_step_by_step_over_the_tsdb(tsdb: TSDB, q: str) -> None:
    col, step = Engine(tsdb, columnar=True), Engine(tsdb, columnar=False)
    for instant in (False, True):
        assert _run(col, q, instant) == _run(step, q, instant), (q, "instant" if instant else "range")


def test_sums_over_groups_of_unlike_sizes_match_step_by_step() -> None:
    # Groups of 1 to 4 members, all present: the short ones are padded with -0.0, which must leave -0, ±Inf,
    # NaN and overflowing sums exactly as summing their own members does.
    rng = random.Random(6)
    st = MemStorage()
    specials = [-0.0, 0.0, math.inf, -math.inf, math.nan, 1e308, -1e308, 1.0, -1.0]
    for i in range(10):
        lbl = labels_of({"__name__": "full", "i": str(i), "g": str(min(i // 1, i // 2, 3) if i < 6 else i % 4)})
        for t in range(0, END + 1, 5000):
            st.append(lbl, t, rng.choice(specials) if rng.random() < 0.7 else rng.uniform(-1e3, 1e3))
    col, step = Engine(st, columnar=True), Engine(st, columnar=False)
    for q in ("sum by (g) (full)", "sum by (g) (-full)", "sum by (g) (full * 0)", "sum by (g) (-(full * 0))",
              "sum by (i) (full)", "sum(full)"):
        for instant in (False, True):
            assert _run(col, q, instant) == _run(step, q, instant), q
