"""The one type every layer passes Kubernetes objects as: the decoded JSON of an object (`Obj`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Obj", "mapping"]

Obj = dict[str, Any]


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: a field of a stored object read without trusting its shape."""
    return value if isinstance(value, Mapping) else {}
