"""`sluice load URL --rate R --duration D --concurrency C [--proxy URL | --via POD[.NS]] [-H 'k: v'] [-o json]`.

Sends HTTP load with `sluice.load` and prints a latency summary. `--via POD` sends "from" a pod, so a URL
such as `http://productpage:9080/productpage` is routed by that pod's sidecar like the pod's own traffic: in
netns mode the load generator runs inside the pod (over the exec stream) and its connections are captured
like the app's; in loopback mode the pod's IP comes from the API and its sidecar's outbound listener
(`http://<podIP>:15001`) becomes the proxy. A progress bar runs on a terminal's stderr; scripts (no TTY) see
only the summary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import sys
from typing import Any

import click

from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError
from sluice.client.errors import ApiError
from sluice.load import LoadConfig, LoadResult, TargetRefused, check_target, parse_duration, parse_header
from sluice.load.summary import format_ms, format_summary, summary_table
from sluice.mesh import NETNS_POD_NETWORK, PROXY_OUTBOUND_PORT, SIDECAR_CONTAINER

__all__ = ["COMMANDS", "proxy_for_pod", "split_pod_ref"]


def split_pod_ref(ref: str, default_namespace: str) -> tuple[str, str]:
    """`POD` or `POD.NS` → (pod, namespace)."""
    pod, dot, ns = ref.rpartition(".")
    if not dot:
        return ref, default_namespace
    if not pod or not ns:
        raise CliError(f"invalid --via {ref!r}: expected POD or POD.NAMESPACE")
    return pod, ns


def proxy_for_pod(pod: dict[str, Any]) -> str:
    """`http://<podIP>:15001` for a running pod with a sidecar, else a CliError that says what is missing."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    name = meta.get("name", "")
    containers = [c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)]
    statuses = [c.get("name") for c in status.get("containerStatuses") or [] if isinstance(c, dict)]
    if SIDECAR_CONTAINER not in containers and SIDECAR_CONTAINER not in statuses:
        raise CliError(f'pod "{name}" has no {SIDECAR_CONTAINER} sidecar to send through '
                       "(use --proxy, or a pod with sidecar injection)")
    ip = status.get("podIP")
    if not ip:
        raise CliError(f'pod "{name}" has no IP yet (phase {status.get("phase") or "Pending"})')
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{PROXY_OUTBOUND_PORT}"


def _lookup_pod(s: Session, ref: str) -> dict[str, Any]:
    """A pod by name, or else the first running pod of the app of that name (`--via sleep`)."""
    pod_name, ns = split_pod_ref(ref, s.namespace)
    info = s.client.resolve("pods")
    try:
        return s.client.get(info, pod_name, ns)
    except ApiError as e:
        if e.code != 404:
            raise
        pods = [p for p in s.client.list(info, ns, label_selector=f"app={pod_name}").get("items", [])
                if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")]
        if not pods:
            raise
        return dict(pods[0])


def _in_own_network(pod: dict[str, Any]) -> bool:
    """netns mode: the pod's IP is a pod-network address only its namespace and its peers can reach."""
    ip = str((pod.get("status") or {}).get("podIP") or "")
    try:
        return ipaddress.ip_address(ip) in NETNS_POD_NETWORK
    except ValueError:
        return False


def _load_inside(s: Session, pod: dict[str, Any], url: str, rate: float, duration: str, concurrency: int,
                 count: int | None, headers: tuple[str, ...], method: str, data: str, timeout: float,
                 output: str | None) -> None:
    from sluice.cli.execute import run_in_pod

    meta = pod["metadata"]
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []
                  if c.get("name") != SIDECAR_CONTAINER]
    if SIDECAR_CONTAINER not in [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]:
        raise CliError(f'pod "{meta.get("name")}" has no {SIDECAR_CONTAINER} sidecar to send through')
    if not containers:
        raise CliError(f'pod "{meta.get("name")}" has no application container to send from')
    argv = [sys.executable, "-m", "sluice.load", url, "--rate", str(rate or 0), "--duration", duration,
            "--concurrency", str(concurrency), "--method", method, "--timeout", str(timeout),
            "-o", output or "text"]
    if count is not None:
        argv += ["--requests", str(count)]
    if data:
        argv += ["--data", data]
    for h in headers:
        argv += ["-H", h]
    if output is None and sys.stderr.isatty():
        click.echo(f"sending load from inside pod {meta.get('name')} (its sidecar captures it)…", err=True)
    code, message = run_in_pod(s, str(meta.get("namespace")), str(meta.get("name")), containers[0], argv)
    if code:
        raise CliError(message or f"the load generator in the pod exited with code {code}")


