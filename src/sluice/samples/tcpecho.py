"""Istio's tcp-echo sample (`*/tcp-echo-server`): `tcp-echo PORTS PREFIX`.

Listens on every port of the comma-separated list and answers each line received with `PREFIX line`, as
samples/tcp-echo/src/main.go does (`args: ["9000,9001,9002", "one"]` in the tcp-traffic-shifting task); the
image's CMD is `9000 hello`. It prints what it listens on and every request and response to stdout, as the
original. `SLUICE_BIND`, when set, is the listen address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

__all__ = ["handle", "main", "USAGE"]

USAGE = ("you should run it like: 'main [PORTS...] prefix' , please notice PORTS are comma-delineated , "
         "like  port 1[,port 2]  ")
MAX_LINE = 1024 * 1024  # a line longer than this ends the connection (the original buffers without bound)


async def handle(prefix: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return  # EOF before a newline: the original drops the partial line
            except asyncio.LimitOverrunError:
                print("failed to read data, err: line too long", flush=True)
                return
            text = line.decode("utf-8", errors="replace")
            print(f"request: {text}", end="", flush=True)
            reply = f"{prefix} {text}"
            print(f"response: {reply}", end="", flush=True)
            writer.write(prefix.encode() + b" " + line)
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _serve(host: str, ports: list[int], prefix: str) -> None:
    servers = []
    for port in ports:
        server = await asyncio.start_server(lambda r, w: handle(prefix, r, w), host, port, limit=MAX_LINE,
                                            reuse_address=True)
        servers.append(server)
        shown = "[::]" if host in ("", "::", "0.0.0.0") else host
        print(f"listening on {shown}:{port}, prefix: {prefix}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, flush=True)
        return 1
    ports: list[int] = []
    for raw in args[0].split(","):
        try:
            port = int(raw)
            if not 0 <= port <= 65535:
                raise ValueError
        except ValueError:
            print(f"failed to create listener, err: listen tcp: address {raw}: invalid port", flush=True)
            return 1
        ports.append(port)
    host = os.environ.get("SLUICE_BIND") or "0.0.0.0"
    try:
        asyncio.run(_serve(host, ports, args[1]))
    except OSError as e:
        print(f"failed to create listener, err: listen tcp :{args[0]}: {e.strerror or e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
