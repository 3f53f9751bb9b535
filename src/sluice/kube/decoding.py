"""Bounded decoding of JSON and YAML request bodies into plain JSON values.

Called by the API server (`sluice.api.bodies.decode_object` for create/update/delete bodies,
`sluice.api.registry.Registry.patch_document` for patch documents and their results; for bodies over 64 KiB
in its worker process, `sluice.api.body_worker`) and by the console's config
editor (`sluice.console.api`), so every body any port accepts passes the same limits:

* YAML is composed first (libyaml caps syntactic nesting at 1000) and its node graph is measured *before*
  anything is constructed: nodes brought in by aliases are counted without expanding them (a "billion laughs"
  body is refused after a few hundred node visits), an anchor whose value contains itself is refused, and so
  is a graph deeper than `MAX_DEPTH` once aliases are followed;
* JSON nesting deeper than `MAX_DEPTH` is refused (the C scanner's own recursion guard is caught too, so a
  body nested 100 000 deep is a 400, never a `RecursionError`);
* the decoded value is rebuilt as plain JSON (YAML aliases become independent copies, timestamps stay
  strings, map keys become strings, as sigs.k8s.io/yaml converts them) while its encoded size is counted
  against `MAX_BODY` (the 3 MiB request limit applies to what a body expands to, not just to its bytes);
* NaN and ±Inf are refused wherever they appear (JSON `NaN`/`Infinity`/`1e400`, YAML `.nan`/`.inf`):
  Kubernetes JSON cannot carry them, and a stored one breaks every consumer that re-encodes the object.

Errors are `DecodeError`s whose message reads like the Go libraries kube-apiserver uses
(`yaml: document contains excessive aliasing`, `exceeded max depth`), with the limit named.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

import yaml

__all__ = [
    "DecodeError",
    "TooLarge",
    "Malformed",
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_ALIAS_NODES",
    "decode_json",
    "decode_yaml",
    "decode_yaml_documents",
    "plain",
    "copy_bounded",
]

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's request body limit, also applied to the decoded object
# Real Kubernetes and Istio objects stay below ~40 levels; the bound keeps every recursive consumer
# (validators, patches, deepcopy, json.dumps) far from Python's recursion limit.
MAX_DEPTH = 100
# Nodes that aliases may bring in beyond those written out; anchors in real manifests reuse small blocks.
MAX_ALIAS_NODES = 10_000


class DecodeError(ValueError):
    """A body that cannot be decoded or exceeds a limit; `field` names where, when known."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class TooLarge(DecodeError):
    """The decoded value would encode to more than `MAX_BODY` bytes."""


class Malformed(DecodeError):
    """Not JSON (or YAML) at all: a syntax error, as opposed to a limit or a value JSON cannot carry."""


# --------------------------------------------------------------------------------------------- JSON
def decode_json(data: bytes | str, limit: int = MAX_BODY) -> Any:
    """One JSON value, checked and bounded (see the module docstring)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text)
    except RecursionError:
        raise DecodeError(f"json: exceeded max depth of {MAX_DEPTH}") from None
    except UnicodeDecodeError:
        raise DecodeError("json: the body is not valid UTF-8") from None
    except json.JSONDecodeError as e:
        raise Malformed(f"json: {e}") from None
    except ValueError as e:  # ints longer than Python's digit limit
        raise DecodeError(f"json: {e}") from None
    return plain(value, limit)


# --------------------------------------------------------------------------------------------- YAML
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, but timestamps stay the strings they were written as (as sigs.k8s.io/yaml does)."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _mark(node: yaml.Node) -> str:
    m = node.start_mark
    return f"line {m.line + 1}, column {m.column + 1}" if m is not None else "unknown position"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_nodes(root: yaml.Node) -> None:
    """Refuse a composed YAML graph whose aliases expand too far, loop, or nest too deep — without expanding it.

    An alias is the same node object referenced again, so the graph is a DAG (or cyclic, for an anchor used
    inside itself). One iterative post-order walk computes, per distinct node, how many nodes and levels it
    stands for once every alias is expanded."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    started: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        kids = _children(node)
        if done:
            started.discard(nid)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            height[nid] = 1 + max((height[id(k)] for k in kids), default=0)
            if height[nid] > MAX_DEPTH:
                raise DecodeError(f"yaml: exceeded max depth of {MAX_DEPTH}")
            if size[nid] - len(size) > MAX_ALIAS_NODES:
                raise DecodeError(f"yaml: document contains excessive aliasing (aliases expand to more than "
                                  f"{MAX_ALIAS_NODES} nodes)")
            continue
        if nid in size:
            continue
        started.add(nid)
        stack.append((node, True))
        for k in kids:
            if id(k) in started:  # only the nodes on the current path are started and unfinished
                raise DecodeError(f"yaml: anchor value contains itself ({_mark(k)})")
            if id(k) not in size:
                stack.append((k, False))


