"""`sluice get`: server-side Tables printed like kubectl, `-o yaml|json|name|jsonpath=…|wide`, and `--watch`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click

from sluice.cli import printing
from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.jsonpath import JSONPathError, Template
from sluice.cli.targets import Target, parse_targets
from sluice.client.discovery import ResourceInfo
from sluice.client.errors import ApiError
from sluice.client.rest import TABLE_ACCEPT

__all__ = ["COMMANDS", "OutputFormat", "parse_output", "no_resources_message"]


@dataclass(frozen=True)
class OutputFormat:
    kind: str  # "table" | "wide" | "yaml" | "json" | "name" | "jsonpath" | "custom-columns"
    template: Template | None = None
    columns: tuple[tuple[str, Template], ...] = ()

    @property
    def tabular(self) -> bool:
        return self.kind in ("table", "wide")


def parse_output(value: str | None) -> OutputFormat:
    if not value:
        return OutputFormat("table")
    if value in ("wide", "yaml", "json", "name"):
        return OutputFormat(value)
    if value.startswith("custom-columns="):
        columns = []
        for spec in value[len("custom-columns="):].split(","):
            header, sep, path = spec.partition(":")
            if not sep or not header or not path:
                raise CliError(f'unexpected custom-columns spec: {spec}, expected <header>:<json-path-expr>')
            try:
                columns.append((header, Template(path if path.startswith("{") else "{" + path + "}")))
            except JSONPathError as e:
                raise CliError(f"error parsing jsonpath {path}, {e}") from None
        return OutputFormat("custom-columns", columns=tuple(columns))
    for prefix in ("jsonpath=", "jsonpath-as-json=", "template=", "go-template="):
        if value.startswith(prefix):
            if not prefix.startswith("jsonpath="):
                raise CliError(f"output format {prefix[:-1]!r} is not supported; use jsonpath=")
            try:
                return OutputFormat("jsonpath", Template(value[len(prefix):]))
            except JSONPathError as e:
                raise CliError(f"error parsing jsonpath {value[len(prefix):]}, {e}") from None
    raise CliError(f'unable to match a printer suitable for the output format "{value}", allowed formats are: '
                   "custom-columns,json,jsonpath,jsonpath-as-json,name,wide,yaml")


def no_resources_message(namespace: str | None, all_namespaces: bool, info: ResourceInfo | None = None) -> str:
    if all_namespaces or namespace is None or (info is not None and not info.namespaced):
        return "No resources found"
    return f"No resources found in {namespace} namespace."


@dataclass
class _Fetched:
    info: ResourceInfo
    tables: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    single: bool = False
    resource_version: str = ""


def _fetch(s: Session, target: Target, ns: str | None, out: OutputFormat, label_selector: str | None,
           field_selector: str | None, errors: list[str], ignore_not_found: bool) -> _Fetched:
    info = target.info
    fetched = _Fetched(info, single=target.name is not None)
    scope = ns if info.namespaced else None
    if target.name is not None:
        try:
            if out.tabular:
                doc = s.client.get(info, target.name, scope, accept=TABLE_ACCEPT)
                fetched.tables.append(doc if doc.get("kind") == "Table" else printing.fallback_table([doc]))
            else:
                fetched.objects.append(printing.with_type(s.client.get(info, target.name, scope), info))
        except ApiError as e:
            if not (ignore_not_found and e.not_found):
                errors.append(format_api_error(e))
        return fetched
    accept = TABLE_ACCEPT if out.tabular else "application/json"
    doc = s.client.list(info, scope, label_selector=label_selector, field_selector=field_selector, accept=accept)
    fetched.resource_version = str((doc.get("metadata") or {}).get("resourceVersion") or "")
    if out.tabular:
        fetched.tables.append(doc if doc.get("kind") == "Table" else printing.fallback_table(doc.get("items") or []))
    else:
        fetched.objects.extend(printing.with_type(o, info) for o in doc.get("items") or [])
    return fetched


def _merge_tables(tables: list[dict[str, Any]]) -> dict[str, Any]:
    if not tables:
        return {"columnDefinitions": [], "rows": []}
    merged = dict(tables[0])
    merged["rows"] = [r for t in tables for r in t.get("rows") or []]
    return merged


def print_objects(objects: list[dict[str, Any]], out: OutputFormat, *, single: bool, infos: list[ResourceInfo]) -> None:
    if out.kind == "name":
        by_kind = {(i.api_version, i.kind): i for i in infos}
        for o in objects:
            info = by_kind.get((str(o.get("apiVersion")), str(o.get("kind"))))
            prefix = info.kind_qualified if info else str(o.get("kind") or "").lower()
            click.echo(f"{prefix}/{printing.object_name(o)}")
        return
    if out.kind == "custom-columns":
        rows = [[h for h, _ in out.columns]]
        for o in objects:
            rows.append([_cell(t, o) for _, t in out.columns])
        click.echo("\n".join(printing.layout(rows)))
        return
    doc: Any = objects[0] if single and len(objects) == 1 else printing.as_list(objects)
    if out.kind == "yaml":
        click.echo(printing.dump_yaml(doc), nl=False)
    elif out.kind == "json":
        click.echo(printing.dump_json(doc))
    elif out.template is not None:
        try:
            click.echo(out.template.render(doc), nl=False)
        except JSONPathError as e:
            raise CliError(f"error executing jsonpath {out.template.source!r}: {e}") from None


def _cell(template: Template, obj: dict[str, Any]) -> str:
    try:
        values = template.values(obj)
    except JSONPathError:
        values = []
    # kubectl prints custom-column values with Go's %v (`[reviews]`), and <none> when absent.
    return " ".join(printing.go_value(v) for v in values) or "<none>"


@click.command("get")
@click.argument("args", nargs=-1, required=True)
@click.option("-o", "--output", help="Output format: wide, yaml, json, name, jsonpath=<template>.")
@click.option("-l", "--selector", help="Label selector (=, ==, !=, in, notin, key, !key).")
@click.option("--field-selector", help="Field selector, e.g. metadata.name=reviews.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@click.option("--watch-only", is_flag=True, help="Watch for changes without listing first.")
@click.option("--show-labels", is_flag=True, help="Show all labels as the last column.")
@click.option("--no-headers", is_flag=True, help="Don't print headers.")
@click.option("--ignore-not-found", is_flag=True, help="Treat 'not found' as a successful retrieval.")
@global_options
def get_cmd(args: tuple[str, ...], output: str | None, selector: str | None, field_selector: str | None,
            all_namespaces: bool, watch: bool, watch_only: bool, show_labels: bool, no_headers: bool,
            ignore_not_found: bool) -> None:
    """Display one or many resources (`sluice get vs`, `sluice get deploy,svc -A`, `sluice get vs reviews -o yaml`)."""
    s = session()
    out = parse_output(output)
    targets = parse_targets(s, args)
    ns: str | None = None if all_namespaces else s.namespace
    if watch or watch_only:
        infos = {t.info for t in targets}
        if len(infos) != 1:
            raise CliError("you may only specify a single resource type")
        _watch(s, targets, ns, out, selector, field_selector, all_namespaces, show_labels, no_headers, watch_only)
        return
    errors: list[str] = []
    groups: list[_Fetched] = []
    for t in targets:
        existing = next((g for g in groups if g.info == t.info and g.single == (t.name is not None)), None)
        fetched = _fetch(s, t, ns, out, selector, field_selector, errors, ignore_not_found)
        if existing is not None:
            existing.tables.extend(fetched.tables)
            existing.objects.extend(fetched.objects)
        else:
            groups.append(fetched)
    any_named = any(t.name is not None for t in targets)
    if out.tabular:
        # kubectl prefixes names with the kind when several types are printed together.
        multiple = len({g.info for g in groups}) > 1
        printed = 0
        for g in groups:
            table = _merge_tables(g.tables)
            if not table.get("rows"):
                continue
            headers, rows = printing.table_headers_and_rows(
                table, wide=out.kind == "wide", namespace_column=all_namespaces and g.info.namespaced,
                show_labels=show_labels, kind_prefix=g.info.kind_qualified if multiple else None)
            if printed:
                click.echo("")
            lines = printing.layout(rows if no_headers else [headers, *rows])
            click.echo("\n".join(lines))
            printed += 1
        if not printed and not any_named and not errors:
            click.echo(no_resources_message(ns, all_namespaces, targets[0].info), err=True)
    else:
        objects = [o for g in groups for o in g.objects]
        single = len(targets) == 1 and any_named
        if objects:
            print_objects(objects, out, single=single, infos=[g.info for g in groups])
        elif not any_named:
            if out.kind == "custom-columns":
                print_objects([], out, single=False, infos=[g.info for g in groups])
            elif out.kind != "name":
                print_objects([], out, single=False, infos=[g.info for g in groups])
    if errors:
        raise CliError("\n".join(errors), raw=True)


def _watch(s: Session, targets: list[Target], ns: str | None, out: OutputFormat, selector: str | None,
           field_selector: str | None, all_namespaces: bool, show_labels: bool, no_headers: bool,
           watch_only: bool) -> None:
    info = targets[0].info
    names = [t.name for t in targets if t.name]
    if len(names) > 1:
        raise CliError("watch is only supported on individual resources and resource collections, but "
                       f"{len(names)} resources were found")
    if names:
        field_selector = f"metadata.name={names[0]}" + (f",{field_selector}" if field_selector else "")
    scope = ns if info.namespaced else None
    writer = printing.TableWriter()
    rows_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    header_done = no_headers

    def emit_table(table: dict[str, Any]) -> None:
        nonlocal header_done
        headers, rows = printing.table_headers_and_rows(
            table, wide=out.kind == "wide", namespace_column=all_namespaces and info.namespaced,
            show_labels=show_labels)
        lines = writer.lines([headers, *rows] if not header_done else rows)
        if not header_done:
            header_done = True
        for line in lines:
            click.echo(line)
        sys.stdout.flush()

    table = s.client.list(info, scope, label_selector=selector, field_selector=field_selector, accept=TABLE_ACCEPT)
    rv = str((table.get("metadata") or {}).get("resourceVersion") or "")
    if table.get("kind") != "Table":
        table = printing.fallback_table(table.get("items") or [])
    if not watch_only:
        if table.get("rows"):
            if out.tabular:
                emit_table(table)
            else:
                doc = s.client.list(info, scope, label_selector=selector, field_selector=field_selector)
                rv = str((doc.get("metadata") or {}).get("resourceVersion") or rv)
                for o in doc.get("items") or []:
                    _print_watched(printing.with_type(o, info), out, info)
        else:
            click.echo(no_resources_message(ns, all_namespaces, info), err=True)
    for initial in table.get("rows") or []:
        meta = (initial.get("object") or {}).get("metadata") or {}
        rows_by_key[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = initial
    while True:
        try:
            for event in s.client.watch(info, scope, resource_version=rv or None, label_selector=selector,
                                        field_selector=field_selector, timeout_seconds=1800):
                meta = event.object.get("metadata") or {}
                if meta.get("resourceVersion"):
                    rv = str(meta["resourceVersion"])
                if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                if not out.tabular:
                    _print_watched(printing.with_type(event.object, info), out, info)
                    continue
                key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
                row: Any = None
                if event.type != "DELETED":
                    try:
                        one = s.client.get(info, key[1], key[0] or None, accept=TABLE_ACCEPT)
                        if one.get("kind") == "Table" and one.get("rows"):
                            row = one["rows"][0]
                            table = one
                    except ApiError:
                        row = None
                if row is None:
                    row = rows_by_key.get(key) or printing.fallback_table([event.object])["rows"][0]
                rows_by_key[key] = row
                emit_table({**table, "rows": [row]})
        except ApiError as e:
            if e.code in (410,) or e.reason in ("Expired", "Gone"):
                rv = ""  # too old: restart from the current state
                continue
            raise
        # The server ended the watch (timeoutSeconds): resume from the last seen version, like a reflector.


def _print_watched(obj: dict[str, Any], out: OutputFormat, info: ResourceInfo) -> None:
    if out.kind == "yaml":
        click.echo("---\n" + printing.dump_yaml(obj), nl=False)
    else:
        print_objects([obj], out, single=True, infos=[info])
    sys.stdout.flush()


COMMANDS = [get_cmd]
