"""fortio's "fast" HTTP/1.1 client: one connection per thread, kept alive, re-opened after a close or an
error; it counts sockets, the address each resolved to and the connect times, and reports for every call
the status code (-1 for a socket error), the bytes received and the header bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter as Occurrences
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sluice.samples.fortio import VERSION
from sluice.samples.fortio.stats import Histogram

__all__ = ["Target", "parse_target", "FastClient", "Fetch", "USER_AGENT", "MAX_RESPONSE"]

USER_AGENT = f"fortio.org/fortio-{VERSION}"
MAX_RESPONSE = 16 * 1024 * 1024  # what one response may hold in memory; larger bodies are counted, not kept


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    authority: str  # the Host header
    path: str  # path and query, as sent


def parse_target(url: str) -> Target:
    """The destination of an http:// URL (ValueError with fortio-like wording otherwise)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"unsupported scheme {parts.scheme!r} in {url}: sluice's fortio speaks http:// only")
    if not parts.hostname:
        raise ValueError(f"can't resolve empty host in {url}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"invalid port in {url}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.hostname, port, parts.netloc, path)


@dataclass(frozen=True)
class Fetch:
    code: int
    size: int  # total bytes received (headers + body)
    header_size: int
    data: bytes = b""  # the whole response, when asked to keep it


@dataclass
class FastClient:
    target: Target
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: bytes | None = None
    method: str = ""
    timeout: float = 3.0
    keepalive: bool = True
    keep_data: bool = False
    resolution: float = 0.001
    proxy: str | None = None  # loopback mode: the pod's sidecar, as `http://ip:port` (absolute-form requests)
    sockets: int = 0
    addresses: Occurrences[str] = field(default_factory=Occurrences)
    connect_times: Histogram = field(init=False)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    def __post_init__(self) -> None:
        self.connect_times = Histogram(0.0, self.resolution)
        self._request = self._build_request()

    def _build_request(self) -> bytes:
        method = self.method or ("POST" if self.payload is not None else "GET")
        names = {k.lower() for k, _ in self.headers}
        target = f"http://{self.target.authority}{self.target.path}" if self.proxy else self.target.path
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {self.target.authority}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() != "host"]
        lines += [f"Host: {v}" for k, v in self.headers if k.lower() == "host"][:1]
        if self.payload is not None:
            if "content-type" not in names:
                lines.append("Content-Type: application/octet-stream")
            lines.append(f"Content-Length: {len(self.payload)}")
        if not self.keepalive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (self.payload or b"")

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic_ns()
        host, port = self.target.host, self.target.port
        if self.proxy:
            via = urlsplit(self.proxy if "://" in self.proxy else "http://" + self.proxy)
            host, port = via.hostname or "127.0.0.1", via.port or 80
        infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"unable to resolve {host}")
        ip, port = str(infos[0][4][0]), int(infos[0][4][1])
        self._reader, self._writer = await asyncio.open_connection(ip, port, limit=2**20)
        self.connect_times.record((time.monotonic_ns() - started) / 1e9)
        self.sockets += 1
        self.addresses[f"{ip}:{port}"] += 1

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def fetch(self) -> Fetch:
        """One request; a failure is code -1 and the connection is dropped (the next call reconnects)."""
        try:
            return await asyncio.wait_for(self._fetch(), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return Fetch(-1, 0, 0)

    async def _fetch(self) -> Fetch:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(self._request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        header_size = len(head)
        status_line, _, rest = head.decode("latin-1").partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError("not an HTTP response")
        code = int(parts[1])
        fields = [line.split(":", 1) for line in rest.split("\r\n") if ":" in line]
        headers = {k.strip().lower(): v.strip() for k, v in fields}
        keep = b""
        size = header_size
        closing = headers.get("connection", "").lower() == "close" or not self.keepalive
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = await self._reader.readuntil(b"\r\n")
                n = int(line.split(b";", 1)[0].strip() or b"0", 16)
                chunk = await self._reader.readexactly(n + 2)
                size += len(line) + len(chunk)
                if self.keep_data and len(keep) < MAX_RESPONSE:
                    keep += chunk[:-2]
                if n == 0:
                    break
        elif "content-length" in headers:
            remaining = int(headers["content-length"])
            while remaining > 0:
                chunk = await self._reader.read(min(remaining, 65536))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(chunk)
                size += len(chunk)
                if self.keep_data and len(keep) < MAX_RESPONSE:
                    keep += chunk
        elif code not in (204, 304) and not 100 <= code < 200:
            closing = True  # the body runs to the end of the connection
            while chunk := await self._reader.read(65536):
                size += len(chunk)
                if self.keep_data and len(keep) < MAX_RESPONSE:
                    keep += chunk
        if closing:
            await self.close()
        return Fetch(code, size, header_size, head + keep if self.keep_data else b"")