async def _run(config: LoadConfig, show_progress: bool) -> LoadResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # Ctrl-C ends the run early and still prints the summary
    if not show_progress:
        from sluice.load.runner import run_load  # aiohttp loads only when `sluice load` runs

        return await run_load(config, stop=stop)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = config.duration if config.duration is not None else config.requests
    by_time = config.duration is not None
    progress = Progress(TextColumn("[bold]load[/]"), BarColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[stats]}"), console=Console(stderr=True), transient=True)

    def update(r: LoadResult) -> None:
        lat = r.latency
        stats = (f"{r.requests} req  {r.achieved_rps:.0f} rps  p50 {format_ms(lat.p50)}  "
                 f"p99 {format_ms(lat.p99)}  errors {r.error_count}")
        done = min(r.elapsed, config.duration) if by_time and config.duration else r.requests
        progress.update(task, completed=done, stats=stats)

    with progress:
        task = progress.add_task("load", total=total, stats="")
        from sluice.load.runner import run_load

        return await run_load(config, stop=stop, on_progress=update, progress_interval=0.25)


@click.command("load")
@click.argument("url")
@click.option("--rate", type=float, default=10.0, show_default=True,
              help="Requests per second (open loop); 0 sends as fast as the connections allow.")
@click.option("--duration", "-d", default="10s", show_default=True, help="How long to run (30s, 2m); 0 = until Ctrl-C.")
@click.option("--concurrency", "-c", type=int, default=4, show_default=True, help="Keep-alive connections.")
@click.option("--requests", "count", type=int, default=None, help="Stop after this many requests.")
@click.option("--proxy", default=None, help="Send through this HTTP proxy (absolute-form requests).")
@click.option("--via", default=None, metavar="POD[.NS]",
              help="Send from this pod, through its sidecar (http://<podIP>:15001).")
@click.option("-H", "--header", "headers", multiple=True, help="Extra header 'Name: value' (repeatable).")
@click.option("-X", "--method", default="GET", show_default=True, help="HTTP method.")
@click.option("--data", default="", help="Request body.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Per-request timeout in seconds.")
@click.option("-o", "--output", type=click.Choice(["json"]), default=None, help="Print the result as JSON.")
@global_options
def load_cmd(url: str, rate: float, duration: str, concurrency: int, count: int | None, proxy: str | None,
             via: str | None, headers: tuple[str, ...], method: str, data: str, timeout: float,
             output: str | None) -> None:
    """Send HTTP load to URL and print latency percentiles, status codes and errors.

    \b
    sluice load http://127.0.0.1/productpage --rate 50 --duration 30s
    sluice load http://reviews:9080/reviews/0 --via sleep -n tutorial -H 'end-user: jason'
    """
    if proxy and via:
        raise CliError("--proxy and --via are mutually exclusive")
    try:
        seconds = parse_duration(duration)
        parsed_headers = tuple(parse_header(h) for h in headers)
    except ValueError as e:
        raise CliError(str(e)) from None
    if via:
        s = session()
        pod = _lookup_pod(s, via)
        if _in_own_network(pod):
            _load_inside(s, pod, url, rate, duration, concurrency, count, headers, method, data, timeout, output)
            return
        proxy = proxy_for_pod(pod)
    try:
        config = LoadConfig(url=url, rate=rate or None, concurrency=concurrency, duration=seconds, requests=count,
                            proxy=proxy, headers=parsed_headers, method=method.upper(), body=data.encode(),
                            timeout=timeout)
        check_target(config.url, config.proxy)
    except (TargetRefused, ValueError) as e:
        raise CliError(str(e)) from None
    result = asyncio.run(_run(config, show_progress=sys.stderr.isatty() and output is None))
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(summary_table(result))
        if result.dropped:
            click.echo(f"{result.dropped} scheduled requests were not sent (all connections busy)")
    else:
        click.echo(format_summary(result))


COMMANDS = [load_cmd]
