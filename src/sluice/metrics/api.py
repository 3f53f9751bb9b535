"""Prometheus's HTTP API (`/api/v1/...`) over any `Storage` and PromQL engine, as a `sluice.httpserver.App`.

The daemon mounts `metrics_app(...)` on the metrics port (127.0.0.1:9090); Grafana, `promtool`, the console and
`sluice query` talk to it exactly as to Prometheus. What is copied from Prometheus (web/api/v1/api.go,
util/jsonutil) is the observable contract: the envelope, error types and their HTTP codes, parameter syntax and
error texts, and the JSON encoding of values (strings in Go's float format) and timestamps (seconds with at
most three decimals). Queries (evaluation and the encoding of their results) run in a `QueryPool` worker, so
the event loop that also serves the API server and xDS never waits for one; a full pool answers 503. The one
exception is a query seen before whose cost `sluice.metrics.promql.cost` bounds small from the storage's
bookkeeping (`INLINE_MAX_*`): for those the hand-over to a worker and back would be most of the answer's time,
so they are evaluated on the loop, still counted against the pool's limits and within a budget of loop time
(`InlineBudget`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from multidict import MultiDict, MultiMapping

from sluice.hostguard import host_refusal
from sluice.httpserver import App, Handler, Request, Response
from sluice.metrics.promjson import format_timestamp, format_value, matrix_json, vector_json
from sluice.metrics.promjson import jdump as _jdump
from sluice.metrics.promjson import jlabels as _jlabels
from sluice.metrics.promjson import jstr as _jstr
from sluice.metrics.promql import cost
from sluice.metrics.promql.ast import VectorSelector
from sluice.metrics.promql.errors import ParseError, PromQLError, QueryCanceled, QueryTimeout
from sluice.metrics.promql.format import go_quote
from sluice.metrics.promql.parser import parse
from sluice.metrics.series import Labels, Matcher, Storage
from sluice.metrics.workers import PoolFull, QueryPool

__all__ = ["metrics_app", "InlineBudget", "QueryEngine", "EngineFactory", "ApiError", "parse_time", "parse_duration",
           "format_value", "format_timestamp", "parse_selector"]

log = logging.getLogger(__name__)

# Bounds Prometheus uses for optional start/end (web/api/v1 MinTime/MaxTime), in ms, and their RFC 3339 text.
MIN_TIME_MS = (-(2**63 // 1000) + 62135596801) * 1000
MAX_TIME_MS = (((2**63 - 1) // 1000) - 62135596801) * 1000 + 999
_MIN_TIME_TEXT = "-292273086-05-17T16:47:06Z"
_MAX_TIME_TEXT = "292277025-08-18T07:12:54.999999999Z"
MAX_POINTS = 11_000
DEFAULT_LOOKBACK_MS = 300_000
# A query is evaluated on the loop itself, without the hand-over to a worker and back, only when
# `cost.Plan.bounded` proves it reads at most this many (weighted) samples and its instant-vector nodes hold at
# most this many series × steps (more for a range query, which must be column-wise throughout). At these bounds
# evaluation takes at most a few milliseconds here (docs/benchmarks.md, "PromQL query latency").
INLINE_MAX_SAMPLES = 8192
INLINE_MAX_CELLS = 1024
INLINE_MAX_CELLS_RANGE = 16384
# What the bound cannot see (a counter reset in every window sends rate() down its per-window path) is caught
# at run time: evaluation on the loop stops at its first deadline check past this, and the query goes to a
# worker after all, as every later repeat of it does.
INLINE_DEADLINE_S = 0.003
# And the loop's time spent so, over all queries, is capped: a client sending ever new query texts, each
# bounded small yet slow on the loop, costs it at most this share of a second per second (a token bucket);
# past it, small queries wait for a worker like any other until the budget refills. Half, not less: a worker
# evaluating the same queries holds the GIL as much (and the loop waits up to the 5 ms switch interval for it,
# longer than an attempt here may run), so below half the loop keeps nothing it would keep otherwise, while a
# smaller share sent a busy dashboard's small queries through the hand-off they are evaluated here to avoid
# (at 5 %, 0.47 instead of 0.40 ms for a one-series range query sent back to back: docs/benchmarks.md).
INLINE_BUDGET_S = 0.05
INLINE_SHARE = 0.5
_PLANS_MAX = 1024  # plans of queries seen (dashboards send the same few over and over)

_JSON = "application/json"
# errorType → HTTP status (getDefaultErrorCode); anything else is 500.
ERROR_CODES = {"bad_data": 400, "execution": 422, "canceled": 499, "timeout": 503, "internal": 500,
               "not_found": 404, "not_acceptable": 406, "unavailable": 503}


class QueryResultLike(Protocol):
    type: str
    value: Any
    warnings: list[str]
    infos: list[str]


class QueryEngine(Protocol):
    """Raises `QueryTimeout` when evaluation passes `timeout_s` (None: the engine's own limit)."""

    def instant(self, expr: str, t_ms: int, *, timeout_s: float | None = None) -> Any: ...

    def range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, *,
              timeout_s: float | None = None) -> Any: ...


