"""Who may use the console, and which requests a browser may send it (contract: docs/console-api.md, "Access").

Every request passes, in order:
1. `sluice.hostguard`: `Host` must be the console's own loopback name and port (403: DNS rebinding).
2. `Origin`, when present, must be the console's own origin (403: another page's request).
3. a credential: `Authorization: Bearer <the kubeconfig's token>` (scripts), or the session cookie
   (browsers). Without one, `/api/` answers 401 JSON and pages answer 401 with a small login page. A page
   address carrying `?token=<login token>` (what `sluice console` prints) sets the cookie and redirects to the
   same address without the token; `POST /login` with `{"token": …}` does the same for the login form.
4. writes (POST/PUT/PATCH/DELETE): a JSON or YAML body only (415 otherwise), and a session-cookie write must
   carry the page's `Origin` (a script's bearer-token write may have none).
No response carries CORS headers; every response forbids framing and MIME sniffing and sends no Referer.

Callers: `sluice.console.api.console_app` (middleware and the /login routes) and the daemon
(`ConsoleAuth.for_home`, with the API server's token).
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDict

from sluice.console.credentials import LoginTokens, Sessions, login_token_path, token_from_input
from sluice.hostguard import origin_of_host

__all__ = ["ConsoleAuth", "auth_middleware", "login_routes", "security_headers", "refuse", "WRITE_TYPES",
           "AUTH_KEY"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The body types a write may have: the ones a cross-site form or `no-cors` fetch cannot send.
WRITE_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
LOGIN_PATH = "/login"
MAX_LOGIN_BODY = 4096


@dataclass
class ConsoleAuth:
    api_token: str  # the kubeconfig's bearer token (the API server's)
    login: LoginTokens
    sessions: Sessions
    cookie_name: str

    @classmethod
    def for_home(cls, home_root: Path, api_token: str, port: int) -> ConsoleAuth:
        # The cookie names its port: cookies are shared by every port of a host, and two consoles (or a test's
        # and the user's) must not overwrite each other's session.
        return cls(api_token, LoginTokens(login_token_path(home_root)), Sessions.for_home(home_root),
                   f"sluice-console-{port}")

    def bearer(self, request: web.Request) -> bool | None:
        """True: a good bearer token; False: an Authorization header that is not one; None: no header."""
        got = request.headers.get("Authorization")
        if got is None:
            return None
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and bool(self.api_token) and \
            hmac.compare_digest(value.strip().encode(), self.api_token.encode())

    def session(self, request: web.Request) -> bool:
        return self.sessions.valid(request.cookies.get(self.cookie_name))

    def login_with(self, token: str) -> bool:
        """A pasted or linked token: the one-time login token (then used up), or the kubeconfig's token."""
        if self.login.consume(token):
            return True
        return bool(self.api_token) and bool(token) and hmac.compare_digest(token.encode(), self.api_token.encode())

    def set_session(self, resp: web.StreamResponse) -> None:
        resp.set_cookie(self.cookie_name, self.sessions.issue(), max_age=self.sessions.ttl_s, path="/",
                        httponly=True, samesite="Strict")


AUTH_KEY: web.AppKey[ConsoleAuth] = web.AppKey("console_auth", ConsoleAuth)


