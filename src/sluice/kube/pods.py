"""Pod facts that controllers, the console and the runtime read the same way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["pod_ready", "timestamp"]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True (what the ReplicaSet and the Endpoints controller count)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def timestamp(value: Any) -> float | None:
    """Unix seconds of a Kubernetes timestamp (`2026-12-03T10:00:00Z`), None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
