"""The telemetry checkpoint's JSON, in pieces.

A mesh with thousands of series has a checkpoint of megabytes (8,400 registry cells: 4 MB, 50-60 ms for
`json.dumps` here), written every scrape interval. Encoded in one call on the event loop, that stalls the API,
xDS and ALS for as long; in a thread it would too, since the C encoder holds the GIL throughout. `pieces` yields
the same text in slices instead, so the caller can let the loop run between them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["pieces", "SLICE"]

SLICE = 256  # list items per `json.dumps` call: a few hundred registry cells, well under a millisecond


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def pieces(obj: Any, slice_len: int = SLICE) -> Iterator[str]:
    """`json.dumps(obj, separators=(",", ":"))`, exactly, as a sequence of strings: dicts key by key, lists of
    dicts item by item, other lists longer than `slice_len` that many items at a time."""
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        yield "{"
        for i, (k, v) in enumerate(obj.items()):
            yield ("," if i else "") + _dumps(k) + ":"
            yield from pieces(v, slice_len)
        yield "}"
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        yield "["
        for i, item in enumerate(obj):
            if i:
                yield ","
            yield from pieces(item, slice_len)
        yield "]"
    elif isinstance(obj, list) and len(obj) > slice_len:
        yield "["
        for i in range(0, len(obj), slice_len):
            yield ("," if i else "") + _dumps(obj[i:i + slice_len])[1:-1]
        yield "]"
    else:
        yield _dumps(obj)
