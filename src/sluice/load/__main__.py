"""`python -m sluice.load URL --rate R --concurrency C [--proxy P] [--duration D]`: a load run as a process.

Prints the summary at the end (or JSON with `-o json`). With `--duration 0` it runs until SIGTERM/SIGINT —
the demo's steady traffic generator — and prints a progress line to stderr every `--report-every` seconds.
Exit status: 0 after a run, 2 for bad arguments or a refused target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from sluice.load.model import LoadConfig, LoadResult
from sluice.load.runner import run_load
from sluice.load.summary import format_progress, format_summary
from sluice.load.targets import TargetRefused, check_target, in_sluice_pod, parse_duration, parse_header

__all__ = ["main", "parse_args", "proxy_from_env"]


def proxy_from_env(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The proxy a process in a pod would use for `url`: `http_proxy`/`HTTP_PROXY`, unless `no_proxy` matches."""
    env = os.environ if env is None else env
    proxy = env.get("http_proxy") or env.get("HTTP_PROXY")
    if not proxy:
        return None
    host = (urlsplit(url).hostname or "").lower()
    for entry in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return proxy


def parse_args(argv: list[str]) -> tuple[LoadConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m sluice.load", description="Send HTTP load to a local target.")
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second; 0 = as fast as possible")
    p.add_argument("-c", "--concurrency", type=int, default=4, help="connections (keep-alive)")
    p.add_argument("-d", "--duration", default="10s", help="e.g. 30s, 2m; 0 = until SIGTERM")
    p.add_argument("-n", "--requests", type=int, default=None, help="stop after this many requests")
    p.add_argument("--proxy", default=None,
                   help="HTTP proxy, e.g. a pod's sidecar http://<podIP>:15001 (default: $http_proxy/$HTTP_PROXY "
                        "unless $no_proxy covers the target, so that inside a pod traffic leaves via its sidecar)")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    p.add_argument("-X", "--method", default="GET")
    p.add_argument("--data", default="", help="request body")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    p.add_argument("--report-every", type=float, default=None,
                   help="progress line interval in seconds (default: 10 when running until stopped, else none)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = p.parse_args(argv)
    try:
        duration = parse_duration(args.duration)
        headers = tuple(parse_header(h) for h in args.header)
        proxy = args.proxy if args.proxy is not None else proxy_from_env(args.url)
        config = LoadConfig(url=args.url, rate=args.rate or None, concurrency=args.concurrency, duration=duration,
                            requests=args.requests, proxy=proxy or None, headers=headers, method=args.method.upper(),
                            body=args.data.encode(), timeout=args.timeout)
        check_target(config.url, config.proxy, contained=in_sluice_pod(os.environ))
    except ValueError as e:  # TargetRefused is a ValueError
        p.error(str(e))
    return config, args


async def _run(config: LoadConfig, report_every: float | None) -> LoadResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def progress(r: LoadResult) -> None:
        print(format_progress(r), file=sys.stderr, flush=True)

    if report_every:
        return await run_load(config, stop=stop, on_progress=progress, progress_interval=report_every)
    return await run_load(config, stop=stop)


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(sys.argv[1:] if argv is None else argv)
    forever = config.duration is None and config.requests is None
    report_every = args.report_every if args.report_every is not None else (10.0 if forever else None)
    try:
        result = asyncio.run(_run(config, report_every))
    except TargetRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_summary(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
