"""Sluice's statistical judge: an Argo Rollouts analysis provider (`provider: {plugin: {"sluice/judge": …}}`)
that compares canary and stable from Istio's metrics with anytime-valid sequential tests (error rate: a
two-binomial e-value; latency: Mann–Whitney on histogram buckets). See docs/judge.md.

The controller calls `measure(for_run(config, run.status.startedAt), query)`; everything else is pure and
importable for tests.
"""

from __future__ import annotations

from sluice.rollouts.judge.config import PLUGIN_NAME, ConfigError, for_run
from sluice.rollouts.judge.measure import measure

__all__ = ["PLUGIN_NAME", "ConfigError", "for_run", "measure"]
