"""The httpbin endpoints Istio's tasks use, for both flavours (see the package docstring).

`/status/N` (weighted lists like `200:0.5,503:0.5`), `/headers`, `/delay/N`, `/get`, `/ip`, `/user-agent`,
`/uuid`, `/anything[/…]`, `/post` `/put` `/patch` `/delete`, `/response-headers`, `/bytes/N`, `/stream/N`,
`/html`, `/robots.txt`. Every response carries the CORS headers both originals add.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from sluice.samples.gotime import format_duration, parse_duration
from sluice.samples.httpbin import shapes

__all__ = ["create_app", "MAX_DELAY_SECONDS", "MAX_BYTES"]

MAX_DELAY_SECONDS = 10.0  # both originals: go-httpbin's -max-duration default, httpbin's min(delay, 10)
MAX_BYTES = 100 * 1024  # /bytes/N cap in both
MAX_BODY = 1024 * 1024  # go-httpbin's -max-body-size default
GO_JSON = "application/json; charset=utf-8"
GO_TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MOBY = """<!DOCTYPE html>
<html>
  <head>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my
          purse, and nothing particular to interest me on shore, I thought I would sail about a little and see
          the watery part of the world. It is a way I have of driving off the spleen and regulating the
          circulation.
        </p>
      </div>
  </body>
