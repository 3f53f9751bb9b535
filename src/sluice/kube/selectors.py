"""Label and field selectors, parsed and matched the way kube-apiserver does.

Callers: the API server filters LIST and WATCH results by `?labelSelector=` and `?fieldSelector=`
and turns a :class:`SelectorError` into a 400 `Status`; controllers match Deployment and Service
selectors against pod labels with :func:`from_label_selector_dict`; the printers render selectors
with ``str()``.

The label-selector grammar, its error messages and its canonical string form follow apimachinery's
`pkg/labels/selector.go` (`Parse`, `NewRequirement`, `Requirement.String`); key and value syntax
follow `IsLabelKey`/`IsLabelValue`. Field selectors follow `pkg/fields/selector.go`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final

__all__ = [
    "SelectorError",
    "Operator",
    "Requirement",
    "LabelSelector",
    "parse_label_selector",
    "from_label_selector_dict",
    "format_labels",
    "FieldRequirement",
    "FieldSelector",
    "parse_field_selector",
    "DEFAULT_FIELDS",
]


class SelectorError(ValueError):
    """An invalid label or field selector; the message is kube-apiserver's wording."""


# --------------------------------------------------------------------------------------------------
# Label key / value syntax (apimachinery pkg/api/validate/content)
# --------------------------------------------------------------------------------------------------

_LABEL_KEY_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_RE: Final = re.compile(f"^{_LABEL_KEY_FMT}$")
_LABEL_VALUE_FMT: Final = f"({_LABEL_KEY_FMT})?"
_LABEL_VALUE_RE: Final = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_MAX_NAME: Final = 63
_MAX_SUBDOMAIN: Final = 253


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


