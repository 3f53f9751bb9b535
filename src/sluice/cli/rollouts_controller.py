"""`sluice rollouts controller`: the Argo Rollouts controller of `sluice.rollouts` in the foreground, against any
cluster a kubeconfig reaches and any Prometheus HTTP API (the daemon runs the same controller by default)."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError
from sluice.client.errors import ClientError
from sluice.client.kubeconfig import load_kubeconfig
from sluice.rollouts.controller import Controller
from sluice.rollouts.metrics_server import DEFAULT_PORT, MetricsServer

__all__ = ["controller"]


@click.command("controller")
@click.option("--prometheus-url", default="", help="Prometheus HTTP API the analysis queries by default.")
@click.option("--resync", type=float, default=30.0, show_default=True, help="Seconds between full passes.")
@click.option("--metricsport", "metrics_port", type=int, default=DEFAULT_PORT, show_default=True,
              help="Serve Argo's controller metrics at 127.0.0.1:PORT/metrics (0: not at all).")
@click.option("-v", "--verbose", is_flag=True, help="Log every pass.")
@global_options
def controller(prometheus_url: str, resync: float, metrics_port: int, verbose: bool) -> None:
    """Run the rollouts controller until interrupted (SIGINT/SIGTERM)."""
    s = session()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # fail now on a bad kubeconfig rather than retrying forever
        load_kubeconfig(s.kubeconfig_flag).rest_config(s.context_flag)
    except ClientError as e:
        raise CliError(str(e)) from None
    c = Controller.for_daemon(s.kubeconfig_flag, prometheus_url, s.context_flag)
    c.resync = resync

    def stop(_sig: int, _frame: FrameType | None) -> None:
        c.stop.set()
        c.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = None
    if metrics_port:
        try:
            server = MetricsServer(metrics_port, c.metric_families)
        except OSError as e:
            raise CliError(f"cannot listen on 127.0.0.1:{metrics_port} for the metrics: {e.strerror or e}") from None
        server.serve_in_thread()
        click.echo(f"metrics at http://127.0.0.1:{server.server_address[1]}/metrics", err=True)
    click.echo("rollouts controller started", err=True)
    try:
        c.run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()

