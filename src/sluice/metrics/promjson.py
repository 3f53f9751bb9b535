"""Prometheus's JSON for query results (web/api/v1, util/jsonutil), byte for byte, at the speed a range query's
answer needs: a 1 h range at 15 s is 241 points per series, and `repr` alone costs about 0.5 µs a float.

Values are strings in Go's `strconv.FormatFloat(v, 'f', -1, 64)` format ('e' below 1e-6 and from 1e21 on,
`NaN`, `+Inf`, `-Inf`); timestamps are seconds with at most three decimals. orjson writes floats with the
same shortest round-trip digits as Python's `repr` and Go, in fixed notation between 1e-5 and 1e16, so a
whole series is formatted in one C call and only the texts where the layouts differ are patched: a trailing
`.0` (Go writes `1`, orjson `1.0`), exponents and the non-finite values (orjson writes `null`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import orjson

from sluice.metrics.promql.format import format_float
from sluice.metrics.promql.values import Sample, Series
from sluice.metrics.series import Labels

__all__ = ["format_value", "format_values", "format_timestamp", "format_timestamps", "jdump", "jstr",
           "jlabels", "vector_json", "matrix_json"]


def format_value(v: float) -> str:
    """A sample value as Prometheus's JSON writes it (Go 'f' format, 'e' outside [1e-6, 1e21))."""
    if v == v and v not in (math.inf, -math.inf):
        a = abs(v)
        if 1e-4 <= a < 1e16:
            # Here repr prints the same shortest digits as Go, in fixed notation; only "x.0" differs.
            r = repr(v)
            return r[:-2] if r.endswith(".0") else r
    return format_float(v)


def _floats_text(arr: object) -> str | None:
    """orjson's texts for a list (or float64 array) of floats, each followed by a comma and with `.0` dropped;
    None when orjson refuses it."""
    try:
        text = orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None
    # Every item is followed by a comma here, so ".0," is exactly an item ending in ".0".
    return (text[1:-1] + ",").replace(".0,", ",")


def format_values(values: Sequence[float]) -> list[str]:
    """`format_value` over many values at once."""
    if not values:
        return []
    text = _floats_text(values if isinstance(values, list) else list(values))
    if text is None or text.count(",") != len(values):
        return [format_value(float(v)) for v in values]
    out = text[:-1].split(",")
    if "e" in text or "n" in text:  # an exponent (Go's differs from orjson's) or null (NaN, ±Inf)
        for i, s in enumerate(out):
            if "e" in s or "n" in s:
                out[i] = format_value(values[i])
    return out


def format_timestamp(t_ms: int) -> str:
    """Seconds with at most three decimals, built from integer ms so no float artefacts appear."""
    sign = "-" if t_ms < 0 else ""
    whole, frac = divmod(abs(t_ms), 1000)
    return f"{sign}{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else f"{sign}{whole}"


# Below 1e12 s a double's spacing is under 0.00013 s, so the double nearest `ms / 1000` has that decimal (at most
# three places) as its shortest round-trip text; above, neighbouring ms could print alike.
_EXACT_MS = 10**15


def format_timestamps(ts: Sequence[int]) -> list[str]:
    """`format_timestamp` over many at once: ms / 1000 as a float prints as exactly that decimal (seconds
    below 1e16 are in orjson's fixed notation), so orjson formats them all in one call."""
    if ts and -_EXACT_MS < min(ts) and max(ts) < _EXACT_MS:
        text = _floats_text(np.asarray(ts, dtype=np.int64) / 1000)
        if text is not None and text.count(",") == len(ts):
            return text[:-1].split(",")
    return list(map(format_timestamp, ts))


