"""`sluice rollouts …`: Argo Rollouts on Sluice. Here only `controller` (cli/rollouts_controller.py); when merged
with the branch that has the other verbs, its group gets `add_command(rollouts_controller.controller)`."""

from __future__ import annotations

import click

from sluice.cli import rollouts_controller

__all__ = ["COMMANDS"]


@click.group("rollouts")
def rollouts_group() -> None:
    """Argo Rollouts (argoproj.io/v1alpha1) on Sluice."""


rollouts_group.add_command(rollouts_controller.controller)

COMMANDS = [rollouts_group]
