"""`sluice create namespace NAME` and `sluice create -f FILE` (plain POSTs, no last-applied annotation)."""

from __future__ import annotations

import click

from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError, format_api_error
from sluice.cli.manifests import read_sources
from sluice.cli.targets import manifest_namespace
from sluice.client.errors import ApiError, ClientError

__all__ = ["COMMANDS"]

FIELD_MANAGER = "kubectl-create"


@click.group("create", invoke_without_command=True)
@click.option("-f", "--filename", "filenames", multiple=True, help="Files with the objects to create.")
@click.option("-R", "--recursive", is_flag=True, help="Process the directory used in -f recursively.")
@global_options
@click.pass_context
def create_cmd(ctx: click.Context, filenames: tuple[str, ...], recursive: bool) -> None:
    """Create a resource from a file or stdin, or a namespace (`sluice create namespace tutorial`)."""
    if ctx.invoked_subcommand is not None:
        return
    if not filenames:
        raise CliError("must specify one of -f and -k")
    s = session()
    errors: list[str] = []
    for m in read_sources(filenames, recursive=recursive):
        try:
            info = s.client.discovery.for_kind(str(m.obj.get("apiVersion")), str(m.obj.get("kind")))
        except ClientError as e:
            errors.append(f'error: resource mapping not found from "{m.source}": {e}')
            continue
        obj = dict(m.obj)
        ns = manifest_namespace(s, info, obj)
        try:
            s.client.create(info, ns, obj, field_manager=FIELD_MANAGER)
        except ApiError as e:
            errors.append(format_api_error(e, source=m.source, action="creating"))
            continue
        click.echo(f"{info.kind_qualified}/{obj['metadata']['name']} created")
    if errors:
        raise CliError("\n".join(errors), raw=True)


@create_cmd.command("namespace")
@click.argument("name")
@global_options
def create_namespace(name: str) -> None:
    """Create a namespace with the given name."""
    s = session()
    info = s.client.resolve("namespaces")
    s.client.create(info, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    field_manager=FIELD_MANAGER)
    click.echo(f"namespace/{name} created")


create_cmd.add_command(create_namespace, "ns")

COMMANDS = [create_cmd]
