"""The one type every layer passes Kubernetes objects as: the decoded JSON of an object (`Obj`)."""

from __future__ import annotations

from typing import Any

__all__ = ["Obj"]

Obj = dict[str, Any]