</html>"""


def weighted_choice(choices: list[tuple[int, float]], rng: random.Random | None = None) -> int:
    """A code drawn in proportion to its weight (weights need not sum to 1, as in both originals)."""
    total = sum(w for _, w in choices)
    if total <= 0:
        return choices[0][0]
    roll = (rng or random).random() * total
    acc = 0.0
    for code, weight in choices:
        acc += weight
        if roll < acc:
            return code
    return choices[-1][0]


class _View:
    """The request seen by one flavour."""

    def __init__(self, flavour: str, request: web.Request) -> None:
        self.flavour = flavour
        self.request = request
        self.pairs = list(request.headers.items())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1])) if peer else ("127.0.0.1", 0)
        self.query = parse_qsl(request.query_string, keep_blank_values=True)

    @property
    def go(self) -> bool:
        return self.flavour == "go"

    def headers(self) -> Any:
        if self.go:
            chunked = "chunked" in (self.request.headers.get("Transfer-Encoding") or "").lower()
            return shapes.go_headers(self.pairs, self.request.host, chunked)
        return shapes.kr_headers(self.pairs, show_env=any(k == "show_env" for k, _ in self.query))

    def origin(self) -> str:
        return shapes.go_origin(self.pairs, self.peer) if self.go else shapes.kr_origin(self.pairs, self.peer[0])

    def url(self) -> str:
        rel = self.request.rel_url
        path_qs = rel.raw_path + (f"?{rel.raw_query_string}" if rel.raw_query_string else "")
        return shapes.request_url(self.pairs, self.request.host, path_qs, self.request.secure)

    def args(self) -> Any:
        return shapes.go_values(self.query) if self.go else shapes.kr_values(self.query)

    def json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        text = shapes.dumps_go(body) if self.go else shapes.dumps_kr(body)
        resp = web.Response(status=status, body=text.encode(), headers=headers)
        resp.headers["Content-Type"] = GO_JSON if self.go else "application/json"  # Flask adds no charset
        return resp

    def error(self, status: int, detail: str) -> web.Response:
        if self.go:
            body: dict[str, Any] = {"status_code": status, "error": _reason(status)}
            if detail:
                body["detail"] = detail
            return self.json(body, status)
        return web.Response(status=status, text=detail, content_type="text/html")

    async def body_fields(self) -> dict[str, Any]:
        """data, files, form and json as each flavour parses the body."""
        raw = await self.request.read()
        ctype = (self.request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        form: dict[str, list[str]] = {}
        files: dict[str, list[str]] = {}
        parsed: Any = None
        data = raw.decode("utf-8", errors="replace")
        if ctype == "application/x-www-form-urlencoded":
            form = shapes.go_values(parse_qsl(data, keep_blank_values=True))
        elif ctype == "multipart/form-data":
            try:
                fields = await self.request.post()
            except ValueError:
                raise web.HTTPBadRequest() from None
            for k, v in fields.items():
                if isinstance(v, web.FileField):
                    files.setdefault(k, []).append(v.file.read().decode("utf-8", errors="replace"))
                else:
                    form.setdefault(k, []).append(str(v))
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                if ctype == "application/json" and self.go:
                    raise web.HTTPBadRequest() from None
                parsed = None
        if self.go:
            if ctype != "application/json":
                parsed = None
            return {"data": data, "files": files, "form": form, "json": parsed}
        flat = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
        ffiles = {k: v[0] if len(v) == 1 else v for k, v in files.items()}
        kr_data = "" if ctype in ("application/x-www-form-urlencoded", "multipart/form-data") else data
        return {"data": kr_data, "files": ffiles, "form": flat, "json": parsed}


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def create_app(flavour: str = "go", max_delay: float = MAX_DELAY_SECONDS,
               access_log: Callable[[web.Request, web.StreamResponse, float], None] | None = None) -> web.Application:
    if flavour not in ("go", "kennethreitz"):
        raise ValueError(f"unknown httpbin flavour {flavour!r}")
    go = flavour == "go"

    def view(request: web.Request) -> _View:
        return _View(flavour, request)

    def methods(allowed: tuple[str, ...], handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if request.method not in allowed and not (request.method == "HEAD" and "GET" in allowed):
                allow = ", ".join(allowed + (("HEAD",) if "GET" in allowed else ()))
                if go:
                    return web.Response(status=405, text="Method Not Allowed\n", headers={"Allow": allow},
                                        content_type="text/plain")
                return web.Response(status=405, text="<title>405 Method Not Allowed</title>\n"
                                    "<h1>Method Not Allowed</h1>\n"
                                    "<p>The method is not allowed for the requested URL.</p>\n",
                                    headers={"Allow": allow}, content_type="text/html")
            return await handler(request)
        return wrapped

    async def get(request: web.Request) -> web.StreamResponse:
        v = view(request)
        if go:
            return v.json({"args": v.args(), "headers": v.headers(), "method": request.method,
                           "origin": v.origin(), "url": v.url()})
        return v.json({"args": v.args(), "headers": v.headers(), "origin": v.origin(), "url": v.url()})

    async def with_body(request: web.Request, kr_keys: tuple[str, ...] | None = None) -> web.Response:
        v = view(request)
        try:
            fields = await v.body_fields()
        except web.HTTPBadRequest:
            return v.error(400, "error parsing request body: malformed JSON or multipart body")
        if go:
            return v.json({"args": v.args(), "headers": v.headers(), "method": request.method,
                           "origin": v.origin(), "url": v.url(), **fields})
        everything = {"args": v.args(), "headers": v.headers(), "method": request.method, "origin": v.origin(),
                      "url": v.url(), **fields}
        keys = kr_keys or tuple(everything)
        return v.json({k: everything[k] for k in keys})

    kr_post = ("url", "args", "form", "data", "origin", "headers", "files", "json")

    async def anything(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return await get(request)
        return await with_body(request)

    async def post_like(request: web.Request) -> web.StreamResponse:
        return await with_body(request, kr_post)

    async def headers(request: web.Request) -> web.StreamResponse:
        v = view(request)
        return v.json({"headers": v.headers()})

    async def ip(request: web.Request) -> web.StreamResponse:
        v = view(request)
        return v.json({"origin": v.origin()})

    async def user_agent(request: web.Request) -> web.StreamResponse:
        v = view(request)
        return v.json({"user-agent": request.headers.get("User-Agent", "")})

    async def uuid4(request: web.Request) -> web.StreamResponse:
        return view(request).json({"uuid": str(uuid.uuid4())})

    async def status(request: web.Request) -> web.StreamResponse:
        v = view(request)
        raw = request.match_info["codes"]
        try:
            code = _pick_status(raw, go)
        except ValueError as e:
            return v.error(400, str(e)) if go else web.Response(status=400, text="Invalid status code")
        return _status_response(code, go)

    async def delay(request: web.Request) -> web.StreamResponse:
        v = view(request)
        raw = request.match_info["duration"]
        seconds = parse_duration(raw) if go else None
        if seconds is None:
            try:
                seconds = float(raw)
            except ValueError:
                seconds = None
        if seconds is None or seconds != seconds:
            return v.error(400, f'invalid duration: time: invalid duration "{raw}"' if go else
                           f"invalid delay {raw!r}: expected a number of seconds")
        if go and seconds > max_delay:
            return v.error(400, f"invalid duration: duration {format_duration(seconds)} longer than "
                                f"{format_duration(max_delay)}")
        if go and seconds < 0:
            return v.error(400, f"invalid duration: duration {raw} shorter than 0s")
        seconds = max(0.0, min(seconds, max_delay))
        await asyncio.sleep(seconds)
        resp = await with_body(request, ("url", "args", "form", "data", "origin", "headers", "files"))
        if go:
            resp.headers["Server-Timing"] = f'initial_delay;dur={seconds * 1e3:0.2f};desc="initial delay"'
        return resp

    async def response_headers(request: web.Request) -> web.StreamResponse:
        v = view(request)
        query = v.query
        if go:
            body = shapes.dumps_go(shapes.go_values(query))
            resp = web.Response(status=200, body=body.encode())
            for k, val in query:
                resp.headers.add(k, val)
            if "Content-Type" not in resp.headers:
                resp.headers["Content-Type"] = GO_JSON
            return resp
        # httpbin renders the response's own headers, repeating until Content-Length settles.
        base = {"Content-Type": "application/json"}
        for k, val in query:
            key = shapes.title_werkzeug(k)
            if key in base and key != "Content-Type":
                prev = base[key]
                base[key] = prev + [val] if isinstance(prev, list) else [prev, val]  # type: ignore[assignment]
            elif key == "Content-Type":
                base[key] = val
            else:
                base[key] = val
        text = ""
        length = 0
        for _ in range(5):
            shown = dict(base, **{"Content-Length": str(length)})
            text = shapes.dumps_kr(shown)
            if len(text.encode()) == length:
                break
            length = len(text.encode())
        resp = web.Response(status=200, body=text.encode())
        resp.headers["Content-Type"] = "application/json"
        for k, val in query:
            if shapes.title_werkzeug(k) != "Content-Type":
                resp.headers.add(k, val)
            else:
                resp.headers["Content-Type"] = val
        return resp

    async def random_bytes(request: web.Request) -> web.StreamResponse:
        v = view(request)
        raw = request.match_info["n"]
        try:
            n = int(raw)
        except ValueError:
            if go:
                return v.error(400, f'invalid byte count: strconv.Atoi: parsing "{raw}": invalid syntax')
            raise web.HTTPNotFound() from None
        if n < 0:
            if go:
                return v.error(400, f"invalid byte count: {n} must be greater than 0")
            raise web.HTTPNotFound()
        seed = request.query.get("seed")
        try:
            rng = random.Random(int(seed)) if seed is not None else random.Random()
        except ValueError:
            return v.error(400, f'invalid seed: strconv.ParseInt: parsing "{seed}": invalid syntax')
        n = min(n, MAX_BYTES)
        return web.Response(status=200, body=rng.randbytes(n), content_type="application/octet-stream")

    async def stream(request: web.Request) -> web.StreamResponse:
        v = view(request)
        raw = request.match_info["n"]
        try:
            n = int(raw)
        except ValueError:
            if go:
                return v.error(400, f'invalid count: strconv.Atoi: parsing "{raw}": invalid syntax')
            raise web.HTTPNotFound() from None
        n = max(1, min(n, 100)) if go else max(0, min(n, 100))
        resp = web.StreamResponse(status=200)
        resp.content_type = "text/plain" if go else "application/json"
        if go:
            resp.charset = "utf-8"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(n):
            if go:
                line = json.dumps({"id": i, "args": v.args(), "headers": v.headers(), "origin": v.origin(),
                                   "url": v.url()}, separators=(",", ":"), ensure_ascii=False)
            else:
                line = json.dumps({"url": v.url(), "args": v.args(), "headers": v.headers(), "origin": v.origin(),
                                   "id": i})
            await resp.write((line + "\n").encode())
        await resp.write_eof()
        return resp

    async def html(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text=MOBY, content_type="text/html")

    async def robots(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text="User-agent: *\nDisallow: /deny\n", content_type="text/plain")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if request.method == "OPTIONS":
            resp: web.StreamResponse = web.Response(status=200)
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, PATCH, OPTIONS" if not go \
                else "GET, POST, HEAD, PUT, DELETE, PATCH, OPTIONS"
            resp.headers["Access-Control-Max-Age"] = "3600"
            if request.headers.get("Access-Control-Request-Headers"):
                resp.headers["Access-Control-Allow-Headers"] = request.headers["Access-Control-Request-Headers"]
        else:
            try:
                resp = await handler(request)
            except web.HTTPNotFound:
                resp = (web.Response(status=404, text="404 page not found\n", content_type="text/plain") if go
                        else web.Response(status=404, content_type="text/html",
                                          text="<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
                                               "<p>The requested URL was not found on the server.</p>\n"))
        if not resp.prepared:
            resp.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
            resp.headers["Access-Control-Allow-Credentials"] = "true"
        if access_log is not None:
            access_log(request, resp, loop.time() - started)
        return resp

    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    body_methods = ("GET", "POST", "PUT", "DELETE", "PATCH", "TRACE")
    routes: list[tuple[str, Handler]] = [
        ("/get", methods(("GET",), get)),
        ("/headers", headers),
        ("/ip", ip),
        ("/user-agent", user_agent),
        ("/uuid", uuid4),
        ("/anything", methods(body_methods + ("HEAD",), anything) if not go else anything),
        ("/anything/{tail:.*}", methods(body_methods + ("HEAD",), anything) if not go else anything),
        ("/post", methods(("POST",), post_like)),
        ("/put", methods(("PUT",), post_like)),
        ("/patch", methods(("PATCH",), post_like)),
        ("/delete", methods(("DELETE",), post_like)),
        ("/status/{codes}", status),
        ("/delay/{duration}", delay),
        ("/response-headers", response_headers),
        ("/bytes/{n}", random_bytes),
        ("/stream/{n}", stream),
        ("/html", html),
        ("/robots.txt", robots),
    ]
    for path, handler in routes:
        app.router.add_route("*", path, handler)
    return app


def _pick_status(raw: str, go: bool) -> int:
    """The status `/status/<codes>` answers: one code, or a draw from `code[:weight],…`."""
    def code_of(text: str) -> int:
        try:
            code = int(text)
        except ValueError:
            raise ValueError(f'invalid status code: "{text}"' if go else "Invalid status code") from None
        if not 100 <= code <= 599:
            raise ValueError(f"invalid status code: {code} not in range [100, 599]")
        return code

    if "," not in raw:
        return code_of(raw)
    choices: list[tuple[int, float]] = []
    for entry in raw.split(","):
        code_text, sep, weight_text = entry.partition(":")
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ValueError(f'invalid weight value: "{weight_text}"') from None
        if weight != weight or weight < 0:
            raise ValueError(f'invalid weight value: "{weight_text}"')
        try:
            code = code_of(code_text)
        except ValueError:
            raise ValueError(f'invalid choice value: "{code_text}"') from None
        choices.append((code, weight))
    return weighted_choice(choices)


def _status_response(code: int, go: bool) -> web.Response:
    """`/status/<code>`: an empty body, except the special cases both originals share."""
    if code < 200:
        # An informational code cannot end an exchange: Go sends it as an interim response and then its
        # implicit 200, which is what the client ends up with; answer that 200 (never a hanging exchange).
        code = 200
    headers: dict[str, str] = {}
    body = ""
    if code in (301, 302, 303, 305, 307):
        headers["Location"] = "/redirect/1"
    elif code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Fake Realm"'
    elif code == 407:
        headers["Proxy-Authenticate"] = 'Basic realm="Fake Realm"'
    elif code == 418:
        headers["X-More-Info"] = "http://tools.ietf.org/html/rfc2324"
        body = "I'm a teapot!"
    resp = web.Response(status=code, text=body, headers=headers)
    if go:
        resp.content_type = "text/plain"
        resp.charset = "utf-8"
    else:
        resp.content_type = "text/html"
        resp.charset = "utf-8"
    return resp
