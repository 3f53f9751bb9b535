"""An OpenTelemetry logs sink for the mesh bench's `otel` variant: answers every `LogsService/Export` with an
empty response and does nothing else (what the Envoys spend is what is measured). Prints its port, then
serves on 127.0.0.1 until stopped."""

from __future__ import annotations

import asyncio
import sys

import grpc

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


async def _export(request: bytes, context: object) -> bytes:
    return b""  # an empty ExportLogsServiceResponse: everything accepted


async def main() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(_export)})])  # raw bytes both ways
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
