"""A Python port of Prometheus's promqltest harness: parses `.test` scripts (load / clear / eval) and runs
each eval block against `Engine(MemStorage)` with the harness's semantics (1e-6 relative epsilon, NaN equals
NaN, order ignored unless `ordered`, the @-modifier and instant-as-range re-runs).

The scripts are Prometheus's own (Apache-2.0) and are read from /work/shared/promqltest at test time.
Blocks needing features Sluice does not implement (native histograms, experimental syntax) are skipped and
counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from sluice.metrics.promql import Engine, PromQLError, parse
from sluice.metrics.promql import ast as A
from sluice.metrics.promql.calls import almost_equal
from sluice.metrics.promql.functions import AT_MODIFIER_UNSAFE
from sluice.metrics.promql.lexer import unquote
from sluice.metrics.promql.parser import parse_duration
from sluice.metrics.promql.values import Sample, Scalar, Series, String
from sluice.metrics.series import METRIC_NAME, STALE_NAN, Labels, MemStorage, labels_of

__all__ = ["run_file", "FileReport"]

_EVAL_INSTANT = re.compile(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
_EVAL_RANGE = re.compile(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
_EXPECT = re.compile(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_NUM = r"(?:[-+]?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[iI]nf|NaN|nan))"
_UNUM = r"(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[iI]nf|NaN|nan)"
_ITEM_STEP = re.compile(rf"^({_NUM})([-+])({_UNUM})x(\d+)$")
_ITEM_REPEAT = re.compile(rf"^({_NUM}|_|stale)x(\d+)$")
_QUERY_CONTEXT = re.compile(r"\b(start|end|range|step)\(\)")
# Syntax and functions Sluice does not implement (experimental in Prometheus) or native-histogram-only.
_UNSUPPORTED = re.compile(
    r"\b(limitk|limit_ratio|info|start_timestamp)\s*\(|\banchored\b|\bsmoothed\b|\bfill(_left|_right)?\s*\(|"
    r"__type__|__unit__|\b(step|range)\(\)|(?:^|[^@\s])\s*\b(start|end)\(\)|\[[^\]:]*[-+*/^%(][^\]]*\]|\boffset\s*\(|@st\b")
EPSILON = 1e-6


@dataclass
class FileReport:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


def _duration_ms(s: str) -> int:
    s = s.strip()
    neg = s.startswith("-")
    s = s.lstrip("-")
    try:
        v = parse_duration(s)
    except ValueError:
        v = round(float(s) * 1000)
    return -v if neg else v


def _number(s: str) -> float:
    low = s.lower()
    if low.lstrip("+-").startswith("0x"):
        return float(int(s, 16))
    return float(s)


def _split_series(line: str) -> tuple[str, str]:
    """Split `metric{a="b c"} 1 2 3` into the selector text and the values text."""
    line = line.strip()
    i, depth, quote = 0, 0, ""
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return line[: i + 1], line[i + 1:].strip()
        elif c.isspace() and depth == 0:
            return line[:i], line[i:].strip()
        i += 1
    return line, ""


def _parse_metric(text: str) -> Labels:
    text = text.strip()
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?(\{.*\})?$", text)
    if not m:
        raise ValueError(f"bad series {text!r}")
    out: dict[str, str] = {}
    if m.group(1):
        out[METRIC_NAME] = m.group(1)
    body = (m.group(2) or "{}")[1:-1]
    for lm in re.finditer(r'\s*([a-zA-Z_][a-zA-Z0-9_]*|"(?:[^"\\]|\\.)*")\s*=\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')\s*,?', body):
        name = lm.group(1)
        out[unquote(name) if name.startswith('"') else name] = unquote(lm.group(2))
    return labels_of(out)


def _expand(values: str) -> list[float | None]:
    """Expanding notation: `a+bxn` is n+1 values, `_` a gap, `_xn` n gaps, `stale` a stale marker."""
    out: list[float | None] = []
    for item in values.split():
        if item == "_":
            out.append(None)
            continue
        if item == "stale":
            out.append(STALE_NAN)
            continue
        m = _ITEM_STEP.match(item)
        if m:
            a, b, n = _number(m.group(1)), _number(m.group(3)), int(m.group(4))
            if m.group(2) == "-":
                b = -b
            out.extend(a + i * b for i in range(n + 1))
            continue
        m = _ITEM_REPEAT.match(item)
        if m:
            n = int(m.group(2))
            if m.group(1) == "_":
                out.extend([None] * n)
            else:
                v = STALE_NAN if m.group(1) == "stale" else _number(m.group(1))
                out.extend([v] * (n + 1))
            continue
        out.append(_number(item))
    return out


def _almost_equal(a: float, b: float) -> bool:
    return almost_equal(a, b, EPSILON)


@dataclass
class _Eval:
    line: int
    expr: str
    instant: bool
    start: int
    end: int
    step: int
    fail: bool = False
    fail_msg: str | None = None
    fail_regex: str | None = None
    ordered: bool = False
    expect_scalar: float | None = None
    expect_string: str | None = None
    exclude_from_range: bool = False
    metrics: dict[Labels, list[float | None]] = field(default_factory=dict)
    order: list[Labels] = field(default_factory=list)
    native: bool = False


class _Mismatch(Exception):
    pass


def _at_rewrite(node: A.Expr, t: int) -> A.Expr:
    """Set `@ t` on every selector and top-level subquery without one (not inside subqueries)."""
    if isinstance(node, A.VectorSelector):
        return node if node.at_ms is not None and not node.at_special else replace(node, at_ms=t, at_special=None)
    if isinstance(node, A.MatrixSelector):
        vs = node.vs
        if vs.at_ms is None or vs.at_special:
            vs = replace(vs, at_ms=t, at_special=None)
        return replace(node, vs=vs)
    if isinstance(node, A.SubqueryExpr):
        return node if node.at_ms is not None and not node.at_special else replace(node, at_ms=t, at_special=None)
    if isinstance(node, (A.ParenExpr, A.UnaryExpr)):
        return replace(node, expr=_at_rewrite(node.expr, t))
    if isinstance(node, A.BinaryExpr):
        return replace(node, lhs=_at_rewrite(node.lhs, t), rhs=_at_rewrite(node.rhs, t))
    if isinstance(node, A.AggregateExpr):
        param = _at_rewrite(node.param, t) if node.param is not None else None
        return replace(node, expr=_at_rewrite(node.expr, t), param=param)
    if isinstance(node, A.Call):
        return replace(node, args=tuple(_at_rewrite(a, t) for a in node.args))
    return node


def _compare(ev: _Eval, result: object, *, rng: tuple[int, int, int] | None = None) -> None:
    if isinstance(result, Scalar):
        if ev.expect_scalar is None:
            raise _Mismatch(f"expected vector or matrix result, but got scalar {result.value}")
        if not _almost_equal(ev.expect_scalar, result.value):
            raise _Mismatch(f"expected scalar {ev.expect_scalar} but got {result.value}")
        return
    if isinstance(result, String):
        if ev.expect_string != result.value:
            raise _Mismatch(f"expected string {ev.expect_string!r} but got {result.value!r}")
        return
    assert isinstance(result, list)
    if ev.expect_scalar is not None:
        raise _Mismatch(f"expected scalar result, but got {result}")
    if result and isinstance(result[0], Series) or rng is not None:
        start, end, step = rng if rng is not None else (ev.start, ev.end, ev.step)
        seen = set()
        for s in result:
            assert isinstance(s, Series)
            if s.metric not in ev.metrics:
                raise _Mismatch(f"unexpected metric {s.metric} in result, has {s.points}")
            seen.add(s.metric)
            exp = [(start + i * step, v) for i, v in enumerate(ev.metrics[s.metric]) if v is not None]
            if len(exp) != len(s.timestamps):
                raise _Mismatch(f"expected {exp} for {s.metric}, got {s.points}")
            for (et, evv), at, av in zip(exp, s.timestamps, s.values, strict=True):
                if et != at or not _almost_equal(evv, av):
                    raise _Mismatch(f"expected {exp} for {s.metric}, got {s.points}")
        missing = set(ev.metrics) - seen
        if missing:
            raise _Mismatch(f"expected metrics {sorted(missing)} not found")
        return
    seen_v = set()
    for pos, smp in enumerate(result):
        assert isinstance(smp, Sample)
        if smp.metric not in ev.metrics:
            raise _Mismatch(f"unexpected metric {smp.metric} in result, has value {smp.value}")
        if ev.ordered and ev.order.index(smp.metric) != pos:
            raise _Mismatch(f"expected metric {smp.metric} at position {ev.order.index(smp.metric)} but was at {pos}")
        exp0 = ev.metrics[smp.metric][0]
        if exp0 is None or not _almost_equal(exp0, smp.value):
            raise _Mismatch(f"expected {exp0} for {smp.metric} but got {smp.value}")
        seen_v.add(smp.metric)
    missing = set(ev.metrics) - seen_v
    if missing:
        raise _Mismatch(f"expected metrics {sorted(missing)} not found")


def _check_fail(ev: _Eval, err: Exception) -> None:
    text = str(err)
    if ev.fail_msg is not None and ev.fail_msg.strip() != text.strip():
        raise _Mismatch(f"expected error {ev.fail_msg!r}, got {text!r}")
    if ev.fail_regex is not None and not re.search(ev.fail_regex.strip(), text):
        raise _Mismatch(f"expected error matching {ev.fail_regex!r}, got {text!r}")


def _run_instant(engine: Engine, ev: _Eval, expr: str, t: int) -> None:
    try:
        res = engine.instant(expr, t)
    except PromQLError as e:
        if ev.fail:
            _check_fail(ev, e)
            return
        raise _Mismatch(f"error evaluating {expr!r} at {t}: {e}") from e
    if ev.fail:
        raise _Mismatch(f"expected error evaluating {expr!r} at {t} but got none")
    if ev.expect_string is None and ev.exclude_from_range:  # instant query returning a matrix
        _compare(ev, res.value, rng=(ev.start, ev.end, ev.step))
        return
    _compare(ev, res.value)
    if ev.exclude_from_range or _QUERY_CONTEXT.search(expr) or ev.ordered:
        return
    try:
        rres = engine.range(expr, t - 60_000, t + 60_000, 60_000)
    except PromQLError as e:
        raise _Mismatch(f"error evaluating {expr!r} in range mode: {e}") from e
    mat = rres.value
    assert isinstance(mat, list)
    if [s.metric for s in mat] != sorted(s.metric for s in mat):
        raise _Mismatch("range result not sorted by labels")
    vec: list[Sample] = []
    for s in mat:
        assert isinstance(s, Series)
        for st, sv in zip(s.timestamps, s.values, strict=True):
            if st == t:
                vec.append(Sample(s.metric, sv, st))
    if isinstance(res.value, Scalar):
        _compare(ev, Scalar(t, vec[0].value if vec else math.nan))
    else:
        _compare(ev, vec)


def _exec(engine: Engine, ev: _Eval) -> None:
    if not ev.instant:
        try:
            res = engine.range(ev.expr, ev.start, ev.end, ev.step)
        except PromQLError as e:
            if ev.fail:
                _check_fail(ev, e)
                return
            raise _Mismatch(f"error evaluating range query {ev.expr!r}: {e}") from e
        if ev.fail:
            raise _Mismatch("expected error but got none")
        _compare(ev, res.value, rng=(ev.start, ev.end, ev.step))
        return
    t = ev.end
    _run_instant(engine, ev, ev.expr, t)
    try:
        node = parse(ev.expr)
    except PromQLError:
        return
    if any(isinstance(n, A.Call) and n.func in AT_MODIFIER_UNSAFE for n in A.walk(node)):
        return
    at_expr = str(_at_rewrite(node, t))
    for et in ([-1000, 0, 1000] if t == 0 else [-10 * t, 0, t // 5, t, 10 * t]):
        _run_instant(engine, ev, at_expr, et)


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Commands: a header line and its following non-blank lines (comments dropped)."""
    out: list[tuple[int, list[str]]] = []
    cur: list[str] | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.strip().startswith("#"):
            continue
        if not line.strip():
            cur = None
            continue
        if cur is None or not raw[:1].isspace() and (line.startswith(("eval", "load")) or line == "clear"):
            cur = [line.strip()]
            out.append((no, cur))
        else:
            cur.append(line.strip())
    return out


