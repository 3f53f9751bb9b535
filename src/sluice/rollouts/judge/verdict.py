"""From counts to a verdict: each check's decision, effect size and confidence, and the combined
(phase, value, message) Argo records for a measurement. Pure; `measure` feeds it what Prometheus answered."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sluice.rollouts.judge import errorrate, latency
from sluice.rollouts.judge.config import Config

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = "Successful", "Failed", "Inconclusive", "Error"


@dataclass(frozen=True)
class ErrorCounts:
    n_c: float
    x_c: float
    n_s: float
    x_s: float


@dataclass(frozen=True)
class Histograms:
    bounds: Sequence[float]  # bucket upper bounds in ms, increasing, the last +Inf
    canary: Sequence[float]  # requests per bucket (not cumulative)
    stable: Sequence[float]


@dataclass(frozen=True)
class Check:
    phase: str
    sentence: str
    numbers: Mapping[str, Any]
    needed: float = 0.0  # canary requests still needed when inconclusive (inf: cannot tell)


@dataclass(frozen=True)
class Verdict:
    phase: str
    value: str
    message: str
    checks: Mapping[str, Check] = field(default_factory=dict)


def _num(v: float) -> float | int | str | None:
    """Four significant digits keep the value compact; JSON has no inf/NaN, so they become strings."""
    if isinstance(v, int | np.integer):
        return int(v)
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = float(f"{v:.4g}")
    return int(r) if r == int(r) and abs(r) < 1e15 else r


def _e(log_e: float) -> float:
    return math.exp(min(log_e, 700.0))


def _p(log_e: float) -> float:
    """The always-valid p-value min(1, 1/e)."""
    return math.exp(min(0.0, -log_e))


def _fmt_e(log_e: float) -> str:
    e = _e(log_e)
    return f"{e:.3g}" if e < 1e6 else f"{e:.1e}"


def _pct(r: float) -> str:
    return f"{100 * r:.1f}%" if r >= 0.001 or r == 0 else f"{100 * r:.2g}%"


def _short(n_c: float, n_s: float, min_requests: int) -> float:
    return max(min_requests - n_c, 0.0) if n_s >= min_requests else max(min_requests - n_c, 1.0)


def judge_errors(c: ErrorCounts, cfg: Config, alpha: float, label: str) -> Check:
    b = cfg.errors
    rate_c = c.x_c / c.n_c if c.n_c > 0 else math.nan
    rate_s = c.x_s / c.n_s if c.n_s > 0 else math.nan
    log_fail, log_pass = math.log(1 / alpha), math.log(1 / (1 - cfg.power))
    numbers: dict[str, Any] = {
        "canary": {"requests": _num(c.n_c), "errors": _num(c.x_c), "rate": _num(rate_c)},
        "stable": {"requests": _num(c.n_s), "errors": _num(c.x_s), "rate": _num(rate_s)},
    }
    seen = f"canary {label} {_pct(rate_c) if c.n_c else '-'} vs stable {_pct(rate_s) if c.n_s else '-'}"
    if c.n_c < cfg.min_requests or c.n_s < cfg.min_requests:
        need = _short(c.n_c, c.n_s, cfg.min_requests)
        numbers["needed"] = _num(need)
        who = "canary" if c.n_c < cfg.min_requests else "stable"
        return Check(INCONCLUSIVE, f"{seen}: too few {who} requests ({_num(min(c.n_c, c.n_s))} < "
                                   f"minRequests {cfg.min_requests})", numbers, need)
    worse, better = (float(v) for v in errorrate.evidence(c.n_c, c.x_c, c.n_s, c.x_s, b))
    lo, hi = errorrate.ratio_interval(c.n_c, c.x_c, c.n_s, c.x_s, alpha)
    ratio = rate_c / rate_s if rate_s > 0 else (math.inf if rate_c > 0 else 1.0)
    numbers.update({"ratio": _num(ratio), "difference": _num(rate_c - rate_s),
                    "ratioInterval": [_num(lo), _num(hi)], "confidence": _num(1 - alpha),
                    "eFail": _num(_e(worse)), "eFailThreshold": _num(1 / alpha),
                    "ePass": _num(_e(better)), "ePassThreshold": _num(1 / (1 - cfg.power)),
                    "pFail": _num(_p(worse)), "pPass": _num(_p(better))})
    if not math.isfinite(ratio):
        how = "worse (stable had no errors)"
    elif ratio == 0:
        how = "better (canary had no errors)"
    else:
        how = "the same rate" if ratio == 1 else f"{ratio:.2g}× {'worse' if ratio > 1 else 'better'}"
    if worse >= log_fail:
        return Check(FAILED, f"{seen}: {how}, e-value {_fmt_e(worse)} > {1 / alpha:g} (α={alpha:g})", numbers)
    bad = f"{b.detect:g}× stable" + (f" + {_pct(b.detect_plus)}" if b.detect_plus else "")
    if better >= log_pass:
        return Check(SUCCESSFUL, f"{seen}: below {bad}, e-value {_fmt_e(better)} > {1 / (1 - cfg.power):g} "
                                 f"(power {cfg.power:g})", numbers)
    need = errorrate.requests_needed(c.n_c, c.x_c, c.n_s, c.x_s, b, log_fail, log_pass)
    numbers["needed"] = _num(need)
    return Check(INCONCLUSIVE, f"{seen}, {how}: e-values {_fmt_e(worse)} (fail at {1 / alpha:g}) and "
                               f"{_fmt_e(better)} (pass at {1 / (1 - cfg.power):g})", numbers, need)


def judge_latency(h: Histograms, cfg: Config, alpha: float) -> Check:
    assert cfg.latency is not None
    b = cfg.latency
    st = latency.rank_stats(np.asarray(h.canary, dtype=np.float64), np.asarray(h.stable, dtype=np.float64))
    n_c, n_s = float(st.n_c), float(st.n_s)
    p50c, p50s = latency.quantile(h.bounds, h.canary, 0.5), latency.quantile(h.bounds, h.stable, 0.5)
    numbers: dict[str, Any] = {
        "canary": {"requests": _num(n_c), "p50": _num(p50c), "p90": _num(latency.quantile(h.bounds, h.canary, 0.9))},
        "stable": {"requests": _num(n_s), "p50": _num(p50s), "p90": _num(latency.quantile(h.bounds, h.stable, 0.9))},
    }
    p50 = (f"p50 {p50c:.3g} ms vs {p50s:.3g} ms" if math.isfinite(p50c) and math.isfinite(p50s) else "")
    if n_c < cfg.min_requests or n_s < cfg.min_requests:
        need = _short(n_c, n_s, cfg.min_requests)
        numbers["needed"] = _num(need)
        who = "canary" if n_c < cfg.min_requests else "stable"
        return Check(INCONCLUSIVE, f"latency: too few {who} requests ({_num(min(n_c, n_s))} < minRequests "
                                   f"{cfg.min_requests})", numbers, need)
    a, se = float(st.a), math.sqrt(float(st.var))
    worse, better = (float(v) for v in latency.evidence(st, b))
    numbers.update({"a": _num(a), "se": _num(se), "eFail": _num(_e(worse)), "eFailThreshold": _num(1 / alpha),
                    "ePass": _num(_e(better)), "ePassThreshold": _num(1 / (1 - cfg.power)),
                    "pFail": _num(_p(worse)), "pPass": _num(_p(better))})
    seen = f"canary slower than stable in {100 * a:.0f}% of request pairs" + (f" ({p50})" if p50 else "")
    if worse >= math.log(1 / alpha):
        return Check(FAILED, f"{seen}, e-value {_fmt_e(worse)} > {1 / alpha:g} (α={alpha:g})", numbers)
    if better >= math.log(1 / (1 - cfg.power)):
        return Check(SUCCESSFUL, f"{seen}: below {100 * b.detect:.0f}%, e-value {_fmt_e(better)} > "
                                 f"{1 / (1 - cfg.power):g} (power {cfg.power:g})", numbers)
    need = latency.requests_needed(st, b, math.log(1 / alpha), math.log(1 / (1 - cfg.power)))
    numbers["needed"] = _num(need)
    return Check(INCONCLUSIVE, f"{seen}: e-values {_fmt_e(worse)} (fail at {1 / alpha:g}) and {_fmt_e(better)} "
                               f"(pass at {1 / (1 - cfg.power):g})", numbers, need)


def combine(cfg: Config, window: str, errors: ErrorCounts | None, hist: Histograms | None,
            error_label: str = "5xx") -> Verdict:
    """Each enabled check at α / (number of checks) (a canary is failed if any check fails, so the false-fail
    rate stays ≤ α); passing needs every check to pass, so each keeps the full power."""
    k = (errors is not None) + (hist is not None)
    alpha = cfg.alpha / max(k, 1)
    checks: dict[str, Check] = {}
    if errors is not None:
        checks["errorRate"] = judge_errors(errors, cfg, alpha, error_label)
    if hist is not None:
        checks["latency"] = judge_latency(hist, cfg, alpha)
    phases = [c.phase for c in checks.values()]
    value: dict[str, Any] = {"window": window, **{name: c.numbers for name, c in checks.items()}}
    if FAILED in phases:
        phase = FAILED
        message = "; ".join(c.sentence for c in checks.values() if c.phase == FAILED)
    elif phases and all(p == SUCCESSFUL for p in phases):
        phase = SUCCESSFUL
        message = "; ".join(c.sentence for c in checks.values())
    else:
        phase = INCONCLUSIVE
        need = max(c.needed for c in checks.values() if c.phase == INCONCLUSIVE)
        value["needed"] = _num(need)
        head = (f"inconclusive: {int(need)} more canary requests needed" if math.isfinite(need)
                else "inconclusive: no canary traffic to project from")
        message = head + " (" + "; ".join(c.sentence for c in checks.values()) + ")"
    return Verdict(phase, json.dumps(value, separators=(",", ":"), ensure_ascii=False), message, checks)
