"""`sluice port-forward TYPE/NAME [LOCAL:]REMOTE…`: kubectl port-forward, listening on loopback only.

Each accepted local connection gets its own WebSocket to `pods/<pod>/portforward?ports=REMOTE` in the
`v4.channel.k8s.io` form (channel 0 data, channel 1 errors, each opened by the port in two little-endian
bytes). An error from the pod's side ends the command like kubectl's `lost connection to pod`. For
`svc/NAME`, service ports are translated to the pod's target ports as kubectl does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from dataclasses import dataclass
from typing import Any

import click

from sluice.cli.attachable import attachable_pod
from sluice.cli.context import Session, global_options, session
from sluice.cli.errors import CliError
from sluice.client.rest import RestClient

__all__ = ["COMMANDS", "PortSpec", "parse_port_spec", "service_target_port"]

PROTOCOL = "v4.channel.k8s.io"
LOOPBACK = {"localhost": ("127.0.0.1", "::1"), "127.0.0.1": ("127.0.0.1",), "::1": ("::1",)}


@dataclass(frozen=True)
class PortSpec:
    local: int  # 0: pick a free one
    remote: str  # a number, or a port name to resolve


def parse_port_spec(text: str) -> PortSpec:
    local, sep, remote = text.partition(":")
    if not sep:
        local, remote = text, text
    if not remote:
        raise CliError(f"Error parsing remote port '{remote}': port must be specified")
    try:
        lport = int(local) if local else 0
    except ValueError:
        raise CliError(f"Error parsing local port '{local}': invalid syntax") from None
    if not 0 <= lport < 65536:
        raise CliError(f"Error parsing local port '{local}': value out of range")
    if remote.isdigit() and not 0 < int(remote) < 65536:
        raise CliError(f"Error parsing remote port '{remote}': value out of range")
    return PortSpec(lport, remote)


def _container_port(pod: dict[str, Any], name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name and p.get("containerPort"):
                return int(p["containerPort"])
    return None


def service_target_port(svc: dict[str, Any], pod: dict[str, Any], port: str) -> int:
    """kubectl's translation of a service port (number or name) to the pod's port."""
    spec = svc.get("spec") or {}
    name = str((svc.get("metadata") or {}).get("name") or "")
    for p in spec.get("ports") or []:
        if str(p.get("port")) == port or (not port.isdigit() and p.get("name") == port):
            target = p.get("targetPort")
            if spec.get("clusterIP") == "None" or target in (None, 0, ""):
                return int(p["port"])
            if isinstance(target, int) or str(target).isdigit():
                return int(target)
            found = _container_port(pod, str(target))
            if found is None:
                raise CliError(f"Pod '{(pod.get('metadata') or {}).get('name')}' does not have a named port "
                               f"'{target}'")
            return found
    raise CliError(f"Service {name} does not have a service port {port}")


def _remote_port(s: Session, target: str, ns: str, pod: dict[str, Any], spec: PortSpec) -> int:
    type_, _, name = target.rpartition("/")
    if type_ and s.client.resolve(type_).kind == "Service":
        svc = s.client.get(s.client.resolve(type_), name, ns)
        return service_target_port(svc, pod, spec.remote)
    if spec.remote.isdigit():
        return int(spec.remote)
    found = _container_port(pod, spec.remote)
    if found is None:
        raise CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{spec.remote}'")
    return found


async def _forward(rest: RestClient, path: str, remote: int, local: int, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, lost: asyncio.Future[str]) -> None:
    import aiohttp

    from sluice.client.streams import open_stream  # aiohttp loads only when a command streams
    try:
        conn = await open_stream(rest, path, [("ports", str(remote))], [PROTOCOL])
    except Exception as e:  # noqa: BLE001 - reported like kubectl's per-connection errors
        if not lost.done():
            lost.set_result(f"an error occurred forwarding {local} -> {remote}: {e}")
        writer.close()
        return
    ws = conn.ws
    headers = {0: False, 1: False}

    async def upstream() -> None:
        while data := await reader.read(32 * 1024):
            await ws.send_bytes(b"\x00" + data)

    up = asyncio.create_task(upstream())
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel in headers and not headers[channel]:
                headers[channel] = True
                payload = payload[2:]  # the port this channel belongs to
            if channel == 0 and payload:
                writer.write(payload)
                await writer.drain()
            elif channel == 1 and payload:
                if not lost.done():
                    lost.set_result(f"an error occurred forwarding {local} -> {remote}: "
                                    f"{payload.decode('utf-8', 'replace')}")
                break
    except (ConnectionError, aiohttp.ClientError):
        pass
    finally:
        up.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await conn.close()


async def _serve(rest: RestClient, path: str, pairs: list[tuple[PortSpec, int]], hosts: tuple[str, ...]) -> str:
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    servers: list[asyncio.Server] = []
    for spec, remote in pairs:
        cell = [spec.local]  # the local port, known once the first listener is bound when it was 0

        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, remote: int = remote,
                    cell: list[int] = cell) -> None:
            click.echo(f"Handling connection for {cell[0]}")
            asyncio.ensure_future(_forward(rest, path, remote, cell[0], r, w, lost))

        for host in hosts:
            try:
                server = await asyncio.start_server(handler, host, cell[0],
                                                    family=socket.AF_INET6 if ":" in host else socket.AF_INET)
            except OSError as e:
                if host == "::1" and servers:
                    continue  # no IPv6 loopback here: the IPv4 listener is enough
                raise CliError(f"unable to listen on port {cell[0]}: Listeners failed to create with the "
                               f"following errors: [unable to create listener: Error listen tcp {host}:{cell[0]}: "
                               f"bind: {(e.strerror or str(e)).lower()}]") from None
            if cell[0] == 0:
                cell[0] = int(server.sockets[0].getsockname()[1])
            servers.append(server)
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"Forwarding from {shown}:{cell[0]} -> {remote}")
    sys.stdout.flush()
    try:
        return await lost
    finally:
        for server in servers:
            server.close()


@click.command("port-forward")
@click.argument("target")
@click.argument("ports", nargs=-1, required=True)
@click.option("--address", default="localhost", show_default=True,
              help="Addresses to listen on: localhost, 127.0.0.1 or ::1 (loopback only).")
@global_options
def port_forward_cmd(target: str, ports: tuple[str, ...], address: str) -> None:
    """Forward local ports to a pod (`sluice port-forward svc/productpage 9080:9080`)."""
    hosts: list[str] = []
    for a in address.split(","):
        a = a.strip()
        if a not in LOOPBACK:
            raise CliError(f"sluice port-forward listens on loopback only (localhost, 127.0.0.1, ::1), not {a!r}")
        hosts += [h for h in LOOPBACK[a] if h not in hosts]
    specs = [parse_port_spec(p) for p in ports]
    s = session()
    ns = s.namespace
    pod = attachable_pod(s, target, ns)
    pairs = [(spec, _remote_port(s, target, ns, pod, spec)) for spec in specs]
    phase = str((pod.get("status") or {}).get("phase") or "")
    if phase != "Running":
        raise CliError(f"unable to forward port because pod is not running. Current status={phase}")
    path = f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/portforward"
    message = asyncio.run(_serve(s.client.rest, path, pairs, tuple(hosts)))
    click.echo(message, err=True)
    raise CliError("lost connection to pod")


COMMANDS = [port_forward_cmd]
