"""fortio's gRPC server (port 8079): `fgrpc.PingServer/Ping` echoes the PingMessage with the server's
timestamp (after `delayNanos`), `grpc.health.v1.Health/Check` answers SERVING for "" and "ping",
NOT_SERVING for "ping_down" and NOT_FOUND "unknown service" otherwise, as fortio's health server does.

The messages are small enough to encode by hand (no generated code): PingMessage is
`seq=1 ts=2 payload=3 delayNanos=4`, HealthCheckRequest `service=1`, HealthCheckResponse `status=1`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

__all__ = ["decode_fields", "ping_reply", "health_status", "start_server", "MAX_PING_DELAY"]

MAX_PING_DELAY = 10.0  # seconds a client may ask the ping to wait (bounded here; fortio sleeps as asked)
SERVING, NOT_SERVING = 1, 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 on the wire: two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_fields(data: bytes) -> dict[int, int | bytes]:
    """Field number → value (varint or length-delimited) of a protobuf message; the last one wins."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            out[number] = value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            out[number] = data[pos:pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _encode(fields: list[tuple[int, int | bytes]]) -> bytes:
    out = bytearray()
    for number, value in fields:
        if isinstance(value, bytes):
            if value:
                out += _varint(number << 3 | 2) + _varint(len(value)) + value
        elif value:
            out += _varint(number << 3) + _varint(value)
    return bytes(out)


def ping_reply(request: bytes, now_ns: int) -> tuple[bytes, float]:
    """(the reply, seconds to wait first): the request with `ts` set to the server's time."""
    f = decode_fields(request)
    seq, payload, delay = f.get(1, 0), f.get(3, b""), f.get(4, 0)
    reply = _encode([(1, seq if isinstance(seq, int) else 0), (2, now_ns),
                     (3, payload if isinstance(payload, bytes) else b""), (4, delay if isinstance(delay, int) else 0)])
    wait = min(max(delay, 0) / 1e9, MAX_PING_DELAY) if isinstance(delay, int) else 0.0
    return reply, wait


def health_status(service: str, health_service: str = "ping") -> int | None:
    """The status fortio's health server reports for `service`, None for an unknown one."""
    return {"": SERVING, health_service: SERVING, f"{health_service}_down": NOT_SERVING}.get(service)


def _identity(b: bytes) -> bytes:
    return b


async def start_server(host: str, port: int, health_service: str = "ping") -> grpc.aio.Server:
    async def ping(request: bytes, context: Any) -> bytes:
        try:
            reply, wait = ping_reply(request, time.time_ns())
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid PingMessage")
        if wait > 0:
            await asyncio.sleep(wait)
        return reply

    async def check(request: bytes, context: Any) -> bytes:
        try:
            raw = decode_fields(request).get(1, b"")
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid HealthCheckRequest")
        status = health_status(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else "", health_service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _encode([(1, status or 0)]) or b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("fgrpc.PingServer", {
            "Ping": grpc.unary_unary_rpc_method_handler(ping, _identity, _identity)}),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check, _identity, _identity)}),
    ))
    if server.add_insecure_port(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}") == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server
