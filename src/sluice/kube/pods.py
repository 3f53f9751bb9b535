"""Pod facts that controllers, the console and the runtime read the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["pod_ready"]


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True (what the ReplicaSet and the Endpoints controller count)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False
