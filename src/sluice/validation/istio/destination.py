"""Route destinations, weights and header manipulation: shared by the VirtualService http/tcp/tls validators."""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_port,
    header_value_error,
    is_dns1123_label,
    wildcard_domain_error,
)

__all__ = ["check_destination", "check_route_destinations", "check_headers", "is_authority_header",
           "authority_rewrites"]


def check_destination(ctx: Ctx, path: Path, dest: dict[str, Any]) -> None:
    """A `Destination`: host required (no bare `*`), subset a DNS-1123 label, port in range."""
    host = ctx.str_(dest, "host", path)
    if not host:
        ctx.required(path.child("host"), "empty domain name not allowed")
    elif host == "*":
        ctx.invalid(path.child("host"), host, f"invalid destination host {host}")
    elif err := wildcard_domain_error(host):
        ctx.invalid(path.child("host"), host, err)
    subset = ctx.str_(dest, "subset", path)
    if subset and not is_dns1123_label(subset):
        ctx.invalid(path.child("subset"), subset, f"subset name is invalid: {subset}")
    port = ctx.obj(dest, "port", path)
    if port is not None:
        number = ctx.int_(port, "number", path.child("port"))
        check_port(ctx, path.child("port").child("number"), number if number is not None else 0)


def check_route_destinations(ctx: Ctx, path: Path, routes: list[Any], *, http: bool) -> None:
    """Destinations of one http/tcp/tls rule, including the weight rule of the user story.

    Classic mode (the default): each weight within 0..100 and, with several destinations, a sum of
    exactly 100 (a missing weight counts as 0). Relative mode (Istio >= 1.15): weights only must not
    be negative, and several destinations must not all weigh 0.
    """
    total = 0
    for k, rd in enumerate(routes):
        p = path.index(k)
        if rd is None:
            ctx.required(p, "weight may not be nil")
            continue
        if not isinstance(rd, dict):
            ctx.type_invalid(p, rd, "an object")
            continue
        dest = ctx.obj(rd, "destination", p)
        if dest is None:
            ctx.required(p.child("destination"), "destination is required")
        else:
            check_destination(ctx, p.child("destination"), dest)
        if http:
            check_headers(ctx, p.child("headers"), ctx.obj(rd, "headers", p))
        weight = ctx.int_(rd, "weight", p)
        w = weight or 0
        if ctx.options.relative_weights:
            if w < 0:
                ctx.invalid(p.child("weight"), w, f"weight {w} < 0")
        elif not 0 <= w <= 100:
            ctx.invalid(p.child("weight"), w, f"percentage {w} is not in range 0..100")
        total += w
    if len(routes) > 1:
        if ctx.options.relative_weights:
            if total == 0:
                ctx.invalid(path, total, "total destination weight = 0")
        elif total != 100:
            ctx.invalid(path, total, f"total destination weight {total} != 100")


def is_authority_header(name: str) -> bool:
    return name.lower() in (":authority", "host")


def _check_op_name(ctx: Ctx, path: str, name: str, *, request_set: bool) -> None:
    """Request add/set may target the authority; removals and response headers may not touch it."""
    if name == "":
        ctx.required(path, "header name cannot be empty")
        return
    if request_set:
        if (name.startswith(":") or name.lower() == "host") and not is_authority_header(name):
            ctx.invalid(path, name, f'invalid header "{name}": header cannot have ":" prefix')
        return
    if name.lower() == "host":
        ctx.invalid(path, name, f'invalid header "{name}": cannot set Host header')
    elif name.startswith(":"):
        ctx.invalid(path, name, f'invalid header "{name}": header cannot have ":" prefix')


def check_headers(ctx: Ctx, path: Path, headers: dict[str, Any] | None) -> None:
    """`headers.request|response.{set,add,remove}`: names Envoy may change, values in Envoy's syntax."""
    if headers is None:
        return
    for side in ("request", "response"):
        ops = ctx.obj(headers, side, path)
        if ops is None:
            continue
        sp = path.child(side)
        for op in ("set", "add"):
            for name, value in ctx.str_map(ops, op, sp).items():
                _check_op_name(ctx, sp.child(op).key(name), name, request_set=side == "request")
                if err := header_value_error(value):
                    ctx.invalid(sp.child(op).key(name), value, err)
        for i, name in enumerate(ctx.str_list(ops, "remove", sp)):
            _check_op_name(ctx, sp.child("remove").index(i), name, request_set=False)


def authority_rewrites(ctx: Ctx, path: Path, rewrite: dict[str, Any] | None,
                       headers: dict[str, Any] | None) -> None:
    """The authority may be rewritten in one place only (rewrite.authority or one header op)."""
    current = rewrite.get("authority") if rewrite and isinstance(rewrite.get("authority"), str) else ""
    request = headers.get("request") if headers else None
    if not isinstance(request, dict):
        return
    for op in ("set", "add"):
        ops = request.get(op)
        if not isinstance(ops, dict):
            continue
        for name, value in ops.items():
            if not is_authority_header(str(name)):
                continue
            if current:
                ctx.invalid(path.child("request").child(op).key(str(name)), value,
                            f'authority header cannot be set multiple times: have "{current}", '
                            f'attempting to set "{value}"')
                return
            current = str(value)