def _load(text: str, limit: int, *, multi: bool) -> list[Any]:
    loader = _Loader(text)
    docs: list[Any] = []
    budget = limit
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None and not multi:  # a stray `---`
                continue
            if docs and not multi:
                raise DecodeError("yaml: expected a single document in the stream")
            if node is None:  # an empty document (`---` then nothing)
                docs.append(None)
                continue
            check_nodes(node)
            doc, used = _plain(loader.construct_document(node), budget, limit)
            docs.append(doc)
            budget -= used
    except RecursionError:
        raise DecodeError(f"yaml: exceeded max depth of {MAX_DEPTH}") from None
    except yaml.YAMLError as e:
        if "maximum nesting depth" in str(e):  # libyaml's own bound (1000) is past ours
            raise DecodeError(f"yaml: exceeded max depth of {MAX_DEPTH}") from None
        raise Malformed(f"yaml: {_yaml_problem(e)}") from None
    except DecodeError:
        raise
    except (ValueError, TypeError) as e:  # e.g. an integer longer than Python's digit limit
        raise DecodeError(f"yaml: {e}") from None
    finally:
        loader.dispose()
    return docs


def _yaml_problem(e: yaml.YAMLError) -> str:
    """go-yaml's shape (`line 3: mapping values are not allowed here`), which kubectl users know."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        return f"line {e.problem_mark.line + 1}: {e.problem}" if e.problem_mark else e.problem
    return str(e).replace("\n", " ")


def decode_yaml(data: bytes | str, limit: int = MAX_BODY) -> Any:
    """One YAML document (None when the stream holds none), checked and bounded."""
    docs = _load(_text(data), limit, multi=False)
    return docs[0] if docs else None


def decode_yaml_documents(data: bytes | str, limit: int = MAX_BODY, *, keep_empty: bool = False) -> list[Any]:
    """The documents of a YAML stream (empty ones as None with `keep_empty`); the limit applies to all of
    them together."""
    return [d for d in _load(_text(data), limit, multi=True) if keep_empty or d is not None]


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("yaml: the body is not valid UTF-8") from None


# ------------------------------------------------------------------------------------ plain JSON values
def _key(k: Any, path: tuple[Any, ...] | None) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return str(k)
    if isinstance(k, float) and math.isfinite(k):
        return repr(k)
    if isinstance(k, datetime.date):
        return k.isoformat()
    raise DecodeError(f"unsupported map key {k!r}", _path_text(path))


_FIELD_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def _path_text(path: tuple[Any, ...] | None) -> str:
    parts: list[Any] = []
    while path is not None:
        path, step = path
        parts.append(step)
    out = ""
    for step in reversed(parts):
        if isinstance(step, int) or not _FIELD_NAME.match(step):  # indexes, and map keys like `app.kubernetes.io/name`
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


def _non_finite(v: float) -> str:
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


def plain(value: Any, limit: int = MAX_BODY) -> Any:
    """`value` rebuilt as plain JSON data, or a `DecodeError`.

    Iterative (no recursion at any depth); shared sub-values (YAML aliases) are copied, so mutating one
    place never changes another; the JSON encoding's size is counted as it goes and the walk stops as soon
    as it passes `limit` (so an expansion is never built past the limit)."""
    return _plain(value, limit, limit)[0]


def copy_bounded(value: Any, budget: int) -> tuple[Any, int]:
    """A plain copy of `value` and its encoded size; `TooLarge` once the size passes `budget`."""
    return _plain(value, budget, budget)


def _plain(value: Any, budget: int, limit: int) -> tuple[Any, int]:
    """`plain` with `budget` bytes left of `limit`; returns the value and the bytes it used."""
    start = budget
    root: list[Any] = [None]
    # (value, container to store into, key/index there, depth, path as a linked list for messages)
    stack: list[tuple[Any, Any, Any, int, tuple[Any, ...] | None]] = [(value, root, 0, 1, None)]
    while stack:
        v, parent, slot, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise DecodeError(f"exceeded max depth of {MAX_DEPTH}")
        if isinstance(v, str):
            parent[slot] = v
            budget -= len(v) + 2  # escapes are not counted: the count errs on the side of the sender
        elif isinstance(v, bool) or v is None:
            parent[slot] = v
            budget -= 4
        elif isinstance(v, int):
            parent[slot] = v
            budget -= len(str(v)) if -10**18 < v < 10**18 else v.bit_length() * 3 // 10
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise DecodeError(f"json: unsupported value: {_non_finite(v)}", _path_text(path))
            parent[slot] = v
            budget -= len(repr(v))
        elif isinstance(v, dict):
            d: dict[str, Any] = {}
            parent[slot] = d
            budget -= 2
            for k, item in v.items():
                key = _key(k, path)
                d[key] = None  # keeps the order while the values are filled in from the stack
                budget -= len(key) + 4  # quotes, colon, comma
                stack.append((item, d, key, depth + 1, (path, key)))
        elif isinstance(v, list | tuple):
            lst: list[Any] = [None] * len(v)
            parent[slot] = lst
            budget -= 2 + len(v)
            for i, item in enumerate(v):
                stack.append((item, lst, i, depth + 1, (path, i)))
        elif isinstance(v, datetime.date):  # only reachable from callers that built dates themselves
            parent[slot] = v.isoformat()
            budget -= 30
        else:
            raise DecodeError(f"unsupported value of type {type(v).__name__}", _path_text(path))
        if budget < 0:
            raise TooLarge(f"Request entity too large: limit is {limit}")
    return root[0], start - budget
