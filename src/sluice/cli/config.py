"""`sluice config view|current-context`: show the kubeconfig the CLI uses, secrets redacted like kubectl."""

from __future__ import annotations

from typing import Any

import click

from sluice.cli import printing
from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError
from sluice.client.kubeconfig import redact

__all__ = ["COMMANDS", "minify_config"]


def minify_config(doc: dict[str, Any], context: str) -> dict[str, Any]:
    """Only the entries the given context uses (kubectl config view --minify)."""
    ctx = next((c for c in doc.get("contexts") or [] if c.get("name") == context), None)
    if ctx is None:
        raise CliError(f'cannot locate context {context}' if context else "current-context must exist in order to minify")
    inner = ctx.get("context") or {}
    out = dict(doc)
    out["contexts"] = [ctx]
    out["clusters"] = [c for c in doc.get("clusters") or [] if c.get("name") == inner.get("cluster")]
    out["users"] = [u for u in doc.get("users") or [] if u.get("name") == inner.get("user")]
    out["current-context"] = context
    return out


@click.group("config")
def config_cmd() -> None:
    """Inspect the kubeconfig (the one `sluice up` writes to $SLUICE_HOME/kubeconfig by default)."""


@config_cmd.command("view")
@click.option("--raw", is_flag=True, help="Display raw byte data and sensitive data.")
@click.option("--minify", is_flag=True, help="Only the information used by the current context.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@global_options
def config_view(raw: bool, minify: bool, output: str) -> None:
    """Display the merged kubeconfig settings."""
    s = session()
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [],
                           "current-context": "", **s.kubeconfig.doc}
    if not doc.get("preferences"):
        doc.pop("preferences", None)  # kubectl 1.35 omits an empty preferences map
    if minify:
        doc = minify_config(doc, s.context_flag or s.kubeconfig.current_context)
    if not raw:
        doc = redact(doc)
    if output == "json":
        click.echo(printing.dump_json(doc))
    else:
        click.echo(printing.dump_yaml(doc), nl=False)


@config_cmd.command("current-context")
@global_options
def config_current_context() -> None:
    """Display the current context."""
    s = session()
    name = s.kubeconfig.current_context
    if not name:
        raise CliError("current-context is not set")
    click.echo(name)


@config_cmd.command("get-contexts")
@global_options
def config_get_contexts() -> None:
    """List the contexts in the kubeconfig."""
    s = session()
    rows = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
    for c in s.kubeconfig.doc.get("contexts") or []:
        inner = c.get("context") or {}
        rows.append(["*" if c.get("name") == s.kubeconfig.current_context else "", str(c.get("name") or ""),
                     str(inner.get("cluster") or ""), str(inner.get("user") or ""), str(inner.get("namespace") or "")])
    click.echo("\n".join(printing.layout(rows)))


COMMANDS = [config_cmd]