_LABEL_KEY_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _label_key_errors(key: str) -> list[str]:
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > _MAX_SUBDOMAIN:
                errs.append(f"prefix part must be no more than {_MAX_SUBDOMAIN} bytes")
            if not _DNS1123_SUBDOMAIN_RE.match(prefix):
                errs.append("prefix part " + _regex_error(_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    else:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > _MAX_NAME:
        errs.append(f"name part must be no more than {_MAX_NAME} bytes")
    if not _LABEL_KEY_RE.match(name):
        errs.append("name part " + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return errs


def _label_value_errors(value: str) -> list[str]:
    errs: list[str] = []
    if len(value.encode()) > _MAX_NAME:
        errs.append(f"must be no more than {_MAX_NAME} bytes")
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _invalid(path: str, value: Any, detail: str) -> str:
    """`field.Invalid(path, value, detail).Error()`."""
    rendered = json.dumps(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"{path}: Invalid value: {rendered}: {detail}"


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


# --------------------------------------------------------------------------------------------------
# Requirements and label selectors
# --------------------------------------------------------------------------------------------------


class Operator(StrEnum):
    """`selection.Operator` values."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS: Final = ("in", "notin", "=", "==", "!=", "gt", "lt")


@dataclass(frozen=True)
class Requirement:
    """One `key op values` term of a label selector."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def create(cls, key: str, operator: Operator, values: Iterable[str] = (), *, path: str = "") -> Requirement:
        """`labels.NewRequirement`: validate and build; raise :class:`SelectorError`."""
        vals = tuple(values)
        errors: list[str] = []
        key_path = f"{path}.key" if path else "key"
        values_path = f"{path}.values" if path else "values"
        key_errs = _label_key_errors(key)
        if key_errs:
            errors.append(_invalid(key_path, key, "; ".join(key_errs)))
        if operator in (Operator.IN, Operator.NOT_IN):
            if not vals:
                errors.append(_invalid(values_path, list(vals), "for 'in', 'notin' operators, values set can't be empty"))
        elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
            if len(vals) != 1:
                errors.append(_invalid(values_path, list(vals), "exact-match compatibility requires one single value"))
        elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            if vals:
                errors.append(_invalid(values_path, list(vals), "values set must be empty for exists and does not exist"))
        else:  # gt, lt
            if len(vals) != 1:
                errors.append(_invalid(values_path, list(vals), "for 'Gt', 'Lt' operators, exactly one value is required"))
            for i, v in enumerate(vals):
                if not _is_int64(v):
                    errors.append(
                        _invalid(f"{values_path}[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                    )
        for i, v in enumerate(vals):
            value_errs = _label_value_errors(v)
            if value_errs:
                errors.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(value_errs)))
        if errors:
            raise SelectorError(_aggregate(errors))
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        present = self.key in labels
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        if not present or len(self.values) != 1 or not _is_int64(labels[self.key]) or not _is_int64(self.values[0]):
            return False
        have, want = int(labels[self.key]), int(self.values[0])
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        symbol = {
            Operator.EQUALS: "=",
            Operator.DOUBLE_EQUALS: "==",
            Operator.NOT_EQUALS: "!=",
            Operator.IN: " in ",
            Operator.NOT_IN: " notin ",
            Operator.GREATER_THAN: ">",
            Operator.LESS_THAN: "<",
        }[op]
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            values = f"({values})"
        return f"{self.key}{symbol}{values}"


def _is_int64(text: str) -> bool:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return False
    return -(2**63) <= int(text) < 2**63


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements, sorted by key. The empty selector matches everything;
    :meth:`nothing` (a nil `*metav1.LabelSelector`) matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(match_nothing=True)

    @classmethod
    def from_requirements(cls, requirements: Iterable[Requirement]) -> LabelSelector:
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (`Selector.Empty`)."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        lbls: Mapping[str, str] = labels if labels is not None else {}
        return all(r.matches(lbls) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`labels.FormatLabels`: `k=v,k2=v2` sorted by key, or `<none>`."""
    lbls: Mapping[str, str] = labels if labels is not None else {}
    text = ",".join(f"{k}={lbls[k]}" for k in sorted(lbls))
    return text or "<none>"


# --------------------------------------------------------------------------------------------------
# The label selector parser (a port of apimachinery's lexer and recursive-descent parser)
# --------------------------------------------------------------------------------------------------


class _Tok(Enum):
    ERROR = 0
    EOS = 1
    CLOSED_PAR = 2
    COMMA = 3
    DOES_NOT_EXIST = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER_THAN = 7
    IDENTIFIER = 8
    IN = 9
    LESS_THAN = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAR = 13


_STRING_TO_TOKEN: Final = {
    ")": _Tok.CLOSED_PAR,
    ",": _Tok.COMMA,
    "!": _Tok.DOES_NOT_EXIST,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER_THAN,
    "in": _Tok.IN,
    "<": _Tok.LESS_THAN,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN_PAR,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[_Tok, str]]:
    items: list[tuple[_Tok, str]] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_Tok.EOS, ""))
            return items
        if text[pos] in _SPECIAL:
            buffer = ""
            last: tuple[_Tok, str] | None = None
            while pos < n and text[pos] in _SPECIAL:
                buffer += text[pos]
                if buffer in _STRING_TO_TOKEN:
                    last = (_STRING_TO_TOKEN[buffer], buffer)
                    pos += 1
                elif last is not None:
                    break
                else:
                    pos += 1
            items.append(last if last is not None else (_Tok.ERROR, f"error expected: keyword found '{buffer}'"))
        else:
            start = pos
            while pos < n and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
            word = text[start:pos]
            items.append((_STRING_TO_TOKEN.get(word, _Tok.IDENTIFIER), word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def lookahead(self, values: bool) -> tuple[_Tok, str]:
        return self._as(self.items[self.pos], values)

    def consume(self, values: bool) -> tuple[_Tok, str]:
        item = self.items[self.pos]
        self.pos += 1
        return self._as(item, values)

    @staticmethod
    def _as(item: tuple[_Tok, str], values: bool) -> tuple[_Tok, str]:
        tok, lit = item
        if values and tok in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENTIFIER, lit
        return tok, lit

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                try:
                    requirements.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume(True)
                if t is _Tok.EOS:
                    return requirements
                if t is _Tok.COMMA:
                    t2, lit3 = self.lookahead(True)
                    if t2 not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                        raise SelectorError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok is _Tok.EOS:
                return requirements
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_operator()
        if operator is not None:
            return Requirement.create(key, operator, ())
        operator = self.operator()
        if operator in (Operator.IN, Operator.NOT_IN):
            values = self.values()
        else:
            values = self.exact_value()
        return Requirement.create(key, operator, sorted(values))

    def key_and_operator(self) -> tuple[str, Operator | None]:
        operator: Operator | None = None
        tok, lit = self.consume(True)
        if tok is _Tok.DOES_NOT_EXIST:
            operator = Operator.DOES_NOT_EXIST
            tok, lit = self.consume(True)
        if tok is not _Tok.IDENTIFIER:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key_errs = _label_key_errors(lit)
        if key_errs:
            raise SelectorError(_invalid("<nil>", lit, "; ".join(key_errs)))
        nxt, _ = self.lookahead(True)
        if nxt in (_Tok.EOS, _Tok.COMMA) and operator is None:
            operator = Operator.EXISTS
        return lit, operator

    def operator(self) -> Operator:
        tok, lit = self.consume(False)
        ops = {
            _Tok.IN: Operator.IN,
            _Tok.EQUALS: Operator.EQUALS,
            _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Tok.GREATER_THAN: Operator.GREATER_THAN,
            _Tok.LESS_THAN: Operator.LESS_THAN,
            _Tok.NOT_IN: Operator.NOT_IN,
            _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
        }
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def values(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok is not _Tok.OPEN_PAR:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_Tok.IDENTIFIER, _Tok.COMMA):
            values = self.identifiers()
            if self.consume(True)[0] is not _Tok.CLOSED_PAR:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok is _Tok.CLOSED_PAR:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok is _Tok.IDENTIFIER:
                values.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 is _Tok.COMMA:
                    continue
                if tok2 is _Tok.CLOSED_PAR:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok is _Tok.COMMA:
                if not values:
                    values.add("")
                tok2, _ = self.lookahead(True)
                if tok2 in (_Tok.CLOSED_PAR, _Tok.COMMA):
                    values.add("")
                if tok2 is _Tok.CLOSED_PAR:
                    return values
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead(True)
        if tok in (_Tok.EOS, _Tok.COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok is _Tok.IDENTIFIER:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse `?labelSelector=` syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
    `a>1`, `a<1`, joined by commas (AND). The empty string selects everything."""
    return LabelSelector.from_requirements(_Parser(text).parse())


def from_label_selector_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """`metav1.LabelSelectorAsSelector` for `{matchLabels, matchExpressions}` (Deployments, …).

    `None` matches nothing; `{}` matches everything.
    """
    if selector is None:
        return LabelSelector.nothing()
    if not isinstance(selector, Mapping):
        raise SelectorError("a label selector must be an object with matchLabels and matchExpressions")
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be a map and matchExpressions a list")
    if not match_labels and not expressions:
        return LabelSelector.everything()
    requirements = [Requirement.create(str(k), Operator.EQUALS, [str(v)]) for k, v in match_labels.items()]
    operators = {
        "In": Operator.IN,
        "NotIn": Operator.NOT_IN,
        "Exists": Operator.EXISTS,
        "DoesNotExist": Operator.DOES_NOT_EXIST,
    }
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("each matchExpressions entry must be an object")
        op_name = expr.get("operator")
        if op_name not in operators:
            raise SelectorError(f"{json.dumps(op_name if isinstance(op_name, str) else '')} is not a valid label selector operator")
        values = expr.get("values") or []
        requirements.append(Requirement.create(str(expr.get("key", "")), operators[op_name], [str(v) for v in values]))
    return LabelSelector.from_requirements(requirements)


# --------------------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------------------

DEFAULT_FIELDS: Final[frozenset[str]] = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class FieldRequirement:
    """`field=value` (also written `field==value`) or `field!=value`."""

    field: str
    operator: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = _field_value(obj, self.field)
        return (actual == self.value) if self.operator == "=" else (actual != self.value)

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        """The value `field` must equal, if the selector pins it (e.g. `metadata.name=x`)."""
        for r in self.requirements:
            if r.field == field and r.operator == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def parse_field_selector(text: str, allowed: Iterable[str] = DEFAULT_FIELDS) -> FieldSelector:
    """Parse `?fieldSelector=` syntax (`f=v`, `f==v`, `f!=v`, comma = AND) over the `allowed` fields.

    The API server passes the fields a kind supports (e.g. `status.phase`, `spec.nodeName` for
    pods, `involvedObject.name` for events); others raise `field label not supported: <field>`.
    """
    allowed_fields = frozenset(allowed)
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, op, rhs = split
        value = _unescape_field_value(rhs)
        requirements.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", value))
    for r in requirements:
        if r.field not in allowed_fields:
            raise SelectorError(f"field label not supported: {r.field}")
    return FieldSelector(tuple(requirements))


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None
