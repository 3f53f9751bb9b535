"""Output formats: kubectl's column layout for server Tables, YAML/JSON dumps, `-o name`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from sluice.client.discovery import ResourceInfo

__all__ = [
    "TableWriter",
    "cell_text",
    "dump_json",
    "dump_yaml",
    "format_labels",
    "go_value",
    "layout",
    "table_headers_and_rows",
]

# kubectl's printers.GetNewTabWriter: tabwriter(minwidth=6, tabwidth=4, padding=3, ' ').
MIN_WIDTH = 6
PADDING = 3


def layout(rows: Sequence[Sequence[str]], widths: list[int] | None = None) -> list[str]:
    """Align cells like Go's text/tabwriter: every column but the last padded to max(len)+3 (≥ 6).

    `widths`, when given, holds remembered widths from earlier output (watch mode) and is updated."""
    ncols = max((len(r) for r in rows), default=0)
    w = list(widths or [])
    w += [0] * (ncols - len(w))
    for r in rows:
        for i, c in enumerate(r[:-1]):
            w[i] = max(w[i], len(c) + PADDING, MIN_WIDTH)
    if widths is not None:
        widths[:] = w
    out = []
    for r in rows:
        parts = [c.ljust(w[i]) for i, c in enumerate(r[:-1])]
        if r:
            parts.append(r[-1])
        out.append("".join(parts))
    return out


class TableWriter:
    """Prints a table and then further rows aligned with it (kubectl's RememberWidths, used by `get -w`)."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def lines(self, rows: Sequence[Sequence[str]]) -> list[str]:
        return layout(rows, self.widths)


def go_value(value: Any) -> str:
    """Format a decoded JSON value as Go's fmt `%v` does for `interface{}` (how kubectl prints raw cells)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    return go_value(value)


def format_labels(labels: Any) -> str:
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def table_headers_and_rows(
    table: dict[str, Any],
    *,
    wide: bool = False,
    namespace_column: bool = False,
    show_labels: bool = False,
    kind_prefix: str | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Turn a meta.k8s.io Table into upper-cased headers and text rows, as kubectl's table printer does."""
    columns = [c for c in table.get("columnDefinitions") or [] if isinstance(c, dict)]
    keep = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    headers = [str(columns[i].get("name") or "").upper() for i in keep]
    name_col = next((n for n, i in enumerate(keep) if columns[i].get("format") == "name"), 0)
    if namespace_column:
        headers.insert(0, "NAMESPACE")
    if show_labels:
        headers.append("LABELS")
    rows: list[list[str]] = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or [] if isinstance(row, dict) else []
        text = [cell_text(cells[i]) if i < len(cells) else "" for i in keep]
        meta = ((row.get("object") or {}).get("metadata") or {}) if isinstance(row, dict) else {}
        if kind_prefix and text:
            text[name_col] = f"{kind_prefix}/{text[name_col]}"
        if namespace_column:
            text.insert(0, str(meta.get("namespace") or ""))
        if show_labels:
            text.append(format_labels(meta.get("labels")))
        rows.append(text)
    return headers, rows


class _Dumper(yaml.SafeDumper):
    """YAML like kubectl's (sigs.k8s.io/yaml): sorted keys, lists not indented, multi-line strings as blocks,
    and double quotes where quoting is needed (`resourceVersion: "6"`)."""

    def choose_scalar_style(self) -> str:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=1 << 30)


def dump_json(obj: Any) -> str:
    # kubectl's -o json: json.MarshalIndent with 4 spaces over a map, so keys come out sorted.
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)


def as_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The `kind: List` wrapper kubectl prints for several objects with -o yaml/json."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List", "metadata": {"resourceVersion": ""}}


def with_type(obj: dict[str, Any], info: ResourceInfo) -> dict[str, Any]:
    """List items may come without apiVersion/kind; kubectl fills them in before printing."""
    if "kind" not in obj or "apiVersion" not in obj:
        obj = {"apiVersion": info.api_version, "kind": info.kind, **obj}
    return obj


def object_name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _human_duration_fallback(seconds: float) -> str:
    # apimachinery's duration.HumanDuration; used only until sluice.resources.printers is importable.
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 192:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        y = h // (24 * 365)
        d = (h % (24 * 365)) // 24
        return f"{y}y{d}d" if d else f"{y}y"
    return f"{h // (24 * 365)}y"


def age(timestamp: Any) -> str:
    """`5m`, `2d3h`: the AGE of an RFC 3339 timestamp, as kubectl shows it; `<unknown>` if unparsable."""
    import datetime as _dt

    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        when = _dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    seconds = (_dt.datetime.now(_dt.UTC) - when).total_seconds()
    try:
        from sluice.resources.printers import human_duration  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _human_duration_fallback(seconds)
    try:
        return str(human_duration(seconds))
    except TypeError:
        return _human_duration_fallback(seconds)


def fallback_table(items: list[dict[str, Any]]) -> dict[str, Any]:
    """kubectl's default NAME/AGE columns when the server does not answer with a Table."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "priority": 0},
        ],
        "rows": [
            {"cells": [object_name(o), age((o.get("metadata") or {}).get("creationTimestamp"))],
             "object": {"metadata": o.get("metadata") or {}}}
            for o in items
        ],
    }
