"""The `sluice` console script: the click group, global flags and kubectl-style error reporting."""

from __future__ import annotations

import sys

import click

from sluice.cli import (
    analyze,
    apply,
    config,
    create,
    daemon,
    delete,
    describe,
    edit,
    execute,
    get,
    label,
    load,
    logs,
    portforward,
    proxy,
    query,
    rollouts,
    scale,
)
from sluice.cli.context import global_options
from sluice.cli.runner import normalise_bool_flags, run_group

__all__ = ["cli", "main", "run", "normalise_bool_flags"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT_SETTINGS)
@global_options
def cli() -> None:
    """sluice controls the Sluice service mesh: kubectl's verbs against the Sluice API server, plus the daemon."""


for _module in (apply, get, describe, edit, delete, create, label, scale, logs, execute, portforward, config, analyze,
                daemon, load, proxy, query, rollouts):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def run(args: list[str] | None = None, prog_name: str = "sluice") -> int:
    """Run the CLI and return the exit code; every failure becomes a kubectl-style message, never a traceback."""
    return run_group(cli, args, prog_name)


def main() -> None:
    sys.exit(run())
