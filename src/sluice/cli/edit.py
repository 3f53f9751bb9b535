"""`sluice edit`: kubectl's edit loop (editor, 2-way merge patch, re-open with the server's errors on a 422)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

import click
import yaml

from sluice.cli import printing
from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError, format_api_error, invalid_causes
from sluice.cli.targets import parse_targets
from sluice.client.api import MERGE_PATCH
from sluice.client.discovery import ResourceInfo
from sluice.client.errors import ApiError

__all__ = ["COMMANDS", "HEADER", "FIELD_MANAGER", "editor_command", "strip_comments", "error_header"]

FIELD_MANAGER = "kubectl-edit"
HEADER = (
    "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
    "# and an empty file will abort the edit. If an error occurs while saving this file will be\n"
    "# reopened with the relevant failures.\n"
    "#\n"
)


def editor_command() -> str:
    """`$KUBE_EDITOR`, then `$EDITOR`, then `vi` — run through a shell so arguments inside the variable work."""
    for var in ("KUBE_EDITOR", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return "vi"


def strip_comments(text: str) -> str:
    """Drop the lines kubectl ignores (those starting with `#`)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def error_header(info: ResourceInfo, name: str, reasons: list[str]) -> str:
    lines = [f'# {info.qualified} "{name}" was not valid:'] + [f"# * {r}" for r in reasons] + ["#"]
    return "\n".join(lines) + "\n"


def _run_editor(path: str) -> None:
    editor = editor_command()
    # kubectl runs `$SHELL -c "<editor> <file>"` so KUBE_EDITOR="sed -i s/a/b/" works as written.
    rc = subprocess.call(["/bin/sh", "-c", f"{editor} {path}"])
    if rc != 0:
        raise CliError(f'there was a problem with the editor "{editor}"')


def _preserve(text: str) -> str:
    fd, path = tempfile.mkstemp(prefix="sluice-edit-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@click.command("edit")
@click.argument("args", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="Format of the file handed to the editor.")
@click.option("--validate", default="strict", show_default=True,
              help="strict (or true), warn, or ignore (or false): how the server treats unknown fields.")
@global_options
def edit_cmd(args: tuple[str, ...], output: str, validate: str) -> None:
    """Edit a resource on the server with $KUBE_EDITOR / $EDITOR / vi (`sluice edit vs reviews`)."""
    from sluice.api.patch import PatchError, two_way_merge_patch
    from sluice.cli.apply import validation_mode

    s = session()
    mode = validation_mode(validate)
    targets = parse_targets(s, args, require_name=True)
    if len(targets) != 1 or targets[0].name is None:
        raise CliError("edit takes exactly one resource")
    info, name = targets[0].info, targets[0].name
    ns = s.namespace if info.namespaced else None
    original = s.client.get(info, name, ns)
    original_text = printing.dump_yaml(original) if output == "yaml" else printing.dump_json(original) + "\n"

    fd, path = tempfile.mkstemp(prefix="sluice-edit-", suffix=f".{output}")
    os.close(fd)
    written = HEADER + original_text
    had_error = False
    try:
        while True:
            with open(path, "w") as f:
                f.write(written)
            _run_editor(path)
            with open(path) as f:
                edited = f.read()
            if had_error and strip_comments(edited) == strip_comments(written):
                # The user saved the file unchanged after an error: give up, keeping their work.
                kept = _preserve(edited)
                click.echo(f'A copy of your changes has been stored to "{kept}"', err=True)
                raise CliError("Edit cancelled, no valid changes were saved.")
            body = strip_comments(edited)
            if not body.strip():
                click.echo("Edit cancelled, saved file was empty.", err=True)
                return
            if body == strip_comments(original_text):
                click.echo("Edit cancelled, no changes made.", err=True)
                return
            try:
                edited_obj: Any = yaml.safe_load(body)
            except yaml.YAMLError as e:
                had_error = True
                written = HEADER + f"# The edited file had a syntax error: {_one_line(str(e))}\n#\n" + body
                continue
            if not isinstance(edited_obj, dict):
                had_error = True
                written = HEADER + "# The edited file had a syntax error: expected a YAML object\n#\n" + body
                continue
            try:
                patch = two_way_merge_patch(original, edited_obj)
            except PatchError as e:
                raise CliError(str(e)) from None
            if not patch:
                click.echo("Edit cancelled, no changes made.", err=True)
                return
            if any(k in patch for k in ("apiVersion", "kind")) or "name" in (patch.get("metadata") or {}):
                had_error = True
                written = HEADER + "# * apiVersion, kind and name cannot be changed\n#\n" + body
                continue
            try:
                s.client.patch(info, name, ns, patch, content_type=MERGE_PATCH, field_manager=FIELD_MANAGER,
                               field_validation=mode)
            except ApiError as e:
                if e.code == 422 or e.reason == "Invalid":
                    click.echo(f'error: {info.qualified} "{name}" is invalid', err=True)
                    if had_error:
                        # The second pass failed too: stop (a scripted editor would loop forever).
                        kept = _preserve(error_header(info, name, invalid_causes(e) or [e.message]) + body)
                        click.echo(f'A copy of your changes has been stored to "{kept}"', err=True)
                        raise CliError("Edit cancelled, no valid changes were saved.") from None
                    reasons = invalid_causes(e) or [e.message]
                    had_error = True
                    written = HEADER + error_header(info, name, reasons) + body
                    continue
                kept = _preserve(edited)
                if e.not_found:
                    raise CliError(f'{info.qualified} "{name}" could not be found on the server\n'
                                   f'A copy of your changes has been stored to "{kept}"') from None
                raise CliError(f'{info.qualified} "{name}" could not be patched: {format_api_error(e)}\n'
                               f'A copy of your changes has been stored to "{kept}"') from None
            click.echo(f"{info.kind_qualified}/{name} edited")
            return
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _one_line(text: str) -> str:
    return " ".join(text.split())


COMMANDS = [edit_cmd]
