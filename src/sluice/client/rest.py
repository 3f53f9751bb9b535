"""HTTP(S) transport: one keep-alive connection for requests, a fresh one per stream (watch, logs)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sluice.client.errors import ApiError, ConnectionFailed, status_from_response
from sluice.client.kubeconfig import RestConfig

__all__ = ["RestClient", "Response", "JSON", "TABLE_ACCEPT", "Query"]

JSON = "application/json"
# Exactly what kubectl sends for `get`, so the server answers with a meta.k8s.io Table.
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
USER_AGENT = "sluice/0.1.0"

Query = Mapping[str, str | int | bool | None] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _encode_query(query: Query | None) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    items = query.items() if isinstance(query, Mapping) else query
    for k, v in items:
        if v is None or v == "":
            continue
        pairs.append((k, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    # kubectl encodes spaces in selectors as '+', like Go's url.Values.Encode.
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _warning_text(header: str) -> str:
    """`299 - "text"` → `text` (RFC 7234 warn-code, agent, quoted text)."""
    parts = header.split(" ", 2)
    if len(parts) == 3 and parts[0].isdigit():
        text = parts[2].strip()
        if text.startswith('"'):
            return _unquote(text[1:])
        return text
    return header


def _unquote(rest: str) -> str:
    """The body of an RFC 7230 quoted-string whose opening quote is gone: up to the closing quote, `\\x` → `x`."""
    out: list[str] = []
    chars = iter(rest)
    for c in chars:
        if c == '"':
            break
        out.append(next(chars, "") if c == "\\" else c)
    return "".join(out)


def _print_warning(text: str) -> None:
    sys.stderr.write(f"Warning: {text}\n")


class RestClient:
    def __init__(self, config: RestConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        url = urllib.parse.urlsplit(config.server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConnectionFailed(f"invalid server URL {config.server!r} in kubeconfig")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._ssl = self._ssl_context() if self._https else None
        self._conn: http.client.HTTPConnection | None = None
        self._streams: set[http.client.HTTPConnection] = set()  # open `stream()`s, ended by close()
        # Server `Warning:` headers (e.g. unknown fields under fieldValidation=Warn) go to stderr like kubectl's.
        self.on_warning: Callable[[str], None] = _print_warning

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.config.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.config.ca_data:
            ctx = ssl.create_default_context(cadata=self.config.ca_data.decode("ascii", "replace"))
        if self.config.client_cert_data and self.config.client_key_data:
            # ssl only loads client certificates from files.
            with tempfile.TemporaryDirectory() as d:
                cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
                with open(cert, "wb") as f:
                    f.write(self.config.client_cert_data)
                with open(key, "wb") as f:
                    f.write(self.config.client_key_data)
                ctx.load_cert_chain(cert, key)
        return ctx

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, accept: str, content_type: str | None) -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": USER_AGENT}
        # Like kubectl, send the token only over TLS.
        if self.config.token and self._https:
            h["Authorization"] = f"Bearer {self.config.token}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    def _failed(self, e: OSError) -> ConnectionFailed:
        if isinstance(e, ConnectionRefusedError):
            return ConnectionFailed(
                f"The connection to the server {self.address} was refused - did you specify the right host or port?"
            )
        if isinstance(e, ssl.SSLError):
            return ConnectionFailed(f'Get "{self.config.server}": tls: {e.reason or e}')
        return ConnectionFailed(f"Unable to connect to the server: {e}")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = JSON,
    ) -> Response:
        """Send one request and read the whole answer; raises `ApiError` for non-2xx."""
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            content_type = content_type or JSON
        url = self._prefix + path + _encode_query(query)
        headers = self._headers(accept, content_type)
        for attempt in (1, 2):
            conn = self._conn or self._connect(self.timeout)
            self._conn = conn
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed: retry once on a fresh one.
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise self._failed(e) from e
            except OSError as e:
                conn.close()
                self._conn = None
                raise self._failed(e) from e
        for value in resp.headers.get_all("Warning") or []:
            self.on_warning(_warning_text(value))
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            self._conn = None
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, status_from_response(resp.status, payload))
        return Response(resp.status, resp.getheader("Content-Type", ""), payload)

    def json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        value = self.request(method, path, **kw).json()
        return value if isinstance(value, dict) else {}

    @contextmanager
    def stream(self, path: str, *, query: Query | None = None, accept: str = JSON) -> Iterator[Iterator[bytes]]:
        """GET a streaming answer (watch events, followed logs) and yield its lines as they arrive."""
        conn = self._connect(None)
        self._streams.add(conn)
        try:
            try:
                conn.request("GET", self._prefix + path + _encode_query(query), headers=self._headers(accept, None))
                resp = conn.getresponse()
            except OSError as e:
                raise self._failed(e) from e
            if not 200 <= resp.status < 300:
                raise ApiError(resp.status, status_from_response(resp.status, resp.read()))

            def lines() -> Iterator[bytes]:
                while True:
                    try:
                        line = resp.readline()
                    except (OSError, http.client.IncompleteRead):
                        return
                    if not line:
                        return
                    yield line

            yield lines()
        finally:
            self._streams.discard(conn)
            conn.close()

    def close(self) -> None:
        """Close the connection and end every stream in flight, also one another thread is reading."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for conn in list(self._streams):
            sock = conn.sock
            if sock is not None:
                try:  # wakes the reader with EOF; closing the fd under it would not be safe
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
