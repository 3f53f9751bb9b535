"""Validation of one VirtualService `http[]` rule (Istio's validateHTTPRoute), called by virtualservice.py."""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus
from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_duration,
    check_fraction_percent,
    check_gateway_names,
    check_header_name,
    check_labels,
    check_port,
    check_regex,
    check_string_match,
    is_dns1123_label,
)
from sluice.validation.istio.destination import (
    authority_rewrites,
    check_destination,
    check_headers,
    check_route_destinations,
)

__all__ = ["check_http_route", "RETRY_ON_POLICIES", "GRPC_STATUSES"]

# Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies.
RETRY_ON_POLICIES = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
    "unavailable",
})
GRPC_STATUSES = frozenset({
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
_KNOWN_STATUS = frozenset(int(s) for s in HTTPStatus)
_KB = 1024
_MB = 1024 * _KB


def check_http_route(ctx: Ctx, path: Path, route: dict[str, Any], *, in_delegate: bool) -> None:
    """Every rule of one http route; `in_delegate` is true when the VirtualService itself is a delegate."""
    _check_conflicts(ctx, path, route, in_delegate)
    for j, match in enumerate(ctx.lst(route, "match", path)):
        if isinstance(match, dict):
            _check_match(ctx, path.child("match").index(j), match)
        elif match is not None:
            ctx.type_invalid(path.child("match").index(j), match, "an object")
    check_headers(ctx, path.child("headers"), ctx.obj(route, "headers", path))
    _check_cors(ctx, path.child("corsPolicy"), ctx.obj(route, "corsPolicy", path))
    _check_fault(ctx, path.child("fault"), ctx.obj(route, "fault", path))
    _check_mirrors(ctx, path, route)
    _check_redirect(ctx, path.child("redirect"), ctx.obj(route, "redirect", path), route)
    _check_direct_response(ctx, path.child("directResponse"), ctx.obj(route, "directResponse", path))
    _check_retries(ctx, path.child("retries"), ctx.obj(route, "retries", path))
    rewrite = ctx.obj(route, "rewrite", path)
    _check_rewrite(ctx, path.child("rewrite"), rewrite)
    authority_rewrites(ctx, path.child("headers"), rewrite, ctx.obj(route, "headers", path))
    check_route_destinations(ctx, path.child("route"), ctx.lst(route, "route", path), http=True)
    check_duration(ctx, path.child("timeout"), route.get("timeout"))


def _check_conflicts(ctx: Ctx, path: Path, route: dict[str, Any], in_delegate: bool) -> None:
    name = route.get("name", "")
    has_route = bool(route.get("route"))
    has = {k: route.get(k) is not None for k in ("redirect", "directResponse", "fault", "rewrite", "delegate")}
    if not in_delegate and has["delegate"]:
        # a root rule hands the request to the delegate VirtualService and must not route it itself
        if has["redirect"]:
            ctx.forbidden(path.child("redirect"), f"root HTTP route {name} must not specify redirect")
        if has_route:
            ctx.forbidden(path.child("route"), f"root HTTP route {name} must not specify route")
        return
    if in_delegate and has["delegate"]:
        ctx.forbidden(path.child("delegate"), "delegate HTTP route cannot contain delegate")
    if has["redirect"]:
        p = path.child("redirect")
        if has_route:
            ctx.forbidden(p, "HTTP route cannot contain both route and redirect")
        if has["fault"]:
            ctx.forbidden(p, "HTTP route cannot contain both fault and redirect")
        if has["rewrite"]:
            ctx.forbidden(p, "HTTP route rule cannot contain both rewrite and redirect")
        if has["directResponse"]:
            ctx.forbidden(p, "HTTP route rule cannot contain both direct_response and redirect")
    elif has["directResponse"]:
        p = path.child("directResponse")
        if has_route:
            ctx.forbidden(p, "HTTP route cannot contain both route and direct_response")
        if has["fault"]:
            ctx.forbidden(p, "HTTP route cannot contain both fault and direct_response")
        if has["rewrite"]:
            ctx.forbidden(p, "HTTP route rule cannot contain both rewrite and direct_response")
    elif not has_route:
        ctx.required(path.child("route"), "HTTP route, redirect or direct_response is required")
    if route.get("mirror") is not None and route.get("mirrors"):
        ctx.forbidden(path.child("mirrors"), "HTTP route cannot contain both mirror and mirrors")


def _check_match(ctx: Ctx, path: Path, match: dict[str, Any]) -> None:
    headers = ctx.obj(match, "headers", path) or {}
    for name, sm in headers.items():
        p = path.child("headers").key(name)
        if sm is None:
            ctx.required(p, f"header match {name} cannot be null")
        check_header_name(ctx, p, name, allow_pseudo=True)
        check_string_match(ctx, p, sm, "headers")
    without = ctx.obj(match, "withoutHeaders", path) or {}
    for name, sm in without.items():
        p = path.child("withoutHeaders").key(name)
        check_header_name(ctx, p, name, allow_pseudo=True)
        # regex "*" is not RE2: it means "header present"
        if not (isinstance(sm, dict) and sm.get("regex") == "*"):
            check_string_match(ctx, p, sm, "withoutHeaders")
    # Envoy allows an empty uri prefix (matches everything); the other matchers do not
    check_string_match(ctx, path.child("uri"), match.get("uri"), "uri", allow_empty_prefix=True)
    for key in ("scheme", "method", "authority"):
        check_string_match(ctx, path.child(key), match.get(key), key)
    for name, sm in (ctx.obj(match, "queryParams", path) or {}).items():
        check_string_match(ctx, path.child("queryParams").key(name), sm, "queryParams")
    port = ctx.int_(match, "port", path)
    if port:
        check_port(ctx, path.child("port"), port)
    check_labels(ctx, path.child("sourceLabels"), ctx.str_map(match, "sourceLabels", path))
    check_gateway_names(ctx, path.child("gateways"), ctx.str_list(match, "gateways", path))
    ns = ctx.str_(match, "sourceNamespace", path)
    if ns and not is_dns1123_label(ns):
        ctx.invalid(path.child("sourceNamespace"), ns, f"sourceNamespace match {ns} is invalid")


def _check_cors(ctx: Ctx, path: Path, cors: dict[str, Any] | None) -> None:
    if cors is None:
        return
    for i, origin in enumerate(ctx.lst(cors, "allowOrigins", path)):
        p = path.child("allowOrigins").index(i)
        value = ""
        if isinstance(origin, dict):
            for kind in ("exact", "prefix", "regex"):
                if kind in origin:
                    value = str(origin.get(kind) or "")
                    break
        if value == "":
            ctx.invalid(p, origin, f"'{value}' is not a valid match type for CORS allow origins")
            continue
        if isinstance(origin, dict) and "regex" in origin:
            check_regex(ctx, p.child("regex"), value, "corsPolicy.allowOrigins")
    for i, method in enumerate(ctx.str_list(cors, "allowMethods", path)):
        if method not in CORS_METHODS:
            ctx.invalid(path.child("allowMethods").index(i), method, f'"{method}" is not a supported HTTP method')
    for key in ("allowHeaders", "exposeHeaders"):
        for i, name in enumerate(ctx.str_list(cors, key, path)):
            check_header_name(ctx, path.child(key).index(i), name, allow_star=True)
    max_age = cors.get("maxAge")
    ns = check_duration(ctx, path.child("maxAge"), max_age)
    if ns is not None and ns % 1_000_000_000:
        ctx.invalid(path.child("maxAge"), max_age, "max_age duration is accurate only to seconds precision")
    unmatched = ctx.str_(cors, "unmatchedPreflights", path)
    if unmatched and unmatched not in ("UNSPECIFIED", "FORWARD", "IGNORE"):
        ctx.not_supported(path.child("unmatchedPreflights"), unmatched, ["UNSPECIFIED", "FORWARD", "IGNORE"])


def _http_status_error(status: int) -> str | None:
    # Istio's check accepts 600 although its message says 599; kept for compatibility
    return None if 200 <= status <= 600 else f"HTTP status {status} is not in range 200-599"


def _check_fault(ctx: Ctx, path: Path, fault: dict[str, Any] | None) -> None:
    if fault is None:
        return
    abort = ctx.obj(fault, "abort", path)
    delay = ctx.obj(fault, "delay", path)
    if abort is None and delay is None:
        ctx.required(path, "HTTP fault injection must have an abort and/or a delay")
    if abort is not None:
        p = path.child("abort")
        check_fraction_percent(ctx, abort, "percentage", p)
        if "httpStatus" in abort:
            status = ctx.int_(abort, "httpStatus", p)
            if status is not None and (err := _http_status_error(status)):
                ctx.invalid(p.child("httpStatus"), status, err)
        elif "grpcStatus" in abort:
            code = ctx.str_(abort, "grpcStatus", p)
            if code not in GRPC_STATUSES:
                ctx.invalid(p.child("grpcStatus"), code,
                            f'gRPC status "{code}" is not supported. See '
                            "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of "
                            "supported codes, for example 'NOT_FOUND'")
        elif "http2Error" in abort:
            ctx.forbidden(p.child("http2Error"), "HTTP/2 abort fault injection not supported yet")
        else:
            ctx.warn("abort configured, but error type not set")
    if delay is not None:
        p = path.child("delay")
        check_fraction_percent(ctx, delay, "percentage", p)
        if "fixedDelay" in delay:
            check_duration(ctx, p.child("fixedDelay"), delay.get("fixedDelay"))
        elif "exponentialDelay" in delay:
            check_duration(ctx, p.child("exponentialDelay"), delay.get("exponentialDelay"))
            ctx.forbidden(p.child("exponentialDelay"), "exponentialDelay not supported yet")


def _check_mirrors(ctx: Ctx, path: Path, route: dict[str, Any]) -> None:
    if "mirrorPercent" in route:
        pct = ctx.int_(route, "mirrorPercent", path)
        if pct is not None and pct > 100:
            ctx.invalid(path.child("mirrorPercent"), pct, f"mirror_percent must have a max value of 100 (it has {pct})")
        ctx.warn('using deprecated setting "mirrorPercent", use "mirrorPercentage" instead')
    _check_mirror_percentage(ctx, path, route, "mirrorPercentage", "mirror_percentage")
    mirror = ctx.obj(route, "mirror", path)
    if mirror is not None:
        check_destination(ctx, path.child("mirror"), mirror)
    for i, m in enumerate(ctx.lst(route, "mirrors", path)):
        p = path.child("mirrors").index(i)
        if m is None:
            ctx.required(p, "mirror cannot be null")
            continue
        if not isinstance(m, dict):
            ctx.type_invalid(p, m, "an object")
            continue
        dest = ctx.obj(m, "destination", p)
        if dest is None:
            ctx.required(p.child("destination"), "destination is required for mirrors")
            continue
        check_destination(ctx, p.child("destination"), dest)
        _check_mirror_percentage(ctx, p, m, "percentage", "mirror percentage")


def _check_mirror_percentage(ctx: Ctx, path: Path, parent: dict[str, Any], key: str, label: str) -> None:
    pct = ctx.obj(parent, key, path)
    if pct is None:
        return
    value = ctx.num(pct, "value", path.child(key))
    if value is None:
        return
    p = path.child(key).child("value")
    if value > 100:
        ctx.invalid(p, value, f"{label} must have a max value of 100 (it has {value:f})")
    if value < 0:
        ctx.invalid(p, value, f"{label} must have a min value of 0 (it has {value:f})")


def _check_redirect(ctx: Ctx, path: Path, redirect: dict[str, Any] | None, route: dict[str, Any]) -> None:
    if redirect is None:
        return
    uri = ctx.str_(redirect, "uri", path)
    prefix_rewrite = ctx.str_(redirect, "prefixRewrite", path)
    if uri and prefix_rewrite:
        ctx.forbidden(path.child("prefixRewrite"), "redirect may only specify one of uri or prefix_rewrite")
    if prefix_rewrite:
        for match in ctx.lst(route, "match", path):
            uri_match = match.get("uri") if isinstance(match, dict) else None
            if isinstance(uri_match, dict) and "prefix" not in uri_match:
                ctx.invalid(path.child("prefixRewrite"), prefix_rewrite,
                            "redirect prefix_rewrite requires all URI matches to use prefix match type")
                break
    port = ctx.int_(redirect, "port", path)
    derive = ctx.str_(redirect, "derivePort", path)
    scheme = ctx.str_(redirect, "scheme", path)
    if not (uri or prefix_rewrite or ctx.str_(redirect, "authority", path) or port is not None or derive or scheme):
        ctx.required(path, "redirect must specify URI, authority, scheme, or port")
    code = ctx.int_(redirect, "redirectCode", path)
    if code and not 300 <= code <= 399:
        ctx.invalid(path.child("redirectCode"), code, f"{code} is not a valid redirect code, must be 3xx")
    if scheme and scheme not in ("http", "https"):
        ctx.invalid(path.child("scheme"), scheme, 'invalid redirect scheme, must be "http" or "https"')
    if port is not None and port != 0:
        check_port(ctx, path.child("port"), port)
    if derive and derive not in ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"):
        ctx.not_supported(path.child("derivePort"), derive, ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"])


def _check_direct_response(ctx: Ctx, path: Path, dr: dict[str, Any] | None) -> None:
    if dr is None:
        return
    body = ctx.obj(dr, "body", path)
    if body is not None:
        size = len(ctx.str_(body, "string", path.child("body")).encode())
        raw = ctx.str_(body, "bytes", path.child("body"))
        if raw:
            try:
                size = max(size, len(base64.b64decode(raw, validate=True)))
            except (binascii.Error, ValueError):
                ctx.invalid(path.child("body").child("bytes"), "…", "bytes must be base64-encoded")
        if size > _MB:
            ctx.invalid(path.child("body"), size,
                        "large direct_responses may impact control plane performance, must be less than 1MB")
        elif size > 100 * _KB:
            ctx.warn("large direct_responses may impact control plane performance")
    status = ctx.int_(dr, "status", path)
    if status is None:
        ctx.required(path.child("status"), "HTTP status is required")
    elif err := _http_status_error(status):
        ctx.invalid(path.child("status"), status, err)


def _check_retries(ctx: Ctx, path: Path, retries: dict[str, Any] | None) -> None:
    if retries is None:
        return
    attempts = ctx.int_(retries, "attempts", path) or 0
    if attempts < 0:
        ctx.invalid(path.child("attempts"), attempts, "attempts cannot be negative")
    retry_on = ctx.str_(retries, "retryOn", path)
    configured = retries.get("perTryTimeout") is not None or retry_on or retries.get("retryRemoteLocalities") is not None
    if attempts == 0 and configured:
        ctx.invalid(path.child("attempts"), attempts, "http retry policy configured when attempts are set to 0 (disabled)")
    check_duration(ctx, path.child("perTryTimeout"), retries.get("perTryTimeout"))
    if retry_on:
        for policy in retry_on.split(","):
            if policy in RETRY_ON_POLICIES or (policy.isdigit() and int(policy) in _KNOWN_STATUS):
                continue
            ctx.invalid(path.child("retryOn"), retry_on, f'"{policy}" is not a valid retryOn policy')
    check_duration(ctx, path.child("backoff"), retries.get("backoff"))


def _check_rewrite(ctx: Ctx, path: Path, rewrite: dict[str, Any] | None) -> None:
    if rewrite is None:
        return
    uri = ctx.str_(rewrite, "uri", path)
    regex = ctx.obj(rewrite, "uriRegexRewrite", path)
    if uri and regex is not None:
        ctx.forbidden(path.child("uriRegexRewrite"), "rewrite may only contain one of URI or UriRegexRewrite")
        return
    if not uri and regex is None and not ctx.str_(rewrite, "authority", path):
        ctx.required(path, "rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
                           "Only one of URI or UriRegexRewrite may be specified")
        return
    if regex is not None:
        p = path.child("uriRegexRewrite")
        match = ctx.str_(regex, "match", p)
        if not match or not ctx.str_(regex, "rewrite", p):
            ctx.required(p, "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match "
                            "fields to be specified")
        else:
            check_regex(ctx, p.child("match"), match, "HTTPRewrite.UriRegexRewrite.Match")

