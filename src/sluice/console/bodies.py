"""The console's request bodies and YAML texts (pure): one object in, the editor's text out.

Role: `one_object` decodes a body with the API server's bounded decoders (the same limits on aliases, depth,
size and non-finite numbers) and applies the console's rule (exactly one object), with the console's error
texts; `yaml_text` is the text the Istio config editor shows. Both run on the daemon's event loop for small
objects and in the console's worker process (`sluice.console.worker`) for large ones, so the answers are the
same either way.

Callers: `sluice.console.api`, `sluice.console.worker`.
"""

from __future__ import annotations

from typing import Any

import yaml

from sluice.console.params import Fail
from sluice.kube import decoding

__all__ = ["one_object", "api_version_of", "yaml_text", "ON_LOOP_SIZE"]

# Bodies and stored objects up to this size are decoded, admitted and dumped on the event loop; larger ones in
# the worker process (the API server's threshold, `sluice.api.server`).
ON_LOOP_SIZE = 64 * 1024


def one_object(raw: bytes, content_type: str) -> dict[str, Any]:
    """The one object a JSON (`application/json`) or YAML body holds; `Fail` (400, 413) otherwise."""
    if not raw.strip():
        raise Fail(400, "empty request body")
    is_json = content_type == "application/json"
    try:
        docs = [decoding.decode_json(raw)] if is_json else decoding.decode_yaml_documents(raw)
    except decoding.TooLarge as e:
        raise Fail(413, e.message) from None
    except decoding.DecodeError as e:
        where = f"{e.field}: " if e.field else ""
        raise Fail(400, f"the body is not valid {'JSON' if is_json else 'YAML'}: {where}{e.message}") from None
    if len(docs) != 1:
        raise Fail(400, f"the body must hold exactly one object, found {len(docs)}")
    if not isinstance(docs[0], dict):
        raise Fail(400, "the body must be an object")
    return docs[0]


def api_version_of(body: dict[str, Any]) -> str:
    return str(body.get("apiVersion") or "")


def yaml_text(obj: Any) -> str:
    """The object as the editor shows it: keys in the object's order, block style. PyYAML's own (pure Python)
    dumper: libyaml's folds long double-quoted strings at other places, so its text would differ."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
