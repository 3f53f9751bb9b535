"""Fuzzing evaluation: generated queries (every function, aggregations, operators with matching, subqueries,
offsets and @ with extreme values) either evaluate or raise a `PromQLError`, instant and range alike."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.metrics.promql import Engine, PromQLError
from sluice.metrics.promql.functions import FUNCTIONS
from sluice.metrics.series import MemStorage, labels_of

_NUMS = st.sampled_from(["0", "1", "-1", "0.5", "1e308", "-1e308", "NaN", "Inf", "-Inf", "1e-320", "9e18", "3"])
_DURS = st.sampled_from(["1s", "5m", "1ms", "1y", "10m", "1h"])
_SELECTORS = st.sampled_from(['up', 'x', 'up{job="j1"}', '{__name__=~"u.*"}', 'x{a!~"b|"}', 'nope'])
_STRINGS = st.sampled_from(['"a"', '"le"', '"job"', '""', '"(.*)"', '"$1"', '"__name__"', '"é"', '"a("'])
_BINOPS = st.sampled_from(["+", "-", "*", "/", "%", "^", "==", "!= bool", "> bool", "and", "or", "unless", "atan2",
                           "* on(job) group_left", "/ ignoring(le)"])
_MODIFIERS = st.sampled_from(["offset 5m", "offset -1h", "@ 100", "@ start()", "@ end()", "@ 1e18", "@ -1e18"])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(children, max_size=4))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(st.sampled_from(["sum", "topk", "quantile", "count_values", "avg", "stddev", "bottomk", "group"]),
                  st.sampled_from(["", " by (job)", " without (le)"]), st.lists(children, min_size=1, max_size=2))
        .map(lambda t: f"{t[0]}{t[1]}({', '.join(t[2])})"),
        st.tuples(children, _BINOPS, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, _DURS, st.sampled_from(["", "1s", "1m", "7s"])).map(lambda t: f"({t[0]})[{t[1]}:{t[2]}]"),
        st.tuples(_SELECTORS, _DURS).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(_SELECTORS, _MODIFIERS).map(lambda t: f"{t[0]} {t[1]}"),
        children.map(lambda c: f"-({c})"),
    )


_QUERIES = st.recursive(st.one_of(_NUMS, _SELECTORS, _STRINGS), _extend, max_leaves=8)


def _storage() -> MemStorage:
    st_ = MemStorage()
    for i in range(3):
        for t in range(0, 600_000, 15_000):
            st_.append(labels_of({"__name__": "up", "job": f"j{i}", "le": str(i)}), t, float(t % 7 + i))
            st_.append(labels_of({"__name__": "x", "a": "b", "job": f"j{i}"}), t, float(i))
    return st_


_ENGINE = Engine(_storage(), max_samples=1_000_000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUERIES)
def test_generated_queries_evaluate_or_raise_promql_errors(query: str) -> None:
    for run in (lambda: _ENGINE.instant(query, 300_000, timeout_s=5),
                lambda: _ENGINE.range(query, 0, 600_000, 30_000, timeout_s=5)):
        try:
            run()
        except PromQLError:
            pass