# Called once per query with the query's `lookback_delta` in ms (None: the engine's default).
EngineFactory = Callable[[int | None], QueryEngine]


class ApiError(Exception):
    def __init__(self, typ: str, message: str) -> None:
        super().__init__(message)
        self.typ = typ
        self.message = message


def _invalid(param: str, err: str) -> ApiError:
    return ApiError("bad_data", f"invalid parameter {go_quote(param)}: {err}")


# ---- parameters --------------------------------------------------------------------------------------------

_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def parse_time(s: str) -> int:
    """Prometheus's `parseTime`: Unix seconds as a float (rounded to ms) or RFC 3339; returns ms."""
    if _GO_FLOAT.fullmatch(s):
        frac, whole = math.modf(float(s))
        if math.isfinite(whole):
            return int(whole) * 1000 + _round_half_away(frac * 1000)
    m = _RFC3339.fullmatch(s)
    if m:
        year, month, day, hh, mm, ss, frac_s, zone = m.groups()
        try:
            tz = "+00:00" if zone == "Z" else zone
            dt = datetime.fromisoformat(f"{year}-{month}-{day}T{hh}:{mm}:{ss}{tz}")
        except ValueError:
            pass
        else:
            ms = int(dt.timestamp()) * 1000  # whole seconds: exact for any offset
            return ms + int((frac_s or "0")[:3].ljust(3, "0"))
    if s == _MIN_TIME_TEXT:
        return MIN_TIME_MS
    if s == _MAX_TIME_TEXT:
        return MAX_TIME_MS
    raise ValueError(f"cannot parse {go_quote(s)} to a valid timestamp")


def parse_duration(s: str) -> int:
    """Prometheus's `parseDuration`: seconds as a float, or a duration like `1h30m`; returns ns."""
    if _GO_FLOAT.fullmatch(s):
        ns = float(s) * 1e9
        if not -(2.0**63) <= ns <= 2.0**63:
            raise ValueError(f"cannot parse {go_quote(s)} to a valid duration. It overflows int64")
        return int(ns)
    m = _DURATION.fullmatch(s)
    if s and m and any(m.groups()):
        ms = sum(int(g) * k for g, k in zip(m.groups(), _DURATION_MS, strict=True) if g)
        if ms * 1_000_000 < 2**63:
            return ms * 1_000_000
    raise ValueError(f"cannot parse {go_quote(s)} to a valid duration")


def _ns_to_ms(ns: int) -> int:
    return int(ns / 1_000_000) if abs(ns) < 2**53 else ns // 1_000_000


def _parse_limit(s: str) -> int:
    if s == "":
        return 0
    if not re.fullmatch(r"[+-]?\d+", s):
        raise _invalid("limit", f'strconv.Atoi: parsing {go_quote(s)}: invalid syntax')
    n = int(s)
    if not -(2**63) <= n < 2**63:
        raise _invalid("limit", f'strconv.Atoi: parsing {go_quote(s)}: value out of range')
    if n < 0:
        raise _invalid("limit", "limit must be non-negative")
    return n


