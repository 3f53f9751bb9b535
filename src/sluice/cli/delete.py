"""`sluice delete`: by name, `-f`, `-l` or `--all`, then wait (watching) until the objects are gone."""

from __future__ import annotations

import time
from dataclasses import dataclass

import click

from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.manifests import read_sources
from sluice.cli.progress import waiting
from sluice.cli.targets import manifest_namespace, parse_targets
from sluice.client.discovery import ResourceInfo
from sluice.client.errors import ApiError, ClientError

__all__ = ["COMMANDS", "parse_duration", "wait_deleted"]


def parse_duration(value: str) -> float:
    """Go-style durations as kubectl's --timeout takes them: `30s`, `5m`, `1h30m`, `0` (= no limit)."""
    v = value.strip()
    if v in ("", "0"):
        return 0.0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, num = 0.0, ""
    i = 0
    while i < len(v):
        c = v[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if v.startswith("ms", i) else c
        if unit not in units or not num:
            raise CliError(f'invalid duration "{value}"')
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        try:
            total += float(num)  # a bare number means seconds
        except ValueError:
            raise CliError(f'invalid duration "{value}"') from None
    return total


@dataclass(frozen=True)
class _Deleted:
    info: ResourceInfo
    name: str
    namespace: str | None
    uid: str


def wait_deleted(s: Session, d: _Deleted, deadline: float | None) -> bool:
    """Block until the object is gone (404 or a new uid); uses a field-selected watch like kubectl's IsDeleted."""
    while True:
        try:
            current = s.client.get(d.info, d.name, d.namespace)
        except ApiError as e:
            if e.not_found:
                return True
            if e.code in (403, 405):
                return True  # kubectl ignores Forbidden/MethodNotSupported while waiting
            raise
        meta = current.get("metadata") or {}
        if d.uid and meta.get("uid") and meta.get("uid") != d.uid:
            return True
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        timeout = 60 if remaining is None else max(1, min(60, int(remaining) + 1))
        try:
            for event in s.client.watch(d.info, d.namespace, field_selector=f"metadata.name={d.name}",
                                        resource_version=str(meta.get("resourceVersion") or "") or None,
                                        timeout_seconds=timeout):
                if event.type == "DELETED":
                    return True
                if deadline is not None and time.monotonic() > deadline:
                    return False
        except ApiError as e:
            if e.code != 410 and e.reason not in ("Expired", "Gone"):
                raise
        # The watch ended (timeout or expired version): re-check with a GET.


@click.command("delete")
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True, help="File, directory, URL or - with the objects to delete.")
@click.option("-R", "--recursive", is_flag=True, help="Process the directory used in -f recursively.")
@click.option("-l", "--selector", help="Label selector of the objects to delete.")
@click.option("--all", "all_", is_flag=True, help="Delete all resources of the type in the namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="With -l/--all: across all namespaces.")
@click.option("--ignore-not-found", is_flag=True, help="Treat 'resource not found' as a successful delete.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the objects to be gone.")
@click.option("--timeout", default="0s", help="How long to wait for the deletion (0: no limit).")
@click.option("--cascade", type=click.Choice(["background", "foreground", "orphan"]), default="background",
              show_default=True, help="How dependents are deleted.")
@click.option("--grace-period", type=int, default=-1, help="Seconds given to the resource to terminate.")
@click.option("--now", is_flag=True, help="Same as --grace-period=1.")
@click.option("-o", "--output", type=click.Choice(["name"]), help="Output format: name.")
@global_options
def delete_cmd(args: tuple[str, ...], filenames: tuple[str, ...], recursive: bool, selector: str | None, all_: bool,
               all_namespaces: bool, ignore_not_found: bool, wait: bool, timeout: str, cascade: str,
               grace_period: int, now: bool, output: str | None) -> None:
    """Delete resources by name, file, label selector or --all (`sluice delete deployment reviews-v2`)."""
    s = session()
    limit = parse_duration(timeout)
    items: list[tuple[ResourceInfo, str, str | None, str]] = []  # (info, name, namespace, source)
    if filenames:
        if args:
            raise CliError("when -f is given, no resource arguments are accepted")
        for m in read_sources(filenames, recursive=recursive):
            try:
                info = s.client.discovery.for_kind(str(m.obj.get("apiVersion")), str(m.obj.get("kind")))
            except ClientError as e:
                raise CliError(f'resource mapping not found from "{m.source}": {e}') from None
            items.append((info, str((m.obj.get("metadata") or {}).get("name") or ""),
                          manifest_namespace(s, info, dict(m.obj)), m.source))
    else:
        if not args:
            raise CliError("You must provide one or more resources by argument or filename.\nExample resource "
                           "specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   "
                           "'<resource> <name>'\n   '<resource>'")
        targets = parse_targets(s, args)
        for t in targets:
            if t.name is not None:
                items.append((t.info, t.name, s.namespace if t.info.namespaced else None, ""))
                continue
            if not (selector or all_):
                raise CliError("resource(s) were provided, but no name was specified")
            ns = None if all_namespaces or not t.info.namespaced else s.namespace
            listed = s.client.list(t.info, ns, label_selector=selector)
            for o in listed.get("items") or []:
                meta = o.get("metadata") or {}
                items.append((t.info, str(meta.get("name")), meta.get("namespace") if t.info.namespaced else None, ""))
        if not items:
            ns_text = "" if all_namespaces else f" in {s.namespace} namespace"
            click.echo(f"No resources found{ns_text}.", err=True)
            return
    policy = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}[cascade]
    grace = 1 if now else (grace_period if grace_period >= 0 else None)
    errors: list[str] = []
    deleted: list[_Deleted] = []
    for info, name, ns, source in items:
        try:
            result = s.client.delete(info, name, ns, propagation_policy=policy, grace_period=grace)
        except ApiError as e:
            if e.not_found and ignore_not_found:
                continue
            errors.append(format_api_error(e, source=source or None, action="deleting"))
            continue
        uid = str((result.get("details") or {}).get("uid") or (result.get("metadata") or {}).get("uid") or "")
        if output == "name":
            click.echo(f"{info.kind_qualified}/{name}")
        else:
            click.echo(f'{info.kind_qualified} "{name}" deleted')
        deleted.append(_Deleted(info, name, ns, uid))
    if wait:
        deadline = time.monotonic() + limit if limit > 0 else None
        for d in deleted:
            with waiting(f"waiting for {d.info.kind_qualified}/{d.name} to be deleted"):
                gone = wait_deleted(s, d, deadline)
            if not gone:
                errors.append(f'error: timed out waiting for the condition on {d.info.qualified}/{d.name}')
                break
    if errors:
        raise CliError("\n".join(errors), raw=True)


COMMANDS = [delete_cmd]