def jdump(obj: object) -> str:
    """Compact JSON as Go's encoding/json (and jsoniter in compatible mode) writes it: UTF-8 kept, HTML
    characters and U+2028/9 escaped (safe to replace on the whole text: they can only occur in strings)."""
    out = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if any(c in out for c in "<>&\u2028\u2029"):
        out = (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
               .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return out


# Printable ASCII that JSON and Go's HTML-safe encoder both write as is (no quote, backslash, <, >, &).
_PLAIN = re.compile(r"[ !#-%'-;=?-\[\]-~]*")


def jstr(s: str) -> str:
    """A JSON string as `jdump` writes it; label names and values are nearly always plain, written directly."""
    if _PLAIN.fullmatch(s):
        return f'"{s}"'
    return jdump(s)


_label_json: dict[Labels, str] = {}  # a dashboard's refreshes return the same series: encode each once


def jlabels(labels: Labels) -> str:
    out = _label_json.get(labels)
    if out is None:
        out = "{" + ",".join(f"{jstr(k)}:{jstr(v)}" for k, v in labels) + "}"
        if len(_label_json) > 50_000:
            _label_json.clear()
        _label_json[labels] = out
    return out


def vector_json(samples: Sequence[Sample]) -> str:
    if not samples:
        return "[]"
    values = format_values([s.value for s in samples])
    stamps: dict[int, str] = {}  # an instant query's samples share one time
    parts = []
    for s, v in zip(samples, values, strict=True):
        t = stamps.get(s.t)
        if t is None:
            t = stamps[s.t] = format_timestamp(s.t)
        parts.append(f'{{"metric":{jlabels(s.metric)},"value":[{t},"{v}"]}}')
    return "[" + ",".join(parts) + "]"


def _separators(ts: Sequence[int]) -> list[str]:
    """`"],[<time>,"` for each time (ascending, as a series' are), from one orjson text of all of them (see
    `format_timestamps`)."""
    text = None
    try:
        ms = np.asarray(ts, dtype=np.int64)
    except OverflowError:  # past int64: no time of a query's answer
        ms = None
    if ms is not None and len(ms) and -_EXACT_MS < int(ms[0]) and int(ms[-1]) < _EXACT_MS:
        rem = ms % 1000
        r0 = int(rem[0])
        if ms[0] >= 0 and not (rem != r0).any():
            # A range query's steps share their milliseconds (whole-second steps): whole seconds as integers,
            # the same decimals after each.
            body = orjson.dumps(ms // 1000, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1]
            frac = f".{r0:03d}".rstrip("0") if r0 else ""
            return ('"],[' + body.replace(",", frac + ',"\0"],[') + frac + ',"').split("\0")
        text = _floats_text(ms / 1000)
    if text is None or text.count(",") != len(ts):
        return [f'"],[{format_timestamp(t)},"' for t in ts]
    # `t0,t1,…,` → `"],[t0,"` `"],[t1,"` …: one replace and one split (a time's text never holds a NUL).
    return ('"],[' + text.replace(",", ',"\0"],[')).split("\0")[:-1]


class _Grid:
    """The separators of the times met so far. A range query's series mostly share all their times: a series
    whose times are the previous one's reuses its separators without a look-up per point."""

    def __init__(self) -> None:
        self._between: dict[int, str] = {}
        self._last: tuple[list[int] | None, list[str]] = (None, [])

    def separators(self, ts: Sequence[int]) -> list[str]:
        last_ts, last_seps = self._last
        if type(ts) is list and ts == last_ts:
            return last_seps
        between = self._between
        if last_ts is not None and not between:
            between.update(zip(last_ts, last_seps, strict=True))  # kept only once a second grid shows up
        if not between:
            seps = _separators(ts)
        else:
            new = [t for t in ts if t not in between]
            if new:
                between.update(zip(new, _separators(new), strict=True))
            seps = list(map(between.__getitem__, ts))
        self._last = (list(ts), seps)
        return seps


def matrix_json(series: Iterable[Series]) -> str:
    """The series in the order given. Each series' points are one join over the texts of its values
    interleaved with the texts between them (`"],[<time>,"`), which a range query's series share."""
    grid = _Grid()
    parts = []
    for s in series:
        ts = s.timestamps
        if not ts:
            parts.append(f'{{"metric":{jlabels(s.metric)},"values":[]}}')
            continue
        seps = grid.separators(ts)
        values = format_values(s.values)
        if len(values) != len(ts):
            raise ValueError(f"series {s.metric} has {len(ts)} timestamps and {len(values)} values")
        pieces: list[str] = [""] * (2 * len(ts))
        pieces[0::2] = seps
        pieces[1::2] = values
        pieces[0] = "[[" + pieces[0][4:]  # the first point opens the list instead of closing a point
        parts.append(f'{{"metric":{jlabels(s.metric)},"values":{"".join(pieces)}"]]}}')
    return "[" + ",".join(parts) + "]"
