"""The four patch formats of the Kubernetes API, as pure functions over decoded JSON.

Callers:

* the API server applies a PATCH body to the stored object with :func:`json_merge_patch`
  (`application/merge-patch+json`), :func:`strategic_merge_patch`
  (`application/strategic-merge-patch+json`, built-in kinds only) or :func:`json_patch`
  (`application/json-patch+json`), and turns a :class:`PatchError` into a 422/400 `Status`;
* the `sluice` CLI computes what it sends: :func:`three_way_merge_patch` for client-side `apply`
  (kubectl's `CreateThreeWayJSONMergePatch`) and :func:`two_way_merge_patch` for `edit`
  (`jsonpatch.CreateMergePatch`).

Strategic merge patch follows apimachinery's `pkg/util/strategicpatch/patch.go` (server side:
`MergeParallelList` and `IgnoreUnmatchedNulls`). Merge keys and patch strategies come from the
struct tags of `k8s.io/api`, reproduced for the built-in kinds Sluice serves in :data:`_TYPES`.

No function here mutates its arguments; every result is a fresh structure.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sluice.kube.decoding import MAX_BODY, TooLarge, copy_bounded
from sluice.validation.structural import type_name

__all__ = [
    "PatchError",
    "json_merge_patch",
    "strategic_merge_patch",
    "supports_strategic_merge_patch",
    "STRATEGIC_MERGE_PATCH_KINDS",
    "json_patch",
    "two_way_merge_patch",
    "three_way_merge_patch",
]


class PatchError(ValueError):
    """A malformed patch, or one that cannot be applied; the message is fit for a `Status`."""


# --------------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------------


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: `1 == 1.0`, but `true != 1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# --------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# --------------------------------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(doc: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Merge `patch` into `doc` (which the caller owns)."""
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif isinstance(value, dict):
            sub = doc.get(key)
            if not isinstance(sub, dict):
                sub = {}
                doc[key] = sub
            _merge_into(sub, value)
        else:
            doc[key] = copy.deepcopy(value)


# --------------------------------------------------------------------------------------------------
# Strategic merge patch: schema
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Patch metadata of one field: its struct type, `patchStrategy` and `patchMergeKey`."""

    type: str | None = None  # struct type of a map value, or of the elements of a list
    merge: bool = False  # patchStrategy contains "merge"
    merge_key: str | None = None  # patchMergeKey (None: a list of primitives, or not a merge list)
    replace: bool = False  # patchStrategy "replace" on a map field


def _merge_list(key: str | None = None, type_: str | None = None) -> _Field:
    return _Field(type=type_, merge=True, merge_key=key)


def _struct(type_: str) -> _Field:
    return _Field(type=type_)


_CONDITIONS = _merge_list("type")
_NO_FIELD = _Field()

# Struct type -> field -> metadata. Only fields with a patch strategy, or leading to one, are listed;
# every other list is replaced, every other map merged. (`retainKeys` strategies matter only when a
# patch is *created*; applying honours any `$retainKeys` directive wherever it appears.)
_TYPES: Final[dict[str, dict[str, _Field]]] = {
    "ObjectMeta": {
        "ownerReferences": _merge_list("uid"),
        "finalizers": _merge_list(),
        "managedFields": _NO_FIELD,
    },
    "Pod": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec"), "status": _struct("PodStatus")},
    "PodTemplateSpec": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec")},
    "PodSpec": {
        "containers": _merge_list("name", "Container"),
        "initContainers": _merge_list("name", "Container"),
        "ephemeralContainers": _merge_list("name", "Container"),
        "volumes": _merge_list("name"),  # merge,retainKeys
        "imagePullSecrets": _merge_list("name"),
        "hostAliases": _merge_list("ip"),
        "topologySpreadConstraints": _merge_list("topologyKey"),
        "schedulingGates": _merge_list("name"),
        "resourceClaims": _merge_list("name"),  # merge,retainKeys
    },
    "Container": {
        "ports": _merge_list("containerPort"),
        "env": _merge_list("name"),
        "volumeMounts": _merge_list("mountPath"),
        "volumeDevices": _merge_list("devicePath"),
    },
    "PodStatus": {
        "conditions": _CONDITIONS,
        "podIPs": _merge_list("ip"),
        "hostIPs": _merge_list("ip"),
    },
    "Deployment": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("DeploymentSpec"),
        "status": _struct("StatusWithConditions"),
    },
    "DeploymentSpec": {"template": _struct("PodTemplateSpec")},  # strategy: retainKeys
    "StatusWithConditions": {"conditions": _CONDITIONS},
    "Service": {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct("ServiceSpec"),
        "status": _struct("StatusWithConditions"),
    },
    "ServiceSpec": {"ports": _merge_list("port")},
    "Endpoints": {"metadata": _struct("ObjectMeta")},  # subsets: atomic
    "ServiceAccount": {"metadata": _struct("ObjectMeta"), "secrets": _merge_list("name")},
    "ConfigMap": {"metadata": _struct("ObjectMeta")},
    "Secret": {"metadata": _struct("ObjectMeta")},
    "Namespace": {"metadata": _struct("ObjectMeta"), "status": _struct("StatusWithConditions")},
    "Event": {"metadata": _struct("ObjectMeta")},
    "Scale": {"metadata": _struct("ObjectMeta")},
}

STRATEGIC_MERGE_PATCH_KINDS: Final[frozenset[str]] = frozenset(
    {"Pod", "Deployment", "Service", "Endpoints", "ServiceAccount", "ConfigMap", "Secret", "Namespace", "Event",
     "Scale"}
)


def supports_strategic_merge_patch(kind: str) -> bool:
    """Whether `kind` accepts `application/strategic-merge-patch+json` (CRDs answer 415)."""
    return kind in STRATEGIC_MERGE_PATCH_KINDS


def _field(type_: str | None, key: str) -> _Field:
    if type_ is None:
        return _NO_FIELD
    return _TYPES.get(type_, {}).get(key, _NO_FIELD)


# --------------------------------------------------------------------------------------------------
# Strategic merge patch: application
# --------------------------------------------------------------------------------------------------

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to `target`, an object of the built-in `kind`.

    Lists whose field has `patchStrategy:"merge"` are merged by their merge key (or as sets of
    primitives); all other lists are replaced. Supported directives: `$patch: delete|replace|merge`,
    `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`; `null` deletes a key.
    Unknown `$`-prefixed keys are ignored. A kind without a schema gets plain merge semantics.
    """
    if not isinstance(target, dict):
        raise PatchError(f"the object to patch must be a JSON object, not {type_name(target)}")
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, not {type_name(patch)}")
    root = kind if kind in _TYPES else None
    return _merge_map(copy.deepcopy(target), patch, root)


