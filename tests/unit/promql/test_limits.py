"""Prometheus's query safeguards in the engine: max samples, the 11,000-points resolution limit (range queries
and subqueries), the bound on a subquery's inner steps, and the deadline honoured inside step loops."""

from __future__ import annotations

import time

import pytest

from sluice.metrics.promql import Engine, EvalError, QueryTimeout
from sluice.metrics.promql.evaluator import MAX_INNER_STEPS
from sluice.metrics.series import MemStorage, labels_of
from sluice.metrics.tsdb import TSDB

TOO_MANY = "query processing would load too many samples into memory in query execution"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def db() -> TSDB:
    """Two hours of 20 series sampled every second."""
    d = TSDB(None)
    for t in range(0, 2 * HOUR, 1000):
        d.append(t, [(labels_of({"__name__": "m", "i": str(i), "j": str(i % 3)}), float(t)) for i in range(20)],
                 scrape_target="x")
    return d


def test_max_samples() -> None:
    st = MemStorage()
    for i in range(10):
        for t in range(0, 100_000, 10_000):
            st.append(labels_of({"__name__": "m", "i": str(i)}), t, 1.0)
    assert len(Engine(st, max_samples=100).instant("sum_over_time(m[2m])", 100_000).value) == 10  # type: ignore[arg-type]
    with pytest.raises(EvalError) as e:
        Engine(st, max_samples=99).instant("sum_over_time(m[2m])", 100_000)
    assert str(e.value) == TOO_MANY


def test_subquery_points_count_against_max_samples() -> None:
    st = MemStorage()
    st.append(labels_of({"__name__": "m"}), 0, 1.0)
    Engine(st, max_samples=250).instant("max_over_time(m[100s:1s])", 100_000)
    with pytest.raises(EvalError, match=TOO_MANY):
        Engine(st, max_samples=50).instant("max_over_time(m[100s:1s])", 100_000)


def test_range_query_resolution_limit() -> None:
    eng = Engine(MemStorage())
    eng.range("1", 0, 11_000_000, 1000)
    with pytest.raises(EvalError) as e:
        eng.range("1", 0, 11_001_000, 1000)
    assert str(e.value) == ("exceeded maximum resolution of 11,000 points per timeseries. "
                            "Try decreasing the query resolution (?step=XX)")


def test_subquery_resolution_limit_fails_fast(db: TSDB) -> None:
    start = time.monotonic()
    with pytest.raises(EvalError) as e:
        Engine(db).instant("max_over_time(m[3h:1ms])", 2 * HOUR, timeout_s=1.0)
    assert str(e.value) == ("exceeded maximum resolution of 11,000 points per timeseries in subquery [3h:1ms]. "
                            "Try increasing the subquery step")
    assert time.monotonic() - start < 1.0  # refused before any step is evaluated (generous bound)


def test_subquery_inner_steps_are_bounded() -> None:
    # Each subquery window is small (100 inner points) but the range query spans 11,000 s at 10 ms.
    eng = Engine(MemStorage())
    with pytest.raises(EvalError, match=TOO_MANY):
        eng.range("max_over_time(vector(1)[1s:10ms])", 0, 11_000_000, 1000)
    assert MAX_INNER_STEPS == 1_100_000


@pytest.mark.parametrize("expr", [
    # Long column-wise loops (a window fold, an aggregation's members) and long step-by-step ones.
    "sum_over_time(m[30m:1s])",
    "quantile_over_time(0.5, m[30m])",
    "sum by (j) (rate(m[5m])) % on(j) group_left sum by (j) (m)",
    'label_replace(m, "a", "$1", "i", "(.*)")',
    "sum(sum_over_time(m[3h:2s]))",
])
def test_deadline_is_honoured_inside_step_loops(db: TSDB, expr: str) -> None:
    start = time.monotonic()
    with pytest.raises(QueryTimeout) as e:
        # Each takes ≥ 0.1 s even column-wise (numpy over all steps); 20 ms lands inside their loops.
        Engine(db).range(expr, 0, 2 * HOUR, 1000, timeout_s=0.02)
    assert str(e.value) == "query timed out in expression evaluation"
    # The engine stops within 10 % + 100 ms on an idle machine; CI shares its cores, so only a generous bound.
    assert time.monotonic() - start < 2.0


def test_deep_but_allowed_queries_evaluate() -> None:
    st = MemStorage()
    st.append(labels_of({"__name__": "x"}), 0, 1.0)
    eng = Engine(st)
    q = "x"
    for _ in range(60):
        q = f"max_over_time(({q})[1m:])"
    assert [s.value for s in eng.instant(q, 0).value] == [1.0]  # type: ignore[union-attr]
    assert [s.value for s in eng.instant("+".join(["x"] * 250), 0).value] == [250.0]  # type: ignore[union-attr]