# ---------------------------------------------------------------------------------------------- responses
def _json_error(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=code, headers=headers,
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def _wants_page(request: web.Request) -> bool:
    return request.method in ("GET", "HEAD") and not _is_api(request)


def refuse(request: web.Request, message: str) -> web.Response:
    """403 in the console's format (JSON for the API and writes, text for pages)."""
    if _wants_page(request):
        return web.Response(status=403, text=f"403 Forbidden: {message}\n")
    return _json_error(403, message)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice console: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f3f3f3; color: #151515; margin: 0; }}
main {{ max-width: 520px; margin: 12vh auto; background: #fff; padding: 24px 28px; border-radius: 4px;
       box-shadow: 0 2px 10px rgba(0,0,0,.12); }}
h1 {{ font-size: 20px; margin: 0 0 12px; }} p {{ line-height: 1.45; }} code {{ background: #eee; padding: 1px 4px; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; font: inherit; margin: 4px 0 12px; }}
button {{ padding: 8px 16px; font: inherit; background: #06c; color: #fff; border: 0; border-radius: 3px; }}
.error {{ color: #c9190b; }}
</style></head>
<body><main>
<h1>Sluice console</h1>
<p>This console needs a login. Run <code>sluice console</code> and open the address it prints, or paste its
token (or the whole address, or your kubeconfig's token) here.</p>
<p class="error" id="message" role="alert">{message}</p>
<form id="login"><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus data-testid="login-token">
<button type="submit" data-testid="login-submit">Log in</button></form>
</main>
<script>
document.getElementById("login").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const token = document.getElementById("token").value;
  const r = await fetch("/login", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                                    body: JSON.stringify({{token}})}});
  if (r.ok) {{
    const u = new URL(location.href); u.searchParams.delete("token");
    location.replace(u.pathname === "/login" ? "/" : u.pathname + u.search + u.hash);
  }} else {{
    let m = "login failed"; try {{ m = (await r.json()).error; }} catch {{}}
    document.getElementById("message").textContent = m;
  }}
}});
</script></body></html>
"""


def login_page(message: str = "", status: int = 401) -> web.Response:
    return web.Response(status=status, text=LOGIN_PAGE.format(message=html.escape(message)),
                        content_type="text/html", headers={"Cache-Control": "no-store"})


def _unauthenticated(request: web.Request, message: str) -> web.Response:
    if _wants_page(request):
        return login_page()
    return _json_error(401, message, headers={"WWW-Authenticate": 'Bearer realm="sluice-console"'})


def _without_token(request: web.Request) -> str:
    """The request's own address minus `token`, as a local path (never `//host`, an open redirect)."""
    query: MultiDict[str] = MultiDict((k, v) for k, v in request.query.items() if k != "token")
    url = request.rel_url.with_query(query)
    return "/" + url.path_qs.lstrip("/\\")  # browsers read `/\host` as `//host` too


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------------------- middleware
def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin.strip().lower() == origin_of_host(request.headers.get("Host", ""))


def _write_problem(request: web.Request) -> tuple[int, str] | None:
    ctype = request.headers.get("Content-Type")
    if ctype is None and request.method == "DELETE" and not request.body_exists:
        return None
    if request.content_type.lower() not in WRITE_TYPES or ctype is None:
        shown = f"Content-Type {ctype!r}" if ctype else "a body without a Content-Type"
        return 415, (f"415 Unsupported Media Type: {shown} is not accepted; the console's writes accept "
                     f"{', '.join(WRITE_TYPES[:2])} (or another YAML type)")
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    if not _origin_ok(request):
        return refuse(request, f"cross-origin request refused: Origin {request.headers.get('Origin')!r} is not "
                               f"this console ({origin_of_host(request.headers.get('Host', ''))})")
    write = request.method not in READ_METHODS
    if write:
        problem = _write_problem(request)
        if problem is not None:
            return _json_error(*problem)
    bearer = auth.bearer(request)
    if bearer is False:
        return _json_error(401, "the Authorization header does not carry this console's bearer token "
                                "(the kubeconfig's `token`)",
                           headers={"WWW-Authenticate": 'Bearer realm="sluice-console", error="invalid_token"'})
    session = bearer is None and auth.session(request)
    # GET only: a HEAD (a link checker, a preview) must not use the one-time token up.
    if request.method == "GET" and not _is_api(request) and "token" in request.query:
        target = "/" if request.path == LOGIN_PATH else _without_token(request)
        if auth.login_with(token_from_input(request.query["token"])):
            resp = _redirect(target)
            auth.set_session(resp)
            return resp
        if session or bearer:  # an old link opened in a browser that is logged in already
            return _redirect(target)
        return login_page("That login link is not valid (it may have been used already): run `sluice console` "
                          "for a new one.")
    if request.path == LOGIN_PATH:
        return await handler(request)
    if not (bearer or session):
        return _unauthenticated(request, "this console needs a login: open the address `sluice console` prints, "
                                         "or send `Authorization: Bearer <the kubeconfig's token>`")
    if write and session and "Origin" not in request.headers:
        return refuse(request, "a write from the browser must carry its Origin header")
    return await handler(request)


async def _login_get(request: web.Request) -> web.StreamResponse:
    return login_page(status=200)


async def _login_post(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH_KEY]
    raw = await request.content.read(MAX_LOGIN_BODY + 1)  # anyone may post here: read little
    if len(raw) > MAX_LOGIN_BODY:
        return _json_error(413, f"the login body must be at most {MAX_LOGIN_BODY} bytes")
    try:
        body: Any = json.loads(raw) if request.content_type == "application/json" else None
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        return _json_error(400, 'the body must be JSON {"token": "<login token>"}')
    if not auth.login_with(token_from_input(body["token"])):
        return _json_error(401, "that token is not valid (a login token works once): run `sluice console` for "
                                "a new one, or use the kubeconfig's token")
    resp = web.json_response({"authenticated": True}, headers={"Cache-Control": "no-store"})
    auth.set_session(resp)
    return resp


def login_routes() -> list[web.RouteDef]:
    return [web.get(LOGIN_PATH, _login_get), web.post(LOGIN_PATH, _login_post)]


async def security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
