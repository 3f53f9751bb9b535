"""Events fold repeats into one Event with a count, remembering a bounded number of (object, reason, message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice.api.registry import Registry
from sluice.controllers import events
from sluice.controllers.events import EventRecorder
from sluice.resources.kinds import by_kind
from sluice.store.sqlite import Store


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}}


def _counts(reg: Registry) -> dict[str, list[int]]:
    rt = by_kind("", "Event")
    assert rt is not None
    items, _, _ = reg.list_objects(rt, "v1", "default")
    out: dict[str, list[int]] = {}
    for e in items:
        out.setdefault(e["involvedObject"]["name"], []).append(int(e["count"]))
    return {k: sorted(v) for k, v in out.items()}


def test_repeats_fold_and_the_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_REMEMBERED", 2)
    reg = Registry(Store(tmp_path / "db"))
    reg.ensure_namespace("default")
    rec = EventRecorder(reg, "test")
    rec.record(_pod("a"), "Normal", "Started", "started")
    rec.record(_pod("a"), "Normal", "Started", "started")
    assert _counts(reg) == {"a": [2]}
    rec.record(_pod("b"), "Normal", "Started", "started")
    rec.record(_pod("c"), "Normal", "Started", "started")  # "a" is now the least recently used: forgotten
    rec.record(_pod("c"), "Normal", "Started", "started")
    rec.record(_pod("a"), "Normal", "Started", "started")
    assert _counts(reg) == {"a": [1, 2], "b": [1], "c": [2]}
    assert len(rec._seen) == 2
