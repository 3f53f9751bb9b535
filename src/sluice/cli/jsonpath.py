"""A subset of kubectl's JSONPath templates: fields, indexes, slices, `[*]`, `..`, filters, `range`/`end`, literals."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONPathError", "Template", "render"]


class JSONPathError(ValueError):
    pass


# ---------------------------------------------------------------- template parsing

@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Expr:
    steps: tuple[_Step, ...]


@dataclass(frozen=True)
class _Range:
    steps: tuple[_Step, ...]
    body: tuple[_Node, ...]


@dataclass(frozen=True)
class _Step:
    op: str  # "field" | "recursive" | "index" | "slice" | "all" | "filter" | "union"
    arg: Any = None


_Node = _Text | _Expr | _Range


def _split_actions(template: str) -> list[tuple[bool, str]]:
    """Split into (is_action, text) parts; `{` inside quoted strings does not open an action."""
    parts: list[tuple[bool, str]] = []
    i, n = 0, len(template)
    buf: list[str] = []
    while i < n:
        ch = template[i]
        if ch == "{":
            if buf:
                parts.append((False, "".join(buf)))
                buf = []
            j, depth, quote = i + 1, 1, ""
            while j < n:
                c = template[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = ""
                elif c in "\"'":
                    quote = c
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise JSONPathError(f"unclosed action in {template!r}")
            parts.append((True, template[i + 1:j].strip()))
            i = j + 1
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append((False, "".join(buf)))
    return parts


_STRING_LIT = re.compile(r'^"((?:[^"\\]|\\.)*)"$|^\'((?:[^\'\\]|\\.)*)\'$')


def _parse_literal(action: str) -> str | None:
    m = _STRING_LIT.match(action)
    if not m:
        return None
    raw = m.group(1) if m.group(1) is not None else m.group(2)
    try:
        value = json.loads('"' + raw.replace('"', '\\"').replace('\\\\"', '\\"') + '"')
    except ValueError:
        value = raw
    return str(value)


def _parse_path(expr: str) -> tuple[_Step, ...]:
    s = expr.strip()
    if s.startswith("$"):
        s = s[1:]
    if s in ("", "@"):
        return ()
    if s.startswith("@"):
        s = s[1:]
    steps: list[_Step] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == ".":
            if i + 1 < n and s[i + 1] == ".":
                i += 2
                name, i = _read_name(s, i)
                steps.append(_Step("recursive", name))
                continue
            i += 1
            if i < n and s[i] == "[":
                continue
            name, i = _read_name(s, i)
            if name == "*":
                steps.append(_Step("all"))
            elif name:
                steps.append(_Step("field", name))
        elif c == "[":
            j = _matching_bracket(s, i)
            steps.append(_parse_bracket(s[i + 1:j]))
            i = j + 1
        else:
            name, i = _read_name(s, i)
            if not name:
                raise JSONPathError(f"unrecognized character in action: {s[i]!r}")
            steps.append(_Step("field", name))
    return tuple(steps)


def _read_name(s: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(s) and s[i] not in ".[":
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])  # `\.` escapes a dot inside a key (annotation names)
            i += 2
            continue
        out.append(s[i])
        i += 1
    return "".join(out).strip(), i


def _matching_bracket(s: str, i: int) -> int:
    depth, quote = 0, ""
    for j in range(i, len(s)):
        c = s[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JSONPathError(f"unterminated array in {s!r}")


_FILTER = re.compile(r"^\?\((.*)\)$", re.S)
_COND = re.compile(r"^(@[^=!<>]*?)\s*(==|!=|<=|>=|<|>)\s*(.+)$", re.S)


def _parse_bracket(inner: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _Step("all")
    m = _FILTER.match(inner)
    if m:
        cond = m.group(1).strip()
        cm = _COND.match(cond)
        if cm:
            return _Step("filter", (_parse_path(cm.group(1)), cm.group(2), _literal_value(cm.group(3).strip())))
        return _Step("filter", (_parse_path(cond), "exists", None))
    lit = _parse_literal(inner)
    if lit is not None:
        return _Step("field", lit)
    if "," in inner:
        return _Step("union", tuple(_parse_bracket(p) for p in inner.split(",")))
    if ":" in inner:
        parts = [p.strip() for p in inner.split(":")]
        try:
            nums = [int(p) if p else None for p in parts]
        except ValueError as e:
            raise JSONPathError(f"invalid slice {inner!r}") from e
        return _Step("slice", tuple(nums + [None] * (3 - len(nums))))
    try:
        return _Step("index", int(inner))
    except ValueError:
        return _Step("field", inner)


def _literal_value(text: str) -> Any:
    lit = _parse_literal(text)
    if lit is not None:
        return lit
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse(template: str) -> tuple[_Node, ...]:
    stack: list[list[_Node]] = [[]]
    ranges: list[tuple[_Step, ...]] = []
    for is_action, text in _split_actions(template):
        if not is_action:
            stack[-1].append(_Text(text))
            continue
        lit = _parse_literal(text)
        if lit is not None:
            stack[-1].append(_Text(lit))
        elif text.startswith("range ") or text == "range":
            ranges.append(_parse_path(text[5:]))
            stack.append([])
        elif text == "end":
            if not ranges:
                raise JSONPathError("not in range, nothing to end")
            body = stack.pop()
            stack[-1].append(_Range(ranges.pop(), tuple(body)))
        else:
            stack[-1].append(_Expr(_parse_path(text)))
    if ranges:
        raise JSONPathError("unclosed range")
    return tuple(stack[0])


# ---------------------------------------------------------------- evaluation

_MISSING = object()


def _apply(steps: tuple[_Step, ...], values: list[Any]) -> list[Any]:
    for step in steps:
        nxt: list[Any] = []
        for v in values:
            nxt.extend(_apply_step(step, v))
        values = nxt
    return values


def _apply_step(step: _Step, v: Any) -> list[Any]:
    if step.op == "field":
        if isinstance(v, dict) and step.arg in v:
            return [v[step.arg]]
        return []
    if step.op == "all":
        if isinstance(v, list):
            return list(v)
        if isinstance(v, dict):
            return list(v.values())
        return []
    if step.op == "index":
        if isinstance(v, list):
            i = step.arg
            if -len(v) <= i < len(v):
                return [v[i]]
            raise JSONPathError(f"array index out of bounds: index {i}, length {len(v)}")
        return []
    if step.op == "slice":
        if isinstance(v, list):
            start, stop, stride = step.arg
            return v[slice(start, stop, stride)]
        return []
    if step.op == "union":
        out: list[Any] = []
        for sub in step.arg:
            out.extend(_apply_step(sub, v))
        return out
    if step.op == "recursive":
        return _recursive(v, step.arg)
    if step.op == "filter":
        path, op, want = step.arg
        items = v if isinstance(v, list) else [v]
        return [item for item in items if _matches(_apply(path, [item]), op, want)]
    raise JSONPathError(f"unknown step {step.op}")


def _recursive(v: Any, name: str) -> list[Any]:
    out: list[Any] = []
    if isinstance(v, dict):
        if name in ("", "*"):
            out.extend(v.values())
        elif name in v:
            out.append(v[name])
        for child in v.values():
            out.extend(_recursive(child, name))
    elif isinstance(v, list):
        for child in v:
            out.extend(_recursive(child, name))
    return out


def _matches(found: list[Any], op: str, want: Any) -> bool:
    if op == "exists":
        return bool(found)
    for got in found:
        try:
            if op == "==" and got == want:
                return True
            if op == "!=" and got != want:
                return True
            if op == "<" and got < want:
                return True
            if op == ">" and got > want:
                return True
            if op == "<=" and got <= want:
                return True
            if op == ">=" and got >= want:
                return True
        except TypeError:
            continue
    return False


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


class Template:
    """A parsed template; `render(data)` returns the text kubectl would print."""

    def __init__(self, template: str) -> None:
        self.source = template
        self.nodes = _parse(_normalise(template))

    def values(self, data: Any) -> list[Any]:
        """The raw results of a template that is one expression (`{.spec.hosts}`), for custom columns."""
        exprs = [n for n in self.nodes if isinstance(n, _Expr)]
        if len(exprs) != 1 or len(self.nodes) != 1:
            return [self.render(data)]
        return _apply(exprs[0].steps, [data])

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._walk(self.nodes, data, out)
        return "".join(out)

    def _walk(self, nodes: tuple[_Node, ...], current: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Expr):
                values = _apply(node.steps, [current])
                out.append(" ".join(_text(v) for v in values))
            else:
                results = _apply(node.steps, [current])
                # `range .items[*]` already yields the elements; `range .items` yields one list to iterate.
                flattened = bool(node.steps) and node.steps[-1].op in ("all", "slice", "filter", "union")
                for item in results:
                    for v in (item if isinstance(item, list) and not flattened else [item]):
                        self._walk(node.body, v, out)


def _normalise(template: str) -> str:
    """kubectl accepts a bare path (`.metadata.name`) as well as `{.metadata.name}`."""
    t = template.strip() if "{" not in template else template
    if "{" not in t and t.startswith((".", "$")):
        return "{" + t + "}"
    return template


def render(template: str, data: Any) -> str:
    return Template(template).render(data)
