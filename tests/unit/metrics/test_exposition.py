"""The text exposition format, checked by parsing our output back with an independent reader."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sluice.metrics.exposition import Family, Sample, format_g, histogram_samples, render
from sluice.metrics.series import Labels

_LINE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), s)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, str], float]]]:
    """A strict little reader: returns {family: (type, help)} and the samples, enforcing the format's rules."""
    assert text.endswith("\n")
    meta: dict[str, dict[str, str]] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    current = None
    finished: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, *rest = line[2:].split(" ", 2)
            assert kind in ("HELP", "TYPE")
            assert kind not in meta.get(name, {}), f"second {kind} for {name}"
            assert name not in finished, f"{name} metadata after its group ended"
            if current is not None and current != name:
                finished.add(current)
            current = name
            meta.setdefault(name, {})[kind] = _unescape(rest[0]) if rest else ""
            continue
        m = _LINE.fullmatch(line)
        assert m, line
        name, inner, value, _ = m.groups()
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in meta), name)
        assert "TYPE" in meta.get(family, {}), f"sample {name} before its TYPE"
        assert family == current, f"{name} outside its family's group"
        labels = {k: _unescape(v) for k, v in _LABEL.findall(inner or "")}
        samples.append((name, labels, float(value)))
    return {k: (v["TYPE"], v.get("HELP", "")) for k, v in meta.items()}, samples


def test_counter_and_gauge_with_escaping() -> None:
    text = render([
        Family("reqs_total", "counter", 'Requests.\nWith "quotes" and \\ backslash', [
            Sample("reqs_total", (("code", "200"), ("path", 'a"b\\c\nd')), 3.0),
            Sample("reqs_total", (("code", "500"),), 1234567.0),
        ]),
        Family("temp", "gauge", "", [Sample("temp", (), -0.5, timestamp_ms=1700000000000)]),
    ])
    assert text == (
        '# HELP reqs_total Requests.\\nWith "quotes" and \\\\ backslash\n'
        "# TYPE reqs_total counter\n"
        'reqs_total{code="200",path="a\\"b\\\\c\\nd"} 3\n'
        'reqs_total{code="500"} 1.234567e+06\n'
        "# TYPE temp gauge\n"
        "temp -0.5 1700000000000\n")
    meta, samples = parse(text)
    assert meta["reqs_total"] == ("counter", 'Requests.\nWith "quotes" and \\ backslash')
    assert samples[0][1]["path"] == 'a"b\\c\nd'


def test_histogram_lines_are_cumulative_and_end_with_inf_equal_to_count() -> None:
    base: Labels = (("app", "reviews"),)
    buckets = [(1000.0, 1.0), (0.5, 2.0), (5.0, 0.0), (3_600_000.0, 4.0)]
    text = render([Family("lat_ms", "histogram", "latency", histogram_samples("lat_ms", base, buckets, 42.5))])
    meta, samples = parse(text)
    assert meta == {"lat_ms": ("histogram", "latency")}
    bucket_lines = [(s[1]["le"], s[2]) for s in samples if s[0] == "lat_ms_bucket"]
    assert bucket_lines == [("0.5", 2), ("5", 2), ("1000", 3), ("3.6e+06", 7), ("+Inf", 7)]
    assert [s[0] for s in samples[-2:]] == ["lat_ms_sum", "lat_ms_count"]
    assert samples[-1][2] == bucket_lines[-1][1] and samples[-2][2] == 42.5
    assert all(s[1]["app"] == "reviews" for s in samples)


def test_families_with_one_name_are_merged_into_one_group() -> None:
    text = render([Family("x", "counter", "h", [Sample("x", (("a", "1"),), 1)]),
                   Family("y", "gauge", "", [Sample("y", (), 2)]),
                   Family("x", "counter", "h", [Sample("x", (("a", "2"),), 3)])])
    meta, samples = parse(text)
    assert [s[0] for s in samples] == ["x", "x", "y"]
    assert text.count("# TYPE x") == 1


def test_special_values() -> None:
    text = render([Family("v", "gauge", "", [Sample("v", (("i", str(i)),), x)
                                             for i, x in enumerate([math.nan, math.inf, -math.inf, 0.0, 1e-05])])])
    assert [line.split(" ")[1] for line in text.splitlines()[1:]] == ["NaN", "+Inf", "-Inf", "0", "1e-05"]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_g_round_trips_and_uses_gos_layout(v: float) -> None:
    text = format_g(v)
    assert float(text) == v
    exp = Decimal(repr(abs(v))).adjusted()  # the decimal exponent of the shortest digits
    assert ("e" in text) == (v != 0 and (exp < -4 or exp >= 6))


def test_format_g_examples() -> None:
    assert [format_g(x) for x in (1.0, 0.5, 100000.0, 1e6, 0.0001, 0.00001, 123456.7, 2.5e-7)] == [
        "1", "0.5", "100000", "1e+06", "0.0001", "1e-05", "123456.7", "2.5e-07"]
