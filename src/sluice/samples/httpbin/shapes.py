"""The request as each httpbin flavour reports it: header names, origin, URL, query arguments, JSON text.

Pure functions over plain values (no aiohttp types), so the unit tests can pin every shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["canonical_go", "title_werkzeug", "go_headers", "kr_headers", "go_origin", "kr_origin", "request_url",
           "go_values", "kr_values", "dumps_go", "dumps_kr", "ENV_HEADERS"]

# Headers kennethreitz/httpbin hides unless `show_env` is in the query (its helpers.ENV_HEADERS).
ENV_HEADERS = frozenset(h.lower() for h in (
    "X-Varnish", "X-Request-Start", "X-Heroku-Queue-Depth", "X-Real-Ip", "X-Forwarded-Proto",
    "X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Heroku-Queue-Wait-Time", "X-Forwarded-For",
    "X-Heroku-Dynos-In-Use", "X-Forwarded-Port", "X-Request-Id", "Via", "Total-Route-Time", "Connect-Time"))

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def canonical_go(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `x-b3-traceid` → `X-B3-Traceid` (names with other bytes stay)."""
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def title_werkzeug(name: str) -> str:
    """The name a WSGI app sees (`HTTP_X_B3_TRACEID` → `X-B3-Traceid`): `_` and `-` are one, words titled."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.replace("_", "-").split("-"))


def go_headers(pairs: Iterable[tuple[str, str]], host: str, chunked: bool = False) -> dict[str, list[str]]:
    """go-httpbin's `headers`: every value kept, in a list per canonical name, `Host` from the request."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        key = canonical_go(name)
        if key == "Host":
            continue  # Go moves it out of the header map; getRequestHeaders puts r.Host back
        out.setdefault(key, []).append(value)
    out["Host"] = [host]
    if chunked:
        out["Transfer-Encoding"] = ["chunked"]
    return dict(sorted(out.items()))


def kr_headers(pairs: Iterable[tuple[str, str]], show_env: bool = False) -> dict[str, str]:
    """kennethreitz/httpbin's `headers`: one string per name (repeats joined by `,` as WSGI does)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if not show_env and name.lower() in ENV_HEADERS:
            continue
        key = title_werkzeug(name)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def _first(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    return next((v for k, v in pairs if k.lower() == lname), None)


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def go_origin(pairs: list[tuple[str, str]], peer: tuple[str, int]) -> str:
    """go-httpbin's getClientIP: platform headers, then the first X-Forwarded-For entry, then `ip:port`."""
    for name in ("Fly-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "True-Client-IP"):
        value = _first(pairs, name)
        if value:
            return value
    forwarded = _first(pairs, "X-Forwarded-For")
    if forwarded:
        return forwarded.split(",", 1)[0].strip()
    return _host_port(*peer)


def kr_origin(pairs: list[tuple[str, str]], peer_ip: str) -> str:
    """kennethreitz/httpbin: the X-Forwarded-For header as sent, else the peer's address."""
    return _first(pairs, "X-Forwarded-For") or peer_ip


def request_url(pairs: list[tuple[str, str]], host: str, path_qs: str, tls: bool = False) -> str:
    """The `url` field: the scheme a proxy reports (X-Forwarded-Proto …), the Host, the path and query."""
    scheme = _first(pairs, "X-Forwarded-Proto") or _first(pairs, "X-Forwarded-Protocol")
    if not scheme and (_first(pairs, "X-Forwarded-Ssl") == "on" or tls):
        scheme = "https"
    return f"{scheme or 'http'}://{host}{path_qs}"


def go_values(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Go's url.Values: every value in a list, keys sorted as encoding/json writes maps."""
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return dict(sorted(out.items()))


def kr_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """httpbin's semiflatten: a single value as a string, repeated ones as a list."""
    many = go_values(pairs)
    return {k: v[0] if len(v) == 1 else v for k, v in many.items()}


def dumps_go(obj: Any) -> str:
    """encoding/json with SetIndent("", "  ") and SetEscapeHTML(false): fields in order, a final newline."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def dumps_kr(obj: Any) -> str:
    """Flask's pretty jsonify as httpbin configures it: sorted keys, `", "` item separators, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True, separators=(", ", ": ")) + "\n"
