"""docs/judge.md stays true: its AnalysisTemplate is Argo-shaped, its plugin block is a config the judge
accepts, and every config field the judge knows is documented there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from tests.unit.judge.test_measure import mesh

from sluice.rollouts.judge import PLUGIN_NAME, for_run, measure
from sluice.rollouts.judge.config import KNOWN, parse

DOC = Path(__file__).resolve().parents[3] / "docs" / "judge.md"


def _template() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    (tpl,) = [d for d in docs if isinstance(d, dict) and d.get("kind") == "AnalysisTemplate"]
    return tpl


def test_the_documented_template_is_argo_shaped_and_its_config_is_accepted() -> None:
    tpl = _template()
    assert tpl["apiVersion"] == "argoproj.io/v1alpha1"
    (metric,) = tpl["spec"]["metrics"]
    # Argo's plugin names: <namespace>/<name>; exactly one provider per metric.
    assert list(metric["provider"]) == ["plugin"] and list(metric["provider"]["plugin"]) == [PLUGIN_NAME]
    assert re.fullmatch(r"[a-zA-Z0-9-]+/[a-zA-Z0-9_.-]+", PLUGIN_NAME)
    # Argo's own limits for these fields (count >= failureLimit + consecutiveSuccessLimit, >= inconclusiveLimit).
    assert metric["count"] >= metric["failureLimit"] + metric["consecutiveSuccessLimit"]
    assert metric["count"] >= metric["inconclusiveLimit"]
    args = {"canary-workload": "reviews-v3", "stable-workload": "reviews-v2", "namespace": "tutorial"}
    text = yaml.safe_dump(metric["provider"]["plugin"][PLUGIN_NAME])
    config = yaml.safe_load(re.sub(r"\{\{\s*args\.([a-z-]+)\s*\}\}", lambda m: args[m.group(1)], text))
    cfg = parse(for_run(config, "2026-12-03T14:00:00Z"))
    assert cfg.canary == ('reporter="source", destination_workload="reviews-v3", '
                          'destination_workload_namespace="tutorial"')
    assert cfg.window_s is None and cfg.since == 1796306400.0  # nested looks from the run's start
    assert cfg.latency is not None and cfg.error_codes is not None


def test_every_config_field_is_documented() -> None:
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `([A-Za-z.]+)` \|", text, re.M))
    nested = {"errorRate.errorCodes", "errorRate.tolerance", "errorRate.toleranceIncrease", "errorRate.detect",
              "errorRate.detectIncrease", "latency.tolerance", "latency.detect"}
    assert rows == KNOWN | nested


def test_the_documented_config_judges() -> None:
    tpl = _template()
    text = yaml.safe_dump(tpl["spec"]["metrics"][0]["provider"]["plugin"][PLUGIN_NAME])
    text = text.replace("{{args.canary-workload}}", "reviews-v3").replace("{{args.stable-workload}}", "reviews-v2")
    config = yaml.safe_load(text.replace("{{args.namespace}}", "tutorial"))
    phase, _, message = measure(config, mesh((600, 0.05, 20)))
    assert phase == "Failed", message
