"""`sluice up|down|status|demo`: parse flags and hand over to the daemon and demo modules (imported lazily)."""

from __future__ import annotations

from pathlib import Path

import click

from sluice.cli.context import global_options, session
from sluice.paths import home_from_env

__all__ = ["COMMANDS", "home"]


def home() -> Path:
    return home_from_env()


@click.command("up")
@click.option("--foreground", is_flag=True, help="Stay attached instead of starting in the background.")
@click.option("--api-port", type=int, default=6443, show_default=True, help="Kubernetes API server (HTTPS) port.")
@click.option("--xds-port", type=int, default=15010, show_default=True, help="xDS (ADS) and access-log gRPC port.")
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="Prometheus query API port.")
@click.option("--console-port", type=int, default=20001, show_default=True, help="Web console port.")
@click.option("--relative-weights", is_flag=True,
              help="Treat route weights as relative (Istio >= 1.15) instead of requiring a sum of 100.")
def up_cmd(foreground: bool, api_port: int, xds_port: int, metrics_port: int, console_port: int,
           relative_weights: bool) -> int:
    """Start the control-plane daemon (in the background unless --foreground)."""
    from sluice.daemon import control  # imported here: the CLI must work before the daemon is installed

    options = control.DaemonOptions(api_port=api_port, xds_port=xds_port, metrics_port=metrics_port,
                                    console_port=console_port, relative_weights=relative_weights)
    return int(control.up(home(), foreground=foreground, options=options))


@click.command("down")
def down_cmd() -> int:
    """Stop the control-plane daemon."""
    from sluice.daemon import control

    return int(control.down(home()))


@click.command("status")
def status_cmd() -> int:
    """Say what runs where."""
    from sluice.daemon import control

    return int(control.status(home()))


@click.command("demo")
def demo_cmd() -> int:
    """Start the daemon and run the phased-rollout demo."""
    from sluice.cli import demo
    from sluice.cli.runner import run_group

    root = click.get_current_context().find_root().command
    assert isinstance(root, click.Group)
    return int(demo.run(home(), lambda args: run_group(root, args)))


@click.command("console")
@click.option("--open", "open_browser", is_flag=True, help="Also open the page in the default web browser.")
@click.option("--page", type=click.Choice(["overview", "graph", "workloads", "services", "istio", "rollouts"]),
              default="graph", show_default=True, help="Which page to point at.")
@click.argument("ns", metavar="[NAMESPACE]", required=False)
@global_options
def console_cmd(open_browser: bool, page: str, ns: str | None) -> int:
    """Print the web console's address with a one-time login token (`sluice console tutorial --open`, like
    `istioctl dashboard kiali`)."""
    from sluice.daemon import control
    from sluice.daemon.state import Home

    state = Home(home())
    if control.running_pid(state) is None:
        click.echo(f"error: sluice is not running (state in {state.root}); start it with `sluice up` or "
                   "`sluice demo`", err=True)
        return 1
    namespace = ns or session(click.get_current_context()).namespace_flag or "tutorial"
    url = control.console_login_url(state, f"/{page}?namespace={namespace}")
    click.echo(url)
    if "token=" not in url:
        click.echo(f"no console login token readable in {state.root / 'console'}: the console will ask for one "
                   "(the kubeconfig's token works too)", err=True)
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            click.echo("no web browser to open here; open the address above yourself", err=True)
    return 0


COMMANDS = [up_cmd, down_cmd, status_cmd, demo_cmd, console_cmd]
