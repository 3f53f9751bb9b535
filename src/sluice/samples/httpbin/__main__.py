"""`python -m sluice.samples.httpbin {go|kennethreitz} [ARGS...]`: the images' command lines.

* ``go`` takes go-httpbin's flags (`-port 8080`, `-host 0.0.0.0`, `-max-duration 10s`, as `-f v`, `-f=v` or
  `--f v`; `PORT`/`HOST` from the environment as go-httpbin reads them) and logs every request to stderr in
  its slog text form;
* ``kennethreitz`` takes gunicorn's (`-b`/`--bind HOST:PORT`, `--access-logfile -` for the access log on
  stdout, the rest such as `-k gevent` or `httpbin:app` ignored), default `0.0.0.0:80` as the image's CMD.

`SLUICE_BIND`, when the runtime sets it, is the address to listen on (the pod's contract); the port is the
program's own.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import sys
from collections.abc import Callable

from aiohttp import web

from sluice.samples.bookinfo.env import Listen
from sluice.samples.bookinfo.serving import serve
from sluice.samples.gotime import parse_duration
from sluice.samples.httpbin.app import MAX_DELAY_SECONDS, create_app

__all__ = ["main", "parse_go_args", "parse_gunicorn_args"]

AccessLog = Callable[[web.Request, web.StreamResponse, float], None]


class UsageError(Exception):
    pass


def _split_host_port(bind: str, default_port: int) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep:
        host, port = bind, str(default_port)
    host = host.strip("[]") or "0.0.0.0"
    try:
        return host, int(port)
    except ValueError:
        raise UsageError(f"invalid bind address {bind!r}: expected HOST:PORT") from None


def parse_go_args(args: list[str], env: dict[str, str]) -> tuple[str, int, float]:
    """(host, port, max delay) from go-httpbin's flags (its `flag` package rules) and PORT/HOST."""
    host, port, max_delay = "0.0.0.0", 8080, MAX_DELAY_SECONDS
    port_set = host_set = False
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            if arg == "--":
                break
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name == "use-real-hostname":
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i + 1]
            i += 1
        i += 1
        if name == "port":
            try:
                port, port_set = int(value), True
            except ValueError:
                raise UsageError(f'invalid value "{value}" for flag -port: parse error') from None
        elif name == "host":
            host, host_set = value, True
        elif name == "max-duration":
            parsed = parse_duration(value)
            if parsed is None:
                raise UsageError(f'invalid value "{value}" for flag -max-duration: parse error')
            max_delay = parsed
        elif name in ("max-body-size", "allowed-redirect-domains", "prefix", "https-cert-file", "https-key-file",
                      "exclude-headers", "log-format", "srv-max-header-bytes", "srv-read-header-timeout",
                      "srv-read-timeout"):
            pass  # accepted, not modelled
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
    if not port_set and env.get("PORT"):
        try:
            port = int(env["PORT"])
        except ValueError:
            raise UsageError(f'invalid value "{env["PORT"]}" for env var PORT: parse error') from None
    if not host_set and env.get("HOST"):
        host = env["HOST"]
    return host, port, max_delay


def parse_gunicorn_args(args: list[str]) -> tuple[str, int, bool]:
    """(host, port, access log on stdout) from a gunicorn command line (after `gunicorn`)."""
    host, port, access = "0.0.0.0", 80, False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("-b", "--bind", "--access-logfile"):
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"argument {name}: expected one argument")
                value = args[i + 1]
                i += 1
            if name == "--access-logfile":
                access = value == "-"
            else:
                host, port = _split_host_port(value, 8000)
        i += 1
    return host, port, access


def _gunicorn_log(request: web.Request, resp: web.StreamResponse, _elapsed: float) -> None:
    """gunicorn's default access log format: `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    when = datetime.datetime.now(datetime.UTC).strftime("[%d/%b/%Y:%H:%M:%S +0000]")
    line = f"{request.method} {request.raw_path} HTTP/{request.version.major}.{request.version.minor}"
    size = resp.body_length if resp.prepared else (resp.content_length or 0)
    sys.stdout.write(f'{peer[0] if peer else "-"} - - {when} "{line}" {resp.status} {size or "-"} '
                     f'"{request.headers.get("Referer", "-")}" "{request.headers.get("User-Agent", "-")}"\n')
    sys.stdout.flush()


def _go_log(request: web.Request, resp: web.StreamResponse, elapsed: float) -> None:
    """go-httpbin's StdLogObserver through slog's text handler (to stderr)."""
    level = "ERROR" if resp.status >= 500 else "WARN" if resp.status >= 400 else "INFO"
    peer = request.transport.get_extra_info("peername") if request.transport else None
    ms = elapsed * 1e3
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    size = resp.body_length if resp.prepared else (resp.content_length or 0)
    ua = request.headers.get("User-Agent", "")
    sys.stderr.write(f'time={when} level={level} msg="{resp.status} {request.method} {request.raw_path} {ms:.1f}ms" '
                     f"status={resp.status} method={request.method} uri={request.raw_path} size_bytes={size} "
                     f'duration_ms={ms:.3f} user_agent="{ua}" client_ip={peer[0] if peer else ""}\n')
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if not argv or argv[0] not in ("go", "kennethreitz"):
        sys.stderr.write("usage: python -m sluice.samples.httpbin {go|kennethreitz} [ARGS...]\n")
        return 2
    flavour, args = argv[0], argv[1:]
    env = dict(os.environ)
    access: AccessLog | None
    try:
        if flavour == "go":
            host, port, max_delay = parse_go_args(args, env)
            access = _go_log
        else:
            if args and args[0] == "gunicorn":
                args = args[1:]
            host, port, logged = parse_gunicorn_args(args)
            max_delay = MAX_DELAY_SECONDS
            access = _gunicorn_log if logged else None
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    listen = Listen(host=env.get("SLUICE_BIND") or host, port=port)
    app = create_app(flavour, max_delay=max_delay, access_log=access)

    def ready() -> None:
        if flavour == "go":
            sys.stderr.write(f'time={datetime.datetime.now(datetime.UTC).isoformat()} level=INFO '
                             f'msg="go-httpbin listening on http://{listen.host}:{listen.port}"\n')
        else:
            sys.stderr.write(f"[INFO] Listening at: http://{listen.host}:{listen.port}\n")
        sys.stderr.flush()

    try:
        asyncio.run(serve(app, listen, ready))
    except OSError as e:
        sys.stderr.write(f"error: cannot listen on {listen.host}:{listen.port}: {e.strerror or e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
