"""fortio's command line: `fortio COMMAND [flags] [target]` (the flags: `sluice.samples.fortio.flags`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, BinaryIO, TextIO

from sluice.load.__main__ import proxy_from_env
from sluice.samples.fortio import VERSION
from sluice.samples.fortio.client import FastClient, parse_target
from sluice.samples.fortio.flags import COMMANDS, SUPPORTED, Flags, UsageError, parse
from sluice.samples.fortio.log import ERROR, INFO, Logger, parse_level
from sluice.samples.fortio.stats import parse_percentiles

__all__ = ["Flags", "parse", "main", "UsageError"]

def _headers(flags: Flags) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw in flags.multi.get("H", []):
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise UsageError(f'invalid extra header "{raw}", expecting Key: Value')
        out.append((name.strip(), value.strip()))
    if flags.values.get("content-type"):
        out.append(("Content-Type", flags.values["content-type"]))
    return out


def _payload(flags: Flags) -> bytes | None:
    size = flags.integer("payload-size", 0)
    if size > 0:
        return bytes(ord("a") + i % 26 for i in range(min(size, 256 * 1024)))
    if "payload-file" in flags.values:
        try:
            with open(flags.values["payload-file"], "rb") as f:
                return f.read(16 * 1024 * 1024)
        except OSError as e:
            raise UsageError(f"Unable to read payload file {flags.values['payload-file']}: {e.strerror}") from None
    if "payload" in flags.values:
        return flags.values["payload"].encode()
    if flags.values.get("content-type"):
        return b""
    return None


def _logger(flags: Flags, err: TextIO, client_tool: bool) -> Logger:
    log = Logger(err, INFO)
    if client_tool and err.isatty():
        log.json = False
    if flags.boolean("quiet"):
        log.level = ERROR
    if "loglevel" in flags.values:
        try:
            log.set_level(parse_level(flags.values["loglevel"]))
        except ValueError as e:
            raise UsageError(str(e)) from None
    return log


async def _curl(flags: Flags, out: TextIO, err: TextIO) -> int:
    log = _logger(flags, err, client_tool=True)
    if len(flags.args) != 1:
        raise UsageError("Error: fortio load/curl needs a URL or destination")
    try:
        target = parse_target(flags.args[0])
    except ValueError as e:
        log.log(ERROR, "Bad url", url=flags.args[0], err=str(e))
        return 1
    client = FastClient(target, _headers(flags), _payload(flags), flags.get("X", ""),
                        flags.duration("timeout", 3.0), keepalive=flags.boolean("keepalive", True), keep_data=True,
                        proxy=proxy_from_env(target.url))
    fetched = await client.fetch()
    await client.close()
    if fetched.code == -1:
        log.log(ERROR, "Unable to connect", dest=f"{target.host}:{target.port}")
        return 1
    head, body = fetched.data[:fetched.header_size], fetched.data[fetched.header_size:]
    stream_out: BinaryIO | None = getattr(out, "buffer", None)
    stream_err: BinaryIO | None = getattr(err, "buffer", None)
    if flags.boolean("curl-stdout-headers"):
        _write(out, stream_out, head + body)
    else:
        _write(err, stream_err, head)
        _write(out, stream_out, body)
    if fetched.code != 200:
        log.log(ERROR, f"Error status {fetched.code}")
        return 1
    return 0


def _write(text: TextIO, binary: BinaryIO | None, data: bytes) -> None:
    if binary is not None:
        text.flush()
        binary.write(data)
        binary.flush()
    else:
        text.write(data.decode("utf-8", "replace"))
        text.flush()


async def _load(flags: Flags, out: TextIO, err: TextIO) -> int:
    from sluice.samples.fortio.load import LoadOptions, run_load

    log = _logger(flags, err, client_tool=False)
    if flags.boolean("grpc") or flags.boolean("curl"):
        if flags.boolean("curl"):
            return await _curl(flags, out, err)
        raise UsageError("gRPC load (-grpc) is not supported by sluice's built-in fortio; use HTTP URLs")
    if len(flags.args) != 1:
        raise UsageError("Error: fortio load/curl needs a URL or destination")
    url = flags.args[0]
    if url.startswith(("tcp://", "udp://")):
        raise UsageError(f"{url.split(':', 1)[0]} load tests are not supported by sluice's built-in fortio")
    try:
        target = parse_target(url)
    except ValueError as e:
        err.write(f"Aborting because of {e}\n")
        return 1
    try:
        percentiles = parse_percentiles(flags.get("p", "50,75,90,99,99.9"))
    except ValueError as e:
        raise UsageError(f"Unable to extract percentiles from -p: {e}") from None
    opts = LoadOptions(
        target=target, qps=flags.number("qps", 8.0), threads=flags.integer("c", 4),
        duration=flags.duration("t", 5.0), exactly=flags.integer("n", 0), percentiles=percentiles,
        resolution=flags.number("r", 0.001), headers=_headers(flags), payload=_payload(flags),
        method=flags.get("X", ""), timeout=flags.duration("timeout", 3.0), keepalive=flags.boolean("keepalive", True),
        allow_initial_errors=flags.boolean("allow-initial-errors"), abort_on=flags.integer("abort-on", 0),
        log_errors=flags.boolean("log-errors", True), uniform=flags.boolean("uniform"), jitter=flags.boolean("jitter"),
        nocatchup=flags.boolean("nocatchup"), proxy=proxy_from_env(target.url))
    if opts.threads < 1:
        raise UsageError(f"invalid value {opts.threads} for -c: need at least 1 connection")
    if opts.exactly > 10_000_000 or opts.threads > 10_000:
        raise UsageError("-n above 10000000 or -c above 10000 is more than sluice's built-in fortio runs")
    if opts.resolution <= 0:
        opts.resolution = 0.001
    return await run_load(opts, err, log, run_id=flags.integer("runid", 0))


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out, err = out or sys.stdout, err or sys.stderr
    try:
        flags = parse(argv)
        if flags.command in ("version",):
            out.write(f"{VERSION}\n")
            return 0
        if flags.command == "buildinfo":
            out.write(f"{VERSION}  sluice built-in (Python)\npath\tfortio.org/fortio\n")
            return 0
        if flags.command in ("help",) or flags.boolean("h") or flags.boolean("help"):
            out.write(f"Φορτίο {VERSION} usage:\n\tfortio command [flags] target\n"
                      f"where command is one of: {', '.join(SUPPORTED)} (sluice's built-in fortio)\n")
            return 0
        runners: dict[str, Callable[[Flags, TextIO, TextIO], Coroutine[Any, Any, int]]] = {
            "load": _load, "curl": _curl}
        if flags.command in runners:
            return asyncio.run(runners[flags.command](flags, out, err))
        if flags.command in ("server", "tcp-echo", "udp-echo", "redirect"):
            from sluice.samples.fortio.serve import run_server

            if flags.args:
                raise UsageError("Error: too many arguments (typo in a flag?)")
            return run_server(flags, _logger(flags, err, client_tool=False))
        if flags.command in COMMANDS:
            raise UsageError(f"Error: command {flags.command!r} is not supported by sluice's built-in fortio "
                             f"(supported: {', '.join(SUPPORTED)})")
        raise UsageError(f'Error: unknown command "{flags.command}"')
    except UsageError as e:
        err.write(f"{e}\n")
        err.write(f"Φορτίο {VERSION} usage:\n\tfortio command [flags] target\n")
        return 1
    except KeyboardInterrupt:
        return 130
