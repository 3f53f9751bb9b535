"""MetricsRegistry: what a Prometheus scrape of it stores, and what the exposition prints."""

from __future__ import annotations

import pytest

from sluice.telemetry.registry import ENVOY_DEFAULT_BUCKETS, MetricsRegistry, envoy_le, prometheus_le


def test_envoy_default_buckets() -> None:
    assert ENVOY_DEFAULT_BUCKETS == (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                                     300000, 600000, 1800000, 3600000)


@pytest.mark.parametrize(("bound", "prom", "envoy"), [
    (0.5, "0.5", "0.5"), (1, "1.0", "1"), (5, "5.0", "5"), (600000, "600000.0", "600000"),
    (1800000, "1.8e+06", "1800000"), (3600000, "3.6e+06", "3600000"),
    (0.0001, "0.0001", "0.00010000000000000000479217360238593"),
    (0.00001, "1e-05", "1.0000000000000000818030539140313e-05"),
    (float("inf"), "+Inf", "+Inf"), (0, "0.0", "0"),
])
def test_le_formats(bound: float, prom: str, envoy: str) -> None:
    # Prometheus 3 normalises `le` on ingestion (Go's %g plus ".0"); Envoy prints {:.32g}.
    assert prometheus_le(float(bound)) == prom
    assert envoy_le(float(bound)) == envoy


def test_counter_samples_sorted_with_name_and_no_empty_values() -> None:
    r = MetricsRegistry()
    c = r.counter("x_total", "help", ("zeta", "alpha", "empty"))
    c.labels(("z", "a", "")).inc()
    c.labels(("z", "a", "")).inc(2)
    c.labels(("z2", "a", "e")).value += 5
    assert sorted(r.samples()) == [
        ((("__name__", "x_total"), ("alpha", "a"), ("empty", "e"), ("zeta", "z2")), 5.0),
        ((("__name__", "x_total"), ("alpha", "a"), ("zeta", "z")), 3.0),
    ]


def test_histogram_expands_like_a_scrape() -> None:
    r = MetricsRegistry()
    h = r.histogram("d_ms", "help", ("b", "A", "z"), buckets=(1, 5, 3600000))
    cell = h.labels(("bv", "Av", "zv"))
    for v in (0, 1, 2, 5, 7, 3600001):
        cell.observe(v)
    got = dict(r.samples())
    base = (("A", "Av"),)
    assert got[base + (("__name__", "d_ms_bucket"), ("b", "bv"), ("le", "1.0"), ("z", "zv"))] == 2  # 0 and 1 (le)
    assert got[base + (("__name__", "d_ms_bucket"), ("b", "bv"), ("le", "5.0"), ("z", "zv"))] == 4
    assert got[base + (("__name__", "d_ms_bucket"), ("b", "bv"), ("le", "3.6e+06"), ("z", "zv"))] == 5
    assert got[base + (("__name__", "d_ms_bucket"), ("b", "bv"), ("le", "+Inf"), ("z", "zv"))] == 6
    assert got[base + (("__name__", "d_ms_sum"), ("b", "bv"), ("z", "zv"))] == 3600016
    assert got[base + (("__name__", "d_ms_count"), ("b", "bv"), ("z", "zv"))] == 6
    assert len(got) == 6
    for labels in got:
        assert list(labels) == sorted(labels)


def test_families_for_exposition() -> None:
    r = MetricsRegistry()
    r.counter("c_total", "Counts.", ("a",)).labels(("1",)).inc()
    r.histogram("h", "Sizes.", ("a",), buckets=(1, 1800000)).labels(("1",)).observe(3)
    r.counter("unused_total", "Never used.", ("a",))
    fams = {f.name: f for f in r.families()}
    assert fams["c_total"].type == "counter" and fams["c_total"].help == "Counts."
    assert [(s.name, s.labels, s.value) for s in fams["c_total"].samples] == [("c_total", (("a", "1"),), 1.0)]
    h = fams["h"]
    assert h.type == "histogram"
    assert [(s.name, s.labels, s.value) for s in h.samples] == [
        ("h_bucket", (("a", "1"), ("le", "1")), 0.0),
        ("h_bucket", (("a", "1"), ("le", "1800000")), 1.0),
        ("h_bucket", (("a", "1"), ("le", "+Inf")), 1.0),
        ("h_sum", (("a", "1"),), 3.0),
        ("h_count", (("a", "1"),), 1.0),
    ]
    assert fams["unused_total"].samples == []


def test_values_are_interned_across_families_and_removal() -> None:
    r = MetricsRegistry()
    names = ("pod", "code")
    c = r.counter("a_total", "", names)
    h = r.histogram("b", "", names)
    c.labels(("p1", "200")).inc()
    h.labels(("p1", "200")).observe(1)
    h.labels(("p2", "200")).observe(1)
    [kc] = c.cells
    kh = next(k for k in h.cells if k[0] == "p1")
    assert kc is kh  # one tuple shared by both families
    assert r.series_count == 3
    assert r.remove_where(lambda n, v: v[0] == "p1") == 2
    assert r.series_count == 1
    assert {dict(lbl)["__name__"] for lbl, _ in r.samples()} == {"b_bucket", "b_sum", "b_count"}


def test_bad_definitions() -> None:
    r = MetricsRegistry()
    r.counter("x", "", ())
    with pytest.raises(ValueError):
        r.counter("x", "", ())
    with pytest.raises(ValueError):
        r.histogram("h", "", ("le",))
    with pytest.raises(ValueError):
        r.histogram("h2", "", (), buckets=(5, 1))
    with pytest.raises(ValueError):
        r.counter("y", "", ("a",)).labels(("1", "2"))