class _Form:
    """Go's `r.Form`: POST form values first, then the URL's query values."""

    def __init__(self, query: MultiMapping[str], body: MultiMapping[str] | None) -> None:
        self._d: MultiDict[str] = MultiDict(body or ())
        self._d.extend(query)

    def get(self, name: str) -> str:
        return self._d.get(name, "")

    def getall(self, name: str) -> list[str]:
        return self._d.getall(name, [])


# A POST body past this is parsed in a query worker: a large form (tens of thousands of fields, a multipart
# body of many parts) takes milliseconds to parse, which the loop serving the API server must not spend.
FORM_ON_LOOP_MAX = 16 << 10


async def _form(request: Request, pool: QueryPool) -> _Form:
    if request.method != "POST":
        return _Form(request.query, None)
    if request.body_too_large:  # past the server's 1 MiB; Go's ParseForm stops at 10 MB with this text
        raise ApiError("bad_data", "error parsing form values: http: POST too large")
    try:
        if len(request.body) <= FORM_ON_LOOP_MAX:
            body = request.form()
        else:
            body = await pool.run(request.form)
    except PoolFull as e:
        raise ApiError("unavailable", str(e)) from None
    except ValueError as e:  # UnicodeDecodeError included
        raise ApiError("bad_data", f"error parsing form values: {e}") from None
    return _Form(request.query, body)


def _time_param(form: _Form, name: str, default: int) -> int:
    val = form.get(name)
    if val == "":
        return default
    try:
        return parse_time(val)
    except ValueError as e:
        raise _invalid(name, f"invalid time value for '{name}': {e}") from None


# ---- series selectors for match[] ---------------------------------------------------------------------------

def parse_selector(text: str) -> list[Matcher]:
    """A series selector as `match[]` takes it (`name`, `name{l="v",…}`, `{…}`), via the PromQL parser."""
    expr = parse(text)
    if not isinstance(expr, VectorSelector) or expr.offset_ms or expr.at_ms is not None or expr.at_special:
        raise ParseError(f"expected a series selector, got {go_quote(text)}", 0, text)
    return list(expr.matchers)


def _matcher_sets(values: Sequence[str]) -> list[list[Matcher]]:
    sets = []
    for v in values:
        ms = parse_selector(v)
        if all(m.matches("") for m in ms):
            raise ApiError("bad_data", "match[] must contain at least one non-empty matcher")
        sets.append(ms)
    return sets


def _unescape_name(name: str) -> str:
    """`U__http_2e_status_code` → `http.status_code` (Prometheus's value-encoding escaping)."""
    out = []
    s = name[3:]
    i = 0
    while i < len(s):
        if s[i] != "_":
            out.append(s[i])
            i += 1
        elif s[i:i + 2] == "__":
            out.append("_")
            i += 2
        else:
            end = s.find("_", i + 1)
            if end < 0 or not re.fullmatch(r"[0-9a-fA-F]+", s[i + 1:end]):
                return name
            out.append(chr(int(s[i + 1:end], 16)))
            i = end + 1
    return "".join(out)


# ---- JSON encoding -------------------------------------------------------------------------------------------

def _jresult(kind: str, value: Any) -> str:
    if kind == "vector":
        return vector_json(value)
    if kind == "matrix":
        return matrix_json(sorted(value, key=lambda s: s.metric))
    if kind == "scalar":
        return f'[{format_timestamp(value.t)},"{format_value(value.value)}"]'
    if kind == "string":
        return f"[{format_timestamp(value.t)},{_jstr(value.value)}]"
    raise ApiError("internal", f"unknown result type {kind!r}")


def _envelope(data_json: str, warnings: Sequence[str] = (), infos: Sequence[str] = ()) -> Response:
    body = '{"status":"success","data":' + data_json
    if warnings:
        body += ',"warnings":' + _jdump(list(warnings))
    if infos:
        body += ',"infos":' + _jdump(list(infos))
    return Response(200, (body + "}").encode(), _JSON)


def _error(err: ApiError) -> Response:
    body = {"status": "error", "errorType": err.typ, "error": err.message}
    return Response(ERROR_CODES.get(err.typ, 500), _jdump(body).encode(), _JSON)


# ---- handlers ------------------------------------------------------------------------------------------------