def run_file(path: Path) -> FileReport:
    rep = FileReport(path.stem)
    storage = MemStorage()
    engine = Engine(storage, max_samples=50_000_000)
    native_names: set[str] = set()
    native_series: list[Labels] = []
    for no, lines in _blocks(path.read_text()):
        head = lines[0]
        if head == "clear":
            storage.clear()
            native_names.clear()
            native_series.clear()
            continue
        if head.startswith("load"):
            m = re.match(r"^load(_with_nhcb)?\s+(\S+)$", head)
            assert m, head
            nhcb = bool(m.group(1))
            interval = parse_duration(m.group(2))
            for ln in lines[1:]:
                sel, vals = _split_series(ln)
                if sel.endswith("@st") or "@st" in ln:
                    native_names.add(sel)
                    continue
                labels = _parse_metric(sel)
                if "{{" in vals:
                    native_names.add(dict(labels).get(METRIC_NAME, sel))
                    native_series.append(labels)
                    continue
                name = dict(labels).get(METRIC_NAME, "")
                if nhcb and re.search(r"_(bucket|count|sum)$", name):
                    # load_with_nhcb also stores these as one native histogram under the base name.
                    base = re.sub(r"_(bucket|count|sum)$", "", name)
                    native_names.add(base)
                    native_series.append(tuple(sorted({**dict(labels), METRIC_NAME: base}.items())))
                for k, v in enumerate(_expand(vals)):
                    if v is not None:
                        storage.append(labels, k * interval, v)
            continue
        ev = _parse_eval(no, lines)
        if ev is None:
            rep.skip("unparsable eval")
            continue
        if ev.native or any(re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", ev.expr) for n in native_names):
            rep.skip("native histograms")
            continue
        if _UNSUPPORTED.search(ev.expr):
            rep.skip("experimental feature")
            continue
        try:
            _exec(engine, ev)
            rep.passed += 1
        except (_Mismatch, PromQLError, ArithmeticError, ValueError, KeyError, IndexError, AssertionError) as e:
            if _touches(ev.expr, native_series):
                # The selector also matches native-histogram series, which this harness does not load.
                rep.skip("native histograms")
                continue
            rep.failed += 1
            rep.failures.append(f"{path.name}:{no}: {ev.expr}: {type(e).__name__}: {e}")
    return rep


def _touches(expr: str, native: list[Labels]) -> bool:
    """Whether a selector in expr matches a native-histogram series (which this harness does not load)."""
    if not native:
        return False
    try:
        node = parse(expr)
    except PromQLError:
        return False
    for n in A.walk(node):
        vs = n.vs if isinstance(n, A.MatrixSelector) else n
        if isinstance(vs, A.VectorSelector):
            for lbls in native:
                d = dict(lbls)
                if all(m.matches(d.get(m.name, "")) for m in vs.matchers):
                    return True
    return False


def _parse_eval(no: int, lines: list[str]) -> _Eval | None:
    head = lines[0]
    mi, mr = _EVAL_INSTANT.match(head), _EVAL_RANGE.match(head)
    if mi:
        t = _duration_ms(mi.group(2) or "0")
        ev = _Eval(no, mi.group(3), True, t, t, 0)
        mod = mi.group(1)
    elif mr:
        ev = _Eval(no, mr.group(5), False, _duration_ms(mr.group(2)), _duration_ms(mr.group(3)),
                   _duration_ms(mr.group(4)))
        mod = mr.group(1)
    else:
        return None
    ev.fail = mod == "fail"
    ev.ordered = mod == "ordered"
    for ln in lines[1:]:
        if ln.startswith("expected_fail_message"):
            ev.fail_msg = ln[len("expected_fail_message"):].strip()
            continue
        if ln.startswith("expected_fail_regexp"):
            ev.fail_regex = ln[len("expected_fail_regexp"):].strip()
            continue
        m = _EXPECT_RANGE.match(ln)
        if m:
            ev.start, ev.end, ev.step = (_duration_ms(m.group(i)) for i in (1, 2, 3))
            ev.exclude_from_range = True
            continue
        if ln.startswith("expect string"):
            ev.expect_string = unquote(ln[len("expect string"):].strip())
            ev.exclude_from_range = True
            continue
        if ln.split(" ")[0] == "expect":
            m = _EXPECT.match(ln)
            if m is None:
                return None
            kind = m.group(1)
            if kind == "fail":
                ev.fail = True
                if m.group(2) == "msg":
                    ev.fail_msg = m.group(3)
                elif m.group(2) == "regex":
                    ev.fail_regex = m.group(3)
            elif kind == "ordered":
                ev.ordered = True
            continue  # warn/info annotations are not checked
        if "{{" in ln:
            ev.native = True
            continue
        try:
            ev.expect_scalar = _number(ln)
            continue
        except ValueError:
            pass
        sel, vals = _split_series(ln)
        labels = _parse_metric(sel)
        ev.metrics[labels] = _expand(vals)
        ev.order.append(labels)
    return ev
