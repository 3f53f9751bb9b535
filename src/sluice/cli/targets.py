"""Parsing kubectl's resource arguments (`vs reviews`, `vs/reviews`, `vs,dr`) and picking namespaces for manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.cli.context import Session
from sluice.cli.errors import CliError
from sluice.client.discovery import ResourceInfo

__all__ = ["Target", "parse_targets", "manifest_namespace"]


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    name: str | None  # None: every object of the type


def parse_targets(s: Session, args: tuple[str, ...] | list[str], *, require_name: bool = False) -> list[Target]:
    """`TYPE [NAME…]`, `TYPE/NAME [TYPE/NAME…]`, or `TYPE1,TYPE2` (all objects of several types)."""
    if not args:
        raise CliError("you must specify the type of resource to get. Use \"sluice api-resources\" for a complete list "
                       "of supported resources.")
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise CliError("there is no need to specify a resource type as a separate argument when passing "
                           "arguments in resource/name form (e.g. 'sluice get resource/<resource_name>' instead of "
                           "'sluice get resource resource/<resource_name>'")
        out = []
        for a in args:
            type_, _, name = a.partition("/")
            if not name:
                raise CliError(f"arguments in resource/name form must have a single resource and name: {a!r}")
            out.append(Target(s.client.resolve(type_), name))
        return out
    types = [t for t in args[0].split(",") if t]
    names = list(args[1:])
    if require_name and not names:
        raise CliError("resource(s) were provided, but no name was specified")
    infos: list[ResourceInfo] = []
    for t in types:
        expanded = s.client.discovery.category(t) if not names else []
        for info in expanded or [s.client.resolve(t)]:
            if info not in infos:
                infos.append(info)
    if names:
        return [Target(i, n) for i in infos for n in names]
    return [Target(i, None) for i in infos]


def manifest_namespace(s: Session, info: ResourceInfo, obj: dict[str, Any]) -> str | None:
    """The namespace an object from a file goes to; sets `metadata.namespace` like kubectl's builder does."""
    if not info.namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise CliError("metadata must be an object")
    own = meta.get("namespace")
    if own and s.namespace_explicit and own != s.namespace_flag:
        raise CliError(
            f'the namespace from the provided object "{own}" does not match the namespace "{s.namespace_flag}". '
            f"You must pass '--namespace={own}' to perform this operation."
        )
    ns = str(own or s.namespace)
    meta["namespace"] = ns
    return ns
