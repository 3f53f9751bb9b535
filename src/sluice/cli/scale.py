"""`sluice scale deployment/x --replicas=N`: a merge patch to the `/scale` subresource."""

from __future__ import annotations

import click

from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError
from sluice.cli.targets import parse_targets
from sluice.client.api import MERGE_PATCH

__all__ = ["COMMANDS"]


@click.command("scale")
@click.argument("args", nargs=-1, required=True)
@click.option("--replicas", type=int, required=True, help="The new desired number of replicas.")
@global_options
def scale_cmd(args: tuple[str, ...], replicas: int) -> None:
    """Set a new size for a Deployment (`sluice scale deployment reviews-v2 --replicas=3`)."""
    if replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    s = session()
    for t in parse_targets(s, args, require_name=True):
        if t.name is None:
            raise CliError("resource(s) were provided, but no name was specified")
        if t.info.subresources and "scale" not in t.info.subresources:
            raise CliError(f'no scaler has been implemented for {{"{t.info.group}" "{t.info.kind}"}}')
        ns = s.namespace if t.info.namespaced else None
        s.client.patch(t.info, t.name, ns, {"spec": {"replicas": replicas}}, content_type=MERGE_PATCH,
                       subresource="scale", field_validation=None)
        click.echo(f"{t.info.kind_qualified}/{t.name} scaled")


COMMANDS = [scale_cmd]
