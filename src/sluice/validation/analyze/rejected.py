"""IST0001 (InternalError) for Istio config the control plane left out of pushes because translating it
failed (the daemon's `/debug/rejectedz`).

The object passed validation, so the schema analyzers have nothing to say about it; the failure is the
translation's, which Istio reports as an internal error. Run by `analyze` for `sluice analyze`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sluice.validation.analyze.index import Obj
from sluice.validation.analyze.message import Message

__all__ = ["rejected_messages"]


def rejected_messages(objects: Iterable[Obj], rejected: Iterable[Mapping[str, Any]]) -> list[Message]:
    """One error per object in `objects` that is rejected at the version analyzed (an object edited since
    is tried again by the next push, so it is not reported)."""
    by_key = {(o.kind, o.namespace, o.name): o for o in objects}
    out = []
    for r in rejected:
        key = (str(r.get("kind") or ""), str(r.get("namespace") or "default"), str(r.get("name") or ""))
        obj = by_key.get(key)
        if obj is None or str(obj.metadata.get("resourceVersion") or "") != str(r.get("resourceVersion") or ""):
            continue
        out.append(Message("IST0001", "Error", obj.kind, obj.namespace, obj.name,
                           f"Internal error: not pushed to any proxy, translating it failed: {r.get('error')}"))
    return out
