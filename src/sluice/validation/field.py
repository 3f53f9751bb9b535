"""Field errors shaped like Kubernetes' `field.Error` (apimachinery/pkg/util/validation/field).

Every validator returns these so the API server can turn them into a 422 `Status` whose
`details.causes[]` carry `reason`, `field` and `message`, which kubectl prints as
`The VirtualService "reviews" is invalid: spec.http[0].route: Invalid value: 90: ...`.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ErrorType", "FieldError", "Validation", "Path", "format_value", "FINITE"]

# The detail for NaN/±Inf in a number field (Kubernetes JSON cannot carry them).
FINITE = "must be a finite number"


class ErrorType(enum.Enum):
    """The `reason` of a `StatusCause`, and the prefix of its message."""

    NOT_FOUND = ("FieldValueNotFound", "Not found")
    REQUIRED = ("FieldValueRequired", "Required value")
    DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
    INVALID = ("FieldValueInvalid", "Invalid value")
    NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
    FORBIDDEN = ("FieldValueForbidden", "Forbidden")
    TOO_LONG = ("FieldValueTooLong", "Too long")
    TOO_MANY = ("FieldValueTooMany", "Too many")
    TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
    INTERNAL = ("InternalError", "Internal error")

    @property
    def reason(self) -> str:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]


class _Omitted:
    def __repr__(self) -> str:
        return "OMITTED"


OMITTED: Any = _Omitted()


def format_value(value: Any) -> str:
    """Format a bad value the way Go's field.Error does: strings quoted, numbers bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # Go's %v
            return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class FieldError:
    type: ErrorType
    field: str
    bad_value: Any = OMITTED
    detail: str = ""

    @property
    def message(self) -> str:
        """The cause message: everything after `<field>: `."""
        head = self.type.label
        if self.type in (ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG, ErrorType.TOO_MANY):
            return f"{head}: {self.detail}" if self.detail else head
        if self.bad_value is not OMITTED:
            head = f"{head}: {format_value(self.bad_value)}"
        return f"{head}: {self.detail}" if self.detail else head

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(ErrorType.INVALID, path, value, detail)

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        return cls(ErrorType.REQUIRED, path, OMITTED, detail)

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        return cls(ErrorType.FORBIDDEN, path, OMITTED, detail)

    @classmethod
    def internal(cls, path: str, detail: str) -> FieldError:
        return cls(ErrorType.INTERNAL, path, OMITTED, detail)

    @classmethod
    def duplicate(cls, path: str, value: Any) -> FieldError:
        return cls(ErrorType.DUPLICATE, path, value)

    @classmethod
    def not_supported(cls, path: str, value: Any, supported: list[str]) -> FieldError:
        detail = "supported values: " + ", ".join(json.dumps(s) for s in supported)
        return cls(ErrorType.NOT_SUPPORTED, path, value, detail)


class Path(str):
    """A field path that builds children: Path("spec").child("http").index(0) == "spec.http[0]"."""

    __slots__ = ()

    def child(self, name: str) -> Path:
        return Path(f"{self}.{name}" if self else name)

    def index(self, i: int) -> Path:  # type: ignore[override]  # shadows str.index on purpose
        return Path(f"{self}[{i}]")

    def key(self, k: str) -> Path:
        return Path(f"{self}[{k}]")


@dataclass
class Validation:
    """Accumulated result of validating one object: errors reject the write, warnings do not."""

    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, err: FieldError) -> None:
        self.errors.append(err)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def extend(self, other: Validation) -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)

    @property
    def ok(self) -> bool:
        return not self.errors