def _merge_map(original: dict[str, Any], patch: Mapping[str, Any], type_: str | None) -> dict[str, Any]:
    """Merge `patch` into `original`, which the caller owns; `patch` is only read."""
    directive = patch.get(_DIRECTIVE)
    if directive is not None and directive != "merge":
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != _DIRECTIVE}, type_)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive} in map: {_short(patch)}")

    _apply_retain_keys(original, patch)
    handled = _apply_set_element_order(original, patch, type_)

    for key, value in patch.items():
        if key in handled:
            continue
        if key.startswith(_DELETE_PRIMITIVES):
            _apply_delete_from_primitive_list(original, key, value)
            continue
        if key.startswith("$"):
            continue  # $patch, $retainKeys (done above) and unknown directives
        if value is None:
            original.pop(key, None)
            continue
        field = _field(type_, key)
        current = original.get(key)
        if isinstance(value, dict):
            if isinstance(current, dict):
                original[key] = _clean(value) if field.replace else _merge_map(current, value, field.type)
            elif value.get(_DIRECTIVE) == "delete":
                original.pop(key, None)
            else:
                original[key] = _merge_map({}, value, field.type)
        elif isinstance(value, list):
            if field.merge and (current is None or isinstance(current, list)):
                original[key] = _merge_list_values(current or [], value, field, key)
            else:
                original[key] = _clean(value)
        else:
            original[key] = value
    return original


