"""Structural schema check: unknown fields, wrong types and enum violations.

The API server calls `check(schema_for(group, kind), obj)` on every create, update and patch result,
before Istio's semantic validation. With `fieldValidation=Strict` (what kubectl ≥ 1.27 sends once
the OpenAPI v3 documents advertise the parameter) `unknown_fields` reject the write; with `Warn`
they become warnings, with `Ignore` they are dropped. `errors` always reject it, with messages
shaped like kube-apiserver's CRD validation:

    spec.hosts: Invalid value: "string": spec.hosts in body must be of type array: "string"
    spec.tls[0].mode: Unsupported value: "FOO": supported values: "DISABLE", "SIMPLE", ...

Rules follow Kubernetes' structural schemas:
  * `x-kubernetes-preserve-unknown-fields: true` keeps fields the schema does not list (listed
    ones are still type-checked); `additionalProperties` makes an object a map;
  * `x-kubernetes-int-or-string: true` accepts an integer or a string; `format: quantity` strings
    also accept numbers (`cpu: 0.5`);
  * a `null` object field or map value is accepted (the apiserver drops it, or decodes it to the
    zero value); a `null` array item is a type error unless the item schema is `nullable`;
  * a node without `type` accepts any value.
The input is never mutated (nothing is pruned here).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from sluice.validation.field import FINITE, ErrorType, FieldError, Path

__all__ = ["Structural", "check", "prune", "type_name"]

Schema = dict[str, Any]

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"


@dataclass(frozen=True)
class Structural:
    """Outcome of `check`: field paths the schema does not know, and type/enum errors."""

    unknown_fields: list[str] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unknown_fields and not self.errors


def type_name(value: Any) -> str:
    """The JSON type of a decoded value, as go-openapi names it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_error(path: Path, expected: str, value: Any) -> FieldError:
    actual = type_name(value)
    where = path or "body"
    return FieldError(ErrorType.TYPE_INVALID, str(path), actual,
                      f'{where} in body must be of type {expected}: "{actual}"')


def _type_ok(schema: Schema, value: Any) -> bool:
    t = schema.get("type")
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list | tuple)
    if t == "string":
        if isinstance(value, str):
            return True
        return schema.get("format") == "quantity" and isinstance(value, int | float) and not isinstance(value, bool)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    return True


class _Walker:
    def __init__(self, prune: bool = False) -> None:
        self.unknown: list[str] = []
        self.errors: list[FieldError] = []
        self.prune = prune

    def walk(self, schema: Schema, value: Any, path: Path) -> None:
        if isinstance(value, float) and not math.isfinite(value):  # JSON cannot carry it; consumers break on it
            self.errors.append(FieldError.invalid(str(path), value, FINITE))
            return
        if schema.get(_INT_OR_STRING):
            if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
                self.errors.append(_type_error(path, "integer,string", value))
            return
        if not _type_ok(schema, value):
            self.errors.append(_type_error(path, str(schema.get("type")), value))
            return
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            self.errors.append(FieldError.not_supported(str(path), value, [str(e) for e in enum]))
            return
        if isinstance(value, dict):
            self._object(schema, value, path)
        elif isinstance(value, list | tuple):
            self._array(schema, value, path)

    def _object(self, schema: Schema, value: dict[Any, Any], path: Path) -> None:
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        open_ = bool(schema.get(_PRESERVE)) or extra is True or ("type" not in schema and not props)
        for raw_key, sub in value.items():
            key = str(raw_key)
            if key in props:
                if sub is not None:
                    self.walk(props[key], sub, path.child(key))
            elif isinstance(extra, dict):
                if sub is not None:
                    self.walk(extra, sub, path.key(key))
            elif not open_:
                self.unknown.append(path.child(key))
        if self.prune:
            for p in [k for k in value if str(k) not in props and not isinstance(extra, dict) and not open_]:
                del value[p]

    def _array(self, schema: Schema, value: list[Any] | tuple[Any, ...], path: Path) -> None:
        items = schema.get("items")
        if not isinstance(items, dict):
            return
        for i, sub in enumerate(value):
            if sub is None:
                if not items.get("nullable") and "type" in items:
                    self.errors.append(_type_error(path.index(i), str(items["type"]), sub))
                continue
            self.walk(items, sub, path.index(i))


def prune(schema: Schema, obj: Any) -> Any:
    """A copy of `obj` without the fields `schema` does not declare, as kube-apiserver prunes custom resources
    (used when `fieldValidation` is Warn or Ignore, so unknown fields are reported but never stored)."""
    out = copy.deepcopy(obj)
    if out is not None:
        _Walker(prune=True).walk(schema, out, Path(""))
    return out


def check(schema: Schema, obj: Any) -> Structural:
    """Check `obj` (a decoded JSON/YAML object) against an OpenAPI v3 structural `schema`."""
    w = _Walker()
    if obj is not None:
        w.walk(schema, obj, Path(""))
    return Structural(unknown_fields=w.unknown, errors=w.errors)
