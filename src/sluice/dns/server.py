"""An asyncio DNS server for the cluster's names, on sockets it is given (UDP, and TCP with 2-byte lengths).

The caller creates the sockets wherever the pods can reach them (inside a network namespace, or on
127.0.0.1 in tests) and hands them over: `DnsServer.start(udp=[...], tcp=[...])` owns and closes them from
then on. Everything is bounded so no client can hold it: a query's size (`Limits.max_message`; larger UDP
datagrams are dropped, a larger TCP length closes the connection), concurrent UDP answers in flight, TCP
connections (more are closed at once) and their idle time, and the upstream's answer time. Malformed queries
get FORMERR; no error leaves the loop. The names come from `table()`, called per query, so a table that is
rebuilt as the store changes (`sluice.dns.watch`) is served as soon as it is rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sluice.dns.answer import Upstream, nxdomain_upstream, respond
from sluice.dns.names import NameTable

__all__ = ["DnsServer", "Limits"]

log = logging.getLogger("sluice.dns")


@dataclass(frozen=True)
class Limits:
    max_message: int = 4096  # bytes in one query (real queries are well under 512)
    max_udp_inflight: int = 256  # UDP queries being answered at once; more are dropped (the client retries)
    max_tcp: int = 64  # open TCP connections; more are closed at once
    tcp_idle: float = 10.0  # seconds a TCP connection may wait for its next message (or finish one)
    upstream_timeout: float = 2.0  # seconds before an unanswered upstream query becomes SERVFAIL


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # the selector's is not a subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        s = self.server
        if len(data) > s.limits.max_message or len(s._udp_tasks) >= s.limits.max_udp_inflight:
            return
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        s._udp_tasks.add(task)
        task.add_done_callback(s._udp_tasks.discard)

    async def _answer(self, data: bytes, addr: Any) -> None:
        try:
            out = await respond(data, self.server.table(), self.server.upstream, max_size=None,
                                upstream_timeout=self.server.limits.upstream_timeout)
            if out is not None and self.transport is not None and not self.transport.is_closing():
                self.transport.sendto(out, addr)
        except Exception:
            log.exception("dns: answering a UDP query failed")

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable from a gone client
        log.debug("dns: UDP error: %s", exc)


class DnsServer:
    def __init__(self, table: Callable[[], NameTable], *, upstream: Upstream = nxdomain_upstream,
                 limits: Limits | None = None) -> None:
        self.table = table
        self.upstream = upstream
        self.limits = limits or Limits()
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._udp_tasks: set[asyncio.Task[None]] = set()
        self._conns: set[asyncio.Task[Any]] = set()

    async def start(self, *, udp: Iterable[socket.socket] = (), tcp: Iterable[socket.socket] = ()) -> None:
        """Serve on these bound sockets (UDP datagram sockets; TCP stream sockets, listened on here)."""
        loop = asyncio.get_running_loop()
        for sock in udp:
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp.append(transport)
        for sock in tcp:
            sock.setblocking(False)
            server = await asyncio.start_server(self._tcp_client, sock=sock, limit=self.limits.max_message + 2)
            self._tcp.append(server)

    async def stop(self) -> None:
        for t in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
        for task in list(self._udp_tasks) + list(self._conns):
            task.cancel()
        await asyncio.gather(*self._udp_tasks, *self._conns, return_exceptions=True)
        for s in self._tcp:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._udp.clear()
        self._tcp.clear()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= self.limits.max_tcp or task is None:
            writer.close()
            return
        self._conns.add(task)
        try:
            await self._tcp_serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client went away, sent half a message or idled: just close
        except Exception:
            log.exception("dns: TCP connection failed")
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _tcp_serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle = self.limits.tcp_idle
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), idle)
            (length,) = struct.unpack("!H", head)
            if length == 0 or length > self.limits.max_message:
                return
            data = await asyncio.wait_for(reader.readexactly(length), idle)
            out = await respond(data, self.table(), self.upstream, max_size=65535,
                                upstream_timeout=self.limits.upstream_timeout)
            if out is None:
                continue
            writer.write(struct.pack("!H", len(out)) + out)
            await asyncio.wait_for(writer.drain(), idle)
