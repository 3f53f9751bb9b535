"""`sluice label TYPE NAME k=v k-`: add, change (`--overwrite`) or remove labels with a merge patch."""

from __future__ import annotations

import re

import click

from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.targets import Target, parse_targets
from sluice.client.api import MERGE_PATCH
from sluice.client.errors import ApiError

__all__ = ["COMMANDS", "parse_label_changes"]

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def parse_label_changes(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split `k=v` (set) and `k-` (remove) arguments, validating keys and values like kubectl."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for a in args:
        if "=" in a:
            k, _, v = a.partition("=")
            if not _KEY.match(k) or len(k.rpartition("/")[2]) > 63:
                raise CliError(f'invalid label spec: {a}')
            if not _VALUE.match(v) or len(v) > 63:
                raise CliError(f'invalid label value: "{a}": a valid label must be an empty string or consist of '
                               "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                               "alphanumeric character")
            sets[k] = v
        elif a.endswith("-"):
            removes.append(a[:-1])
        else:
            raise CliError(f"invalid label spec: {a}")
    both = set(sets) & set(removes)
    if both:
        raise CliError(f"can not both modify and remove a label in the same command: {sorted(both)[0]}")
    return sets, removes


@click.command("label")
@click.argument("args", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True, help="Allow labels to be overwritten.")
@click.option("-l", "--selector", help="Label selector of the objects to label.")
@click.option("--all", "all_", is_flag=True, help="Label every object of the type in the namespace.")
@global_options
def label_cmd(args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool) -> None:
    """Update the labels on a resource (`sluice label deploy reviews-v3 track=canary`, `… track-`)."""
    s = session()
    resource_args = [a for a in args if "=" not in a and not (a.endswith("-") and a != "-")]
    changes = [a for a in args if a not in resource_args]
    if not changes:
        raise CliError("at least one label update is required")
    sets, removes = parse_label_changes(changes)
    targets: list[Target] = parse_targets(s, resource_args)
    expanded: list[Target] = []
    for t in targets:
        if t.name is not None:
            expanded.append(t)
        elif selector or all_:
            listed = s.client.list(t.info, s.namespace if t.info.namespaced else None, label_selector=selector)
            expanded.extend(Target(t.info, str((o.get("metadata") or {}).get("name"))) for o in listed.get("items") or [])
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    errors: list[str] = []
    for t in expanded:
        assert t.name is not None
        ns = s.namespace if t.info.namespaced else None
        try:
            current = s.client.get(t.info, t.name, ns)
        except ApiError as e:
            errors.append(format_api_error(e))
            continue
        labels = (current.get("metadata") or {}).get("labels") or {}
        patch_labels: dict[str, str | None] = {}
        for k, v in sets.items():
            if k in labels and labels[k] != v and not overwrite:
                errors.append(f"error: '{k}' already has a value ({labels[k]}), and --overwrite is false")
                patch_labels = {}
                break
            if labels.get(k) != v:
                patch_labels[k] = v
        else:
            for k in removes:
                if k in labels:
                    patch_labels[k] = None
            prefix = f"{t.info.kind_qualified}/{t.name}"
            if not patch_labels:
                click.echo(f"{prefix} not labeled")
                continue
            try:
                s.client.patch(t.info, t.name, ns, {"metadata": {"labels": patch_labels}}, content_type=MERGE_PATCH)
            except ApiError as e:
                errors.append(format_api_error(e))
                continue
            click.echo(f"{prefix} {'unlabeled' if all(v is None for v in patch_labels.values()) else 'labeled'}")
    if errors:
        raise CliError("\n".join(errors), raw=True)


COMMANDS = [label_cmd]