def _apply_retain_keys(original: dict[str, Any], patch: Mapping[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch[_RETAIN_KEYS]
    if not isinstance(retain, list):
        raise PatchError("invalid patch format of retainKeys")
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith("$"):
            continue
        if key not in keep:
            raise PatchError("invalid patch format of retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _apply_delete_from_primitive_list(original: dict[str, Any], key: str, value: Any) -> None:
    name = key[len(_DELETE_PRIMITIVES) :]
    if not name or not isinstance(value, list):
        raise PatchError("invalid patch format of primitive list")
    current = original.get(name)
    if isinstance(current, list):
        original[name] = [x for x in current if not any(_json_equal(x, d) for d in value)]


def _apply_set_element_order(original: dict[str, Any], patch: Mapping[str, Any], type_: str | None) -> set[str]:
    """Process `$setElementOrder/<list>` with its list; return the patch keys consumed."""
    handled: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(_SET_ORDER):
            continue
        handled.add(key)
        name = key[len(_SET_ORDER) :]
        if not name or not isinstance(order, list):
            raise PatchError("invalid patch format of setElementOrder list")
        field = _field(type_, name)
        merge_key = field.merge_key
        has_original = isinstance(original.get(name), list)
        raw = patch.get(name)
        has_patch = isinstance(raw, list)
        patch_list: list[Any] = raw if isinstance(raw, list) else []
        if raw is not None and not has_patch:
            raise PatchError(f"invalid patch format of setElementOrder list: {name} is not a list")
        if has_patch:
            _validate_set_order(patch_list, order, merge_key)
        if not has_original and not has_patch:
            continue
        base: list[Any] = original[name] if has_original else []
        if has_patch:
            if field.merge:
                merged = _merge_list_values(base, patch_list, field, name)
            else:
                merged = _clean(patch_list)
            handled.add(name)
        else:
            merged = base
        in_order = [x for x in merged if _index(order, x, merge_key) >= 0]
        server_only = [x for x in merged if _index(order, x, merge_key) < 0]
        original[name] = _normalize_order(in_order, server_only, order, base, merge_key)
    return handled


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """The non-deleting items of the patch list must appear in `order`, in the same relative order."""
    items = [x for x in patch_list if not (isinstance(x, dict) and _DIRECTIVE in x)]
    if not items or not order:
        return
    i = j = 0
    while i < len(items) and j < len(order):
        if _same_item(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items):
        raise PatchError(
            f"The order in patch list:\n{_short(patch_list)}\n doesn't match $setElementOrder list:\n{_short(order)}"
        )


def _merge_list_values(original: list[Any], patch: list[Any], field: _Field, name: str) -> list[Any]:
    """Merge two lists with strategy "merge" (by `field.merge_key`, or as a set of primitives)."""
    if not original and not patch:
        return []
    kinds = {_element_kind(x) for x in (*original, *patch)}
    if "list" in kinds:
        raise PatchError("lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical in {name}")
    if "map" not in kinds:
        merged: list[Any] = []
        for x in (*original, *patch):
            if not any(_json_equal(x, y) for y in merged):
                merged.append(x)
        in_patch = [x for x in merged if _index(patch, x, None) >= 0]
        server_only = [x for x in merged if _index(patch, x, None) < 0]
        return _normalize_order(in_patch, server_only, patch, original, None)

    key = field.merge_key
    if key is None:
        raise PatchError(f"cannot merge lists without merge key for {name}")
    result = [copy.deepcopy(x) for x in original]
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError(f"map: {_short(item)} does not contain declared merge key: {key}")
            result = [x for x in result if not (key in x and _json_equal(x[key], item[key]))]
        elif directive == "replace":
            replace = True
        elif directive != "merge":
            raise PatchError(f"unknown patch type: {directive} in map: {_short(item)}")
    if replace:
        return [_merge_map({}, x, field.type) for x in plain]
    for item in plain:
        if key not in item:
            raise PatchError(f"map: {_short(item)} does not contain declared merge key: {key}")
        pos = next((i for i, x in enumerate(result) if key in x and _json_equal(x[key], item[key])), -1)
        if pos >= 0:
            result[pos] = _merge_map(result[pos], item, field.type)
        else:
            result.append(_merge_map({}, item, field.type))
    in_patch = [x for x in result if _index(plain, x, key) >= 0]
    server_only = [x for x in result if _index(plain, x, key) < 0]
    return _normalize_order(in_patch, server_only, plain, original, key)


def _element_kind(x: Any) -> str:
    if isinstance(x, dict):
        return "map"
    if isinstance(x, list):
        return "list"
    return "scalar"


def _same_item(a: Any, b: Any, merge_key: str | None) -> bool:
    if merge_key is None:
        return _json_equal(a, b)
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return merge_key in a and merge_key in b and _json_equal(a[merge_key], b[merge_key])


def _index(items: list[Any], item: Any, merge_key: str | None) -> int:
    for i, x in enumerate(items):
        if _same_item(x, item, merge_key):
            return i
    return -1


def _normalize_order(
    patch_items: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str | None
) -> list[Any]:
    """Order patch items by `patch_order`, server-only items by `server_order`, then interleave them
    the way apimachinery's `normalizeElementOrder`/`mergeSortedSlice` do."""

    def sort_by(items: list[Any], order: list[Any]) -> list[Any]:
        def rank(x: Any) -> int:
            i = _index(order, x, merge_key)
            return i if i >= 0 else len(order)

        return sorted(items, key=rank)

    left = sort_by(server_only, server_order)
    right = sort_by(patch_items, patch_order)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key)
            ri = _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _clean(value: Any) -> Any:
    """A patch value stored verbatim: drop maps carrying `$patch`, `null` map values and directives."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(x) for x in value if not (isinstance(x, dict) and _DIRECTIVE in x)]
    return value


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# --------------------------------------------------------------------------------------------------

_OPS: Final = ("add", "remove", "replace", "move", "copy", "test")


def json_patch(target: Any, ops: Any, copy_limit: int = MAX_BODY) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) atomically; raise :class:`PatchError`.

    `copy` operations may add at most `copy_limit` bytes (JSON-encoded) in total, as evanphx/json-patch's
    `AccumulatedCopySizeLimit` bounds them in kube-apiserver: each copy could otherwise double the object."""
    if not isinstance(ops, list):
        raise PatchError(f"a JSON patch must be a JSON array of operations, not {type_name(ops)}")
    doc = copy.deepcopy(target)
    copied = 0
    for n, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"JSON patch operation {n} must be a JSON object, not {type_name(op)}")
        name = op.get("op")
        if name not in _OPS:
            raise PatchError(f"JSON patch operation {n}: unsupported op {name!r} (expected one of {', '.join(_OPS)})")
        path = _op_string(op, "path", n)
        try:
            if name == "copy":
                doc, size = _op_copy(doc, op, path, n, copied, copy_limit)
                copied += size
            else:
                doc = _JSON_PATCH_OPS[name](doc, op, path, n)
        except _PointerError as e:
            raise PatchError(f"JSON patch operation {n} ({name} {path!r}): {e}") from None
    return doc


class _PointerError(Exception):
    pass


def _op_string(op: Mapping[str, Any], member: str, n: int) -> str:
    value = op.get(member)
    if not isinstance(value, str):
        raise PatchError(f"JSON patch operation {n} ({op.get('op')}) needs a string {member!r}")
    return value


def _op_value(op: Mapping[str, Any], n: int) -> Any:
    if "value" not in op:
        raise PatchError(f"JSON patch operation {n} ({op['op']}) needs a 'value'")
    return copy.deepcopy(op["value"])


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _PointerError(f"invalid JSON pointer {pointer!r}: must be empty or start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _array_index(token: str, length: int, *, allow_end: bool) -> int:
    if token == "-":
        if allow_end:
            return length
        raise _PointerError("'-' refers to a nonexistent array element")
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise _PointerError(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise _PointerError(f"array index {index} out of bounds (length {length})")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise _PointerError(f"member {token!r} not found")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_array_index(token, len(doc), allow_end=False)]
        else:
            raise _PointerError(f"cannot index into a {type_name(doc)} with {token!r}")
    return doc


def _get(doc: Any, path: str) -> Any:
    return _resolve(doc, _parse_pointer(path))


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _parse_pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True), value)
    else:
        raise _PointerError(f"cannot add to a {type_name(parent)}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _parse_pointer(path)
    if not tokens:
        raise _PointerError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PointerError(f"member {last!r} not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), allow_end=False))
    raise _PointerError(f"cannot remove from a {type_name(parent)}")


def _op_add(doc: Any, op: Mapping[str, Any], path: str, n: int) -> Any:
    return _add(doc, path, _op_value(op, n))


def _op_remove(doc: Any, op: Mapping[str, Any], path: str, n: int) -> Any:
    return _remove(doc, path)[0]


def _op_replace(doc: Any, op: Mapping[str, Any], path: str, n: int) -> Any:
    value = _op_value(op, n)
    _get(doc, path)  # must exist
    tokens = _parse_pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent[_array_index(tokens[-1], len(parent), allow_end=False)] = value
    return doc


def _op_move(doc: Any, op: Mapping[str, Any], path: str, n: int) -> Any:
    source = _op_string(op, "from", n)
    if source == path:
        _get(doc, source)
        return doc
    if path.startswith(source + "/"):
        raise _PointerError(f"cannot move {source!r} into one of its own children")
    doc, value = _remove(doc, source)
    return _add(doc, path, value)


def _op_copy(doc: Any, op: Mapping[str, Any], path: str, n: int, copied: int, limit: int) -> tuple[Any, int]:
    """The document after the copy, and the copy's encoded size (the copy stops once it passes the limit)."""
    try:
        value, size = copy_bounded(_get(doc, _op_string(op, "from", n)), limit - copied)
    except TooLarge:
        size = limit - copied + 1
        value = None
    if copied + size > limit:
        raise PatchError(f"Unable to complete the copy, the accumulated size increase of copy is at least "
                         f"{copied + size}, exceeding the limit {limit}")
    return _add(doc, path, value), size


def _op_test(doc: Any, op: Mapping[str, Any], path: str, n: int) -> Any:
    expected = _op_value(op, n)
    actual = _get(doc, path)
    if not _json_equal(actual, expected):
        raise PatchError(
            f"JSON patch operation {n} (test {path!r}) failed: value is {_short(actual)}, expected {_short(expected)}"
        )
    return doc


# `copy` is applied by `json_patch` itself: it carries the accumulated copy size.
_JSON_PATCH_OPS: Final[dict[str, Callable[[Any, Mapping[str, Any], str, int], Any]]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "test": _op_test,
}


# --------------------------------------------------------------------------------------------------
# Creating merge patches (client side: apply and edit)
# --------------------------------------------------------------------------------------------------


def two_way_merge_patch(original: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch turning `original` into `modified` (`jsonpatch.CreateMergePatch`).

    Keys missing from `modified` become `null`; changed lists are sent whole. Used by `edit`.
    `{}` means "no change". (A merge patch cannot express a `null` value: `modified` should have none.)
    """
    if not isinstance(original, dict) or not isinstance(modified, dict):
        raise PatchError("merge patches can only be computed between two JSON objects")
    return _diff(original, modified)


def _diff(original: Mapping[str, Any], modified: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, new in modified.items():
        if key not in original:
            patch[key] = copy.deepcopy(new)
            continue
        old = original[key]
        if isinstance(old, dict) and isinstance(new, dict):
            sub = _diff(old, new)
            if sub:
                patch[key] = sub
        elif not _json_equal(old, new):
            patch[key] = copy.deepcopy(new)
    for key in original:
        if key not in modified:
            patch[key] = None
    return patch


def three_way_merge_patch(
    original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """The JSON merge patch client-side `apply` sends (kubectl's `CreateThreeWayJSONMergePatch`).

    `original` is the last-applied configuration (None when the live object has no annotation),
    `modified` the new configuration, `current` the live object. The patch deletes what the user
    removed since `original` and sets everything `modified` changes relative to `current`, while
    leaving fields the server or other clients added alone. `{}` means "unchanged".

    Like kubectl, refuses a patch that changes `apiVersion`, `kind` or `metadata.name`.
    """
    original = original or {}
    for name, doc in (("original", original), ("modified", modified), ("current", current)):
        if not isinstance(doc, dict):
            raise PatchError(f"{name} configuration must be a JSON object, not {type_name(doc)}")
    add_and_change = _keep_or_drop_nulls(_diff(current, modified), keep_null=False)
    deletions = _keep_or_drop_nulls(_diff(original, modified), keep_null=True)
    if _has_conflicts(add_and_change, deletions):
        raise PatchError(
            f"patch:\n{_short(add_and_change)}\nconflicts with changes made from original to current:\n{_short(deletions)}"
        )
    patch = copy.deepcopy(deletions)
    _merge_patches(patch, add_and_change)
    if "apiVersion" in patch or "kind" in patch or (
        isinstance(patch.get("metadata"), dict) and "name" in patch["metadata"]
    ):
        raise PatchError("At least one of apiVersion, kind and name was changed")
    return patch


def _keep_or_drop_nulls(patch: Mapping[str, Any], *, keep_null: bool) -> dict[str, Any]:
    """jsonmergepatch's `keepOrDeleteNullInObj`: keep only deletions, or only additions and changes."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            if keep_null:
                out[key] = None
        elif isinstance(value, dict):
            if not value:
                if not keep_null:
                    out[key] = {}  # an explicitly set empty map is a value
                continue
            sub = _keep_or_drop_nulls(value, keep_null=keep_null)
            if sub:
                out[key] = sub
        elif not keep_null:
            out[key] = value
    return out


def _has_conflicts(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    for key, lv in left.items():
        if key not in right:
            continue
        rv = right[key]
        if isinstance(lv, dict) and isinstance(rv, dict):
            if _has_conflicts(lv, rv):
                return True
        elif not _json_equal(lv, rv):
            return True
    return False


def _merge_patches(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_patches(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