def _api(fn: Callable[[Request, _Form], Awaitable[Response]], pool: QueryPool) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request, await _form(request, pool))
        except ApiError as e:
            return _error(e)
        except Exception as e:  # never a traceback to the client; the log keeps it
            log.exception("metrics API %s failed", request.path)
            return _error(ApiError("internal", f"unexpected error: {type(e).__name__}: {e}"))
    return handler


class _TooSlowHere(Exception):
    """An evaluation on the loop passed `INLINE_DEADLINE_S`: it goes to a worker instead."""


class InlineBudget:
    """The loop time inline evaluations may take: `capacity_s` at most, refilled at `share` of wall time."""

    def __init__(self, capacity_s: float = INLINE_BUDGET_S, share: float = INLINE_SHARE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity_s = capacity_s
        self.share = share
        self._clock = clock
        self._left = capacity_s
        self._at = clock()

    def available(self) -> bool:
        now = self._clock()
        self._left = min(self.capacity_s, self._left + (now - self._at) * self.share)
        self._at = now
        return self._left > 0

    def spend(self, seconds: float) -> None:
        self._left -= seconds


class _Api:
    def __init__(self, storage: Storage, engine_factory: EngineFactory, build_info: Mapping[str, str],
                 now: Callable[[], float], pool: QueryPool, budget: InlineBudget) -> None:
        self.pool = pool
        self.budget = budget
        self.storage = storage
        self.engine_factory = engine_factory
        self.build_info = dict(build_info)
        self.now = now
        # Query text → its cost plan (None: never bounded), worked out in a worker after the query's first
        # evaluation; read on the loop to decide whether a repeat of it may be evaluated there.
        self._plans: dict[str, cost.Plan | None] = {}

    def _engine_opts(self, form: _Form) -> QueryEngine:
        lb = form.get("lookback_delta")
        lookback: int | None = None
        if lb:
            try:
                lookback = _ns_to_ms(parse_duration(lb)) or None
            except ValueError as e:
                raise ApiError("bad_data", f"error parsing lookback delta duration: {e}") from None
        return self.engine_factory(lookback)

    def _timeout_s(self, form: _Form) -> float | None:
        to = form.get("timeout")
        if not to:
            return None
        try:
            return parse_duration(to) / 1e9
        except ValueError as e:
            raise _invalid("timeout", str(e)) from None

    async def _offload(self, work: Callable[[], Response]) -> Response:
        """Series and label look-ups (a regex over every series, the encoding of a long list) run in the query
        pool too, so no request stalls the loop."""
        try:
            return await self.pool.run(work)
        except PoolFull as e:
            raise ApiError("unavailable", str(e)) from None

    def _inline(self, expr: str, engine: QueryEngine, start: int, end: int, step: int,
                timeout: float | None) -> bool:
        """Whether this evaluation is provably small enough for the loop (see `cost`)."""
        plan = self._plans.get(expr)
        lookback = getattr(engine, "lookback_delta_ms", None)
        if plan is None or not isinstance(lookback, int) or (timeout is not None and timeout <= INLINE_DEADLINE_S):
            return False
        if not self.budget.available():
            return False
        cells = INLINE_MAX_CELLS_RANGE if end > start else INLINE_MAX_CELLS
        return plan.bounded(self.storage, start, end, step, lookback, max_samples=INLINE_MAX_SAMPLES,
                            max_cells=cells, max_columnar_cells=INLINE_MAX_CELLS_RANGE)

    async def _submit(self, call: Callable[[float | None], Any], timeout: float | None, limit: int, expr: str,
                      inline: bool) -> Response:
        """Evaluate and encode: here when `inline` (the caller proved it small), else in a worker, where time
        spent waiting in the queue counts against `timeout`."""
        queued = time.monotonic()

        def work() -> Response:
            left = None if timeout is None else timeout - (time.monotonic() - queued)
            if left is not None and left <= 0:
                raise ApiError("timeout", str(QueryTimeout()))
            try:
                return self._run(call, left, limit)
            finally:
                if expr not in self._plans:
                    if len(self._plans) >= _PLANS_MAX:
                        self._plans.clear()
                    self._plans[expr] = cost.plan(expr)

        try:
            if inline:
                began = time.monotonic()
                try:
                    return self.pool.run_here(lambda: self._run(call, INLINE_DEADLINE_S, limit, inline=True))
                except _TooSlowHere:
                    self._plans[expr] = None  # from now on always in a worker
                finally:
                    self.budget.spend(time.monotonic() - began)
            return await self.pool.run(work)
        except PoolFull as e:
            raise ApiError("unavailable", str(e)) from None

    def _run(self, call: Callable[[float | None], Any], timeout: float | None, limit: int, *,
             inline: bool = False) -> Response:
        try:
            res: QueryResultLike = call(timeout)
        except ParseError as e:
            raise _invalid("query", str(e)) from None
        except QueryTimeout as e:
            if inline:
                raise _TooSlowHere() from None
            raise ApiError("timeout", str(e)) from None
        except QueryCanceled as e:
            raise ApiError("canceled", str(e)) from None
        except PromQLError as e:
            raise ApiError("execution", str(e)) from None
        value = res.value
        warnings = list(res.warnings)
        if limit and res.type in ("vector", "matrix") and len(value) > limit:
            if res.type == "matrix":
                value = sorted(value, key=lambda s: s.metric)
            value = value[:limit]
            warnings.append("results truncated due to limit")
        data = f'{{"resultType":"{res.type}","result":{_jresult(res.type, value)}}}'
        return _envelope(data, warnings, list(res.infos))

    async def query(self, request: Request, form: _Form) -> Response:
        limit = _parse_limit(form.get("limit"))
        t = _time_param(form, "time", int(self.now() * 1000))
        timeout = self._timeout_s(form)
        engine = self._engine_opts(form)
        expr = form.get("query")
        return await self._submit(lambda to: engine.instant(expr, t, timeout_s=to), timeout, limit, expr,
                                  self._inline(expr, engine, t, t, 1, timeout))

    async def query_range(self, request: Request, form: _Form) -> Response:
        limit = _parse_limit(form.get("limit"))
        try:
            start = parse_time(form.get("start"))
        except ValueError as e:
            raise _invalid("start", str(e)) from None
        try:
            end = parse_time(form.get("end"))
        except ValueError as e:
            raise _invalid("end", str(e)) from None
        if end < start:
            raise _invalid("end", "end timestamp must not be before start time")
        try:
            step_ns = parse_duration(form.get("step"))
        except ValueError as e:
            raise _invalid("step", str(e)) from None
        if step_ns <= 0:
            raise _invalid("step", "zero or negative query resolution step widths are not accepted. "
                                   "Try a positive integer")
        if (end - start) * 1_000_000 // step_ns > MAX_POINTS:
            raise ApiError("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. "
                                       "Try decreasing the query resolution (?step=XX)")
        timeout = self._timeout_s(form)
        engine = self._engine_opts(form)
        expr = form.get("query")
        step = max(1, _ns_to_ms(step_ns))
        return await self._submit(lambda to: engine.range(expr, start, end, step, timeout_s=to), timeout, limit,
                                  expr, self._inline(expr, engine, start, end, step, timeout))

    def _range(self, form: _Form) -> tuple[int, int]:
        return _time_param(form, "start", MIN_TIME_MS), _time_param(form, "end", MAX_TIME_MS)

    async def series(self, request: Request, form: _Form) -> Response:
        raw = form.getall("match[]")
        if not raw:
            raise ApiError("bad_data", "no match[] parameter provided")
        limit = _parse_limit(form.get("limit"))
        start, end = self._range(form)
        try:
            sets = _matcher_sets(raw)
        except ParseError as e:
            raise _invalid("match[]", str(e)) from None
        lister = getattr(self.storage, "series", None)

        def work() -> Response:
            found: set[Labels] = set()
            for ms in sets:
                if lister is not None:
                    found.update(lister(ms, start, end))
                else:
                    found.update(s.labels for s in self.storage.select(ms, start, end))
            result = sorted(found)
            warnings = []
            if limit and len(result) > limit:
                result = result[:limit]
                warnings.append("results truncated due to limit")
            return _envelope("[" + ",".join(map(_jlabels, result)) + "]", warnings)

        return await self._offload(work)

    def _label_sets(self, form: _Form) -> tuple[int, int, list[list[Matcher]], int]:
        limit = _parse_limit(form.get("limit"))
        start, end = self._range(form)
        try:
            sets = _matcher_sets(form.getall("match[]"))
        except ParseError as e:
            raise ApiError("bad_data", str(e)) from None
        return start, end, sets or [[]], limit

    @staticmethod
    def _strings(values: Iterable[str], limit: int) -> Response:
        result = sorted(set(values))
        warnings = []
        if limit and len(result) > limit:
            result = result[:limit]
            warnings.append("results truncated due to limit")
        return _envelope(_jdump(result), warnings)

    async def labels(self, request: Request, form: _Form) -> Response:
        start, end, sets, limit = self._label_sets(form)
        return await self._offload(lambda: self._strings(
            [n for ms in sets for n in self.storage.label_names(ms, start, end)], limit))

    async def label_values(self, request: Request, form: _Form) -> Response:
        name = request.match_info["name"]
        if name.startswith("U__"):
            name = _unescape_name(name)
        if not name:
            raise ApiError("bad_data", f"invalid label name: {go_quote(name)}")
        start, end, sets, limit = self._label_sets(form)
        return await self._offload(lambda: self._strings(
            [v for ms in sets for v in self.storage.label_values(name, ms, start, end)], limit))

    async def buildinfo(self, request: Request, form: _Form) -> Response:
        return _envelope(_jdump(self.build_info))


def _default_build_info() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("sluice")
    except PackageNotFoundError:
        v = "0.0.0"
    # Clients (Grafana) switch features on the version; report the Prometheus API level we follow.
    return {"version": "3.0.0", "revision": f"sluice-{v}", "branch": "main", "buildUser": "sluice",
            "buildDate": "", "goVersion": "none (Python)"}


def _check_host(request: Request) -> Response | None:
    """Reads stay open, as Prometheus's; only the Host check (DNS rebinding) stands in front of them."""
    why = host_refusal(request.headers.get("Host"), request.local_port)
    return None if why is None else Response.text(f"403 Forbidden: {why}\n", 403)


def metrics_app(storage: Storage, engine_factory: EngineFactory, *,
                metrics_text: Callable[[], str] | None = None,
                extra_routes: Iterable[tuple[str, str, Handler]] = (),
                build_info: Mapping[str, str] | None = None,
                now: Callable[[], float] = time.time,
                pool: QueryPool | None = None,
                inline_budget: InlineBudget | None = None) -> App:
    """The metrics port's application: the Prometheus API, `GET /metrics` (when `metrics_text` is given:
    it returns the exposition text) and the expression browser at `/`; `extra_routes` are (method, path,
    handler). Queries run in `pool` (the caller owns it); without one the application makes its own and
    closes it on cleanup. `inline_budget` caps the loop time small queries may take (`InlineBudget`'s
    defaults when not given)."""
    from sluice.metrics.browser import PAGE
    from sluice.metrics.exposition import CONTENT_TYPE

    app = App(check=_check_host)
    if pool is None:
        pool = QueryPool()
        app.on_cleanup.append(pool.close)
    api = _Api(storage, engine_factory, build_info or _default_build_info(), now, pool,
               inline_budget or InlineBudget())
    for path, fn in (("/api/v1/query", api.query), ("/api/v1/query_range", api.query_range),
                     ("/api/v1/series", api.series), ("/api/v1/labels", api.labels)):
        h = _api(fn, pool)
        app.add("GET", path, h)
        app.add("POST", path, h)
    app.add("GET", "/api/v1/label/{name}/values", _api(api.label_values, pool))
    app.add("GET", "/api/v1/status/buildinfo", _api(api.buildinfo, pool))
    page_body = PAGE.encode()

    async def page(request: Request) -> Response:
        return Response(200, page_body, "text/html; charset=utf-8")

    app.add("GET", "/", page)
    app.add("GET", "/graph", page)

    if metrics_text is not None:
        text_fn = metrics_text

        async def metrics(request: Request) -> Response:
            return Response(200, text_fn().encode(), CONTENT_TYPE)

        app.add("GET", "/metrics", metrics)
    for method, path, handler in extra_routes:
        app.add(method, path, handler)
    return app
