"""The checkpoint's JSON in pieces is the JSON of one `json.dumps`, to the byte."""

from __future__ import annotations

import json
from typing import Any

from sluice.telemetry import checkpointfile
from sluice.telemetry.istio import IstioMetrics
from sluice.telemetry.registry import MetricsRegistry


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def test_pieces_join_to_the_json_of_a_large_checkpoint() -> None:
    registry = MetricsRegistry()
    IstioMetrics(registry)
    for fam in registry.families():
        family = registry._families[fam.name]
        labels = getattr(family, "labels", None)
        if labels is None:
            continue
        for i in range(700):
            cell = labels(tuple(f"v{j}-{i}\\\"é" for j in range(len(family.label_names))))
            cell.observe(i * 0.5) if hasattr(cell, "observe") else cell.inc(i)
    ledger = [{"namespace": "ns", "pod": f"p{k}", "pending": [[["id", 1, "10.0.0.1", 80, 200], 1.5, 0]] * 600,
               "counted": []} for k in range(3)]
    data = {"version": 1, "time": 1.25, "registry": registry.dump(), "ledger": ledger}
    parts = list(checkpointfile.pieces(data, slice_len=256))
    assert "".join(parts) == _compact(data)
    assert len(parts) > 30  # the long lists came in slices
    assert max(len(p) for p in parts) < len(_compact(data["registry"]["istio_requests_total"]))


def test_pieces_of_small_and_odd_values() -> None:
    for obj in ({}, [], [{}], {"a": []}, {"a": [1] * 5}, [[1, 2]] * 7, {1: "non-string key"}, [1, {"x": 2}],
                "text", 1.5, None, {"nested": {"deeper": [{"k": [3] * 9}]}}):
        assert "".join(checkpointfile.pieces(obj, slice_len=2)) == _compact(obj)
