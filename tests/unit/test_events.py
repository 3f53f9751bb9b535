"""Events fold repeats into one Event with a count, remembering a bounded number of (object, reason, message)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sluice.api.registry import Registry
from sluice.controllers import events
from sluice.controllers.events import EventExpiry, EventRecorder, expired
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


def test_expired_events_are_deleted_and_a_repeat_starts_a_new_one(tmp_path: Path) -> None:
    reg = Registry(Store(tmp_path / "db"))
    reg.ensure_namespace("default")
    rec = EventRecorder(reg, "test")
    rec.record(_pod("old"), "Normal", "Started", "started")
    rec.record(_pod("new"), "Normal", "Started", "started")
    rt = by_kind("", "Event")
    assert rt is not None
    items, _, _ = reg.list_objects(rt, "v1", "default")
    old = next(e for e in items if e["involvedObject"]["name"] == "old")
    old["lastTimestamp"] = "2020-01-01T00:00:00Z"  # as if it had not happened again for years
    reg.replace(rt, "v1", "default", old["metadata"]["name"], old)
    now = datetime.now(UTC).timestamp()
    assert expired(reg.list_objects(rt, "v1", None)[0], now) == [("default", old["metadata"]["name"])]
    assert EventExpiry(reg).sweep(now) == 1
    assert _counts(reg) == {"new": [1]}
    rec.record(_pod("old"), "Normal", "Started", "started")  # remembered, but gone: a new Event
    assert _counts(reg) == {"new": [1], "old": [1]}


def test_expiry_reads_every_timestamp_form() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    events = [
        {"metadata": {"name": "a", "namespace": "x"}, "lastTimestamp": "2026-01-01T10:59:59Z"},
        {"metadata": {"name": "b", "namespace": "x"}, "eventTime": "2026-01-01T10:30:00.000000Z"},
        {"metadata": {"name": "c", "namespace": "x", "creationTimestamp": "2026-01-01T11:30:00Z"}},
        {"metadata": {"name": "d", "namespace": "x"}, "lastTimestamp": "not a time"},
    ]
    assert expired(events, now) == [("x", "a"), ("x", "b")]
