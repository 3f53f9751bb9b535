"""Who may use the console and what a browser may send it, over a real aiohttp server (sluice.console.auth).

The daemon-level attacks (and that the mesh keeps answering) are in tests/integration/test_hostile_console.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.console.access import API_TOKEN, BEARER, console_auth
from tests.unit.console.fixtures import NS, fake_query
from tests.unit.console.mesh import populate
from yarl import URL

from sluice.api.registry import Registry
from sluice.console.api import console_app
from sluice.console.credentials import Sessions, read_login_token, token_from_input
from sluice.hostguard import host_allowed
from sluice.store.sqlite import Store

Client = TestClient[Any, Any]
VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "evil"},
      "spec": {"hosts": ["ratings"], "http": [{"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                                               "route": [{"destination": {"host": "ratings"}}]}]}}


@pytest.fixture
async def anon(tmp_path: Path) -> AsyncIterator[tuple[Client, Registry]]:
    """A console with a UI build, and a client that sends no credential of its own."""
    reg = Registry(Store(tmp_path / "db"))
    populate(reg)
    ui = tmp_path / "ui"
    ui.mkdir()
    (ui / "index.html").write_text('<html><div id="root"></div></html>')
    # No cookie jar: each test sends the cookie it means to send.
    c: Client = TestClient(TestServer(console_app(reg, fake_query, auth=console_auth(tmp_path), static_dir=ui)),
                           cookie_jar=DummyCookieJar())
    await c.start_server()
    yield c, reg
    await c.close()


def origin(c: Client) -> str:
    return f"http://127.0.0.1:{c.port}"


async def login(c: Client, home: Path, page: str = "/graph?namespace=default") -> dict[str, str]:
    """Open the tokened address as a browser would; return the session cookie as a request header."""
    token = read_login_token(home)
    assert token
    r = await c.get(f"{page}&token={token}", allow_redirects=False)
    assert r.status == 302, await r.text()
    morsel = SimpleCookie(r.headers["Set-Cookie"])
    (name, m), = morsel.items()
    return {"Cookie": f"{name}={m.value}"}


def vs_names(reg: Registry) -> list[str]:
    from sluice.resources.kinds import by_kind

    rt = by_kind("networking.istio.io", "VirtualService")
    assert rt is not None
    items, _, _ = reg.list_objects(rt, "v1", NS)
    return [o["metadata"]["name"] for o in items]


async def test_no_credential_is_401_json_for_the_api_and_a_login_page_for_pages(anon: tuple[Client, Registry]
                                                                               ) -> None:
    c, _ = anon
    r = await c.get("/api/namespaces")
    assert r.status == 401 and (await r.json())["code"] == 401
    assert "Bearer" in r.headers["WWW-Authenticate"]
    for path in ("/", "/graph?namespace=default", "/index.html"):
        r = await c.get(path)
        page = await r.text()
        assert r.status == 401 and r.content_type == "text/html"
        assert 'data-testid="login-token"' in page and '<div id="root">' not in page


async def test_a_wrong_token_is_refused_everywhere(anon: tuple[Client, Registry], tmp_path: Path) -> None:
    c, _ = anon
    r = await c.get("/api/namespaces", headers={"Authorization": "Bearer not-the-token"})
    assert r.status == 401
    r = await c.get("/api/namespaces", headers={"Authorization": f"Basic {API_TOKEN}"})
    assert r.status == 401
    r = await c.get("/graph?token=not-the-token", allow_redirects=False)
    assert r.status == 401 and "not valid" in await r.text() and "Set-Cookie" not in r.headers
    r = await c.post("/login", json={"token": "not-the-token"}, headers={"Origin": origin(c)})
    assert r.status == 401 and "not valid" in (await r.json())["error"]
    r = await c.get("/api/namespaces", headers={"Cookie": "sluice-console-0=1.2.3"})
    assert r.status == 401
    assert read_login_token(tmp_path)  # a wrong guess does not use the real token up


async def test_the_kubeconfig_bearer_token_works_for_scripts(anon: tuple[Client, Registry]) -> None:
    c, reg = anon
    r = await c.get("/api/namespaces", headers=BEARER)
    assert r.status == 200
    r = await c.post(f"/api/namespaces/{NS}/istio/VirtualService", data=yaml.safe_dump(VS),
                     headers={**BEARER, "Content-Type": "application/yaml"})  # no Origin: a script
    assert r.status == 201, await r.json()
    assert "evil" in vs_names(reg)


async def test_the_login_link_sets_a_strict_httponly_cookie_once(anon: tuple[Client, Registry],
                                                                  tmp_path: Path) -> None:
    c, _ = anon
    token = read_login_token(tmp_path)
    assert token
    r = await c.get(f"/graph?namespace=default&token={token}&duration=60", allow_redirects=False)
    assert r.status == 302
    assert r.headers["Location"] == "/graph?namespace=default&duration=60"
    raw = r.headers["Set-Cookie"]
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in raw.split(";")[1:]}
    assert "httponly" in attrs and attrs["samesite"].lower() == "samesite=strict" and attrs["path"] == "Path=/"
    assert raw.startswith(f"sluice-console-{0}=")
    cookie = SimpleCookie(raw)
    header = {"Cookie": "; ".join(f"{k}={m.value}" for k, m in cookie.items())}
    r = await c.get("/graph?namespace=default", headers=header)
    assert r.status == 200 and '<div id="root">' in await r.text()
    assert (await c.get("/api/namespaces", headers=header)).status == 200
    # The token is used up: the same link logs no one else in, and a fresh token waits in the 0600 file.
    r = await c.get(f"/graph?token={token}", allow_redirects=False)
    assert r.status == 401 and "used already" in await r.text()
    fresh = read_login_token(tmp_path)
    assert fresh and fresh != token
    # ... but in a browser that is logged in it just drops the token.
    r = await c.get(f"/graph?token={token}", headers=header, allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/graph"
    for f in ("login-token", "session-key"):
        assert stat.S_IMODE(os.stat(tmp_path / "console" / f).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "console").st_mode) == 0o700


async def test_the_login_form_takes_a_token_or_the_printed_address(anon: tuple[Client, Registry],
                                                                   tmp_path: Path) -> None:
    c, _ = anon
    r = await c.get("/login")
    assert r.status == 200 and 'data-testid="login-token"' in await r.text()
    r = await c.get(f"/login?token={read_login_token(tmp_path)}", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/" and "HttpOnly" in r.headers["Set-Cookie"]
    address = f"http://127.0.0.1:20001/graph?namespace=x&token={read_login_token(tmp_path)}"
    r = await c.post("/login", json={"token": address}, headers={"Origin": origin(c)})
    assert r.status == 200 and "HttpOnly" in r.headers["Set-Cookie"]
    r = await c.post("/login", json={"token": API_TOKEN}, headers={"Origin": origin(c)})
    assert r.status == 200
    r = await c.post("/login", data=f"token={API_TOKEN}", headers={
        "Origin": origin(c), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415
    r = await c.post("/login", json={"token": API_TOKEN}, headers={"Origin": "http://evil.example"})
    assert r.status == 403
    for junk, code in (("[" * 4000, 400), ('{"token": "' + "x" * 10_000 + '"}', 413), ("{}", 400)):
        r = await c.post("/login", data=junk, headers={"Content-Type": "application/json"})
        assert r.status == code and "error" in await r.json()
    token = read_login_token(tmp_path)
    r = await c.head(f"/graph?token={token}", allow_redirects=False)
    assert r.status == 401 and read_login_token(tmp_path) == token  # a HEAD does not use the token up


async def test_cookie_writes_need_a_same_origin_origin_and_json_or_yaml(anon: tuple[Client, Registry],
                                                                        tmp_path: Path) -> None:
    c, reg = anon
    cookie = await login(c, tmp_path)
    url = f"/api/namespaces/{NS}/istio/VirtualService"
    body = yaml.safe_dump(VS)
    for headers, code in [({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403),
                          ({"Origin": "http://evil.example", "Content-Type": "application/yaml"}, 403),
                          ({"Origin": "null", "Content-Type": "application/yaml"}, 403),
                          ({"Origin": f"http://127.0.0.1:{c.port + 1}", "Content-Type": "application/json"}, 403),
                          ({"Origin": origin(c), "Content-Type": "text/plain"}, 415),
                          ({"Origin": origin(c), "Content-Type": "application/x-www-form-urlencoded"}, 415),
                          ({"Origin": origin(c), "Content-Type": "multipart/form-data; boundary=x"}, 415),
                          ({"Content-Type": "application/yaml"}, 403)]:  # a cookie write without Origin
        r = await c.post(url, data=body, headers={**cookie, **headers})
        assert r.status == code, (headers, await r.text())
        assert "error" in await r.json()
    assert "evil" not in vs_names(reg)
    r = await c.post(url, data=body, headers={**cookie, "Origin": origin(c), "Content-Type": "application/yaml"})
    assert r.status == 201, await r.json()
    r = await c.delete(f"{url}/evil", headers={**cookie, "Origin": "http://evil.example"})
    assert r.status == 403 and "evil" in vs_names(reg)
    r = await c.delete(f"{url}/evil", headers={**cookie, "Origin": origin(c)})
    assert r.status == 200 and "evil" not in vs_names(reg)


async def test_foreign_hosts_are_refused_before_anything_else(anon: tuple[Client, Registry]) -> None:
    c, reg = anon
    url = f"/api/namespaces/{NS}/istio/VirtualService/reviews"
    for method in ("GET", "PUT", "DELETE"):
        for host in ("attacker.example", f"attacker.example:{c.port}", "127.0.0.1", f"127.0.0.1:{c.port + 1}",
                     f"127.0.0.2:{c.port}"):
            r = await c.request(method, url, headers={**BEARER, "Host": host, "Content-Type": "application/json"},
                                data="{}")
            assert r.status == 403, (method, host)
            assert "DNS-rebinding" in (await r.json())["error"]
    r = await c.get("/graph", headers={**BEARER, "Host": "attacker.example"})
    assert r.status == 403 and "DNS-rebinding" in await r.text()
    assert "reviews" in vs_names(reg)
    for host in (f"localhost:{c.port}", f"LOCALHOST:{c.port}", f"[::1]:{c.port}", f"127.0.0.1:{c.port}"):
        assert (await c.get(url, headers={**BEARER, "Host": host})).status == 200, host


async def test_no_cors_and_no_framing(anon: tuple[Client, Registry], tmp_path: Path) -> None:
    c, _ = anon
    cookie = await login(c, tmp_path)
    for method, path in (("OPTIONS", "/api/namespaces"), ("GET", "/api/namespaces"), ("GET", "/graph"),
                         ("GET", "/login"), ("OPTIONS", "/login")):
        r = await c.request(method, path, headers={**cookie, "Origin": "http://evil.example",
                                                   "Access-Control-Request-Method": "PUT"})
        assert r.status in (401, 403, 404, 405), (method, path, r.status)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = await c.get("/graph", headers=cookie)
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"


async def test_the_redirect_stays_on_this_server(anon: tuple[Client, Registry], tmp_path: Path) -> None:
    c, _ = anon
    for path in ("//evil.example/x", "/\\evil.example/x"):
        url = URL(f"http://127.0.0.1:{c.port}{path}?token={read_login_token(tmp_path)}", encoded=True)
        r = await c.session.get(url, allow_redirects=False)
        assert r.status == 302
        loc = r.headers["Location"]
        assert loc.startswith("/") and not loc.startswith("//") and not loc.startswith("/\\"), loc


async def test_sessions_survive_a_restart_and_expire(tmp_path: Path) -> None:
    a = console_auth(tmp_path)
    value = a.sessions.issue()
    assert console_auth(tmp_path).sessions.valid(value)  # the daemon restarted: same key file
    assert console_auth(tmp_path).login.consume(str(read_login_token(tmp_path)))  # the token file too
    later = Sessions(b"k", ttl_s=60, now=lambda: 1_000_000.0)
    v = later.issue()
    assert later.valid(v)
    assert not Sessions(b"k", ttl_s=60, now=lambda: 1_000_061.0).valid(v)
    assert not Sessions(b"other", ttl_s=60, now=lambda: 1_000_000.0).valid(v)
    assert not later.valid(v[:-1] + ("0" if v[-1] != "0" else "1"))
    for junk in ("", "a.b", "x.y.z", "1.2.3.4", "9" * 40 + ".a.b"):
        assert not later.valid(junk)


def test_token_from_input() -> None:
    assert token_from_input("  abc \n") == "abc"
    assert token_from_input("http://127.0.0.1:20001/graph?namespace=t&token=abc%2Dd") == "abc-d"
    assert token_from_input("token=xyz") == "xyz"


def test_host_allowed() -> None:
    assert host_allowed("127.0.0.1:20001", 20001) and host_allowed("localhost:20001", 20001)
    assert host_allowed("[::1]:20001", 20001) and host_allowed("127.0.0.1", 80)
    for bad in (None, "", "127.0.0.1", "attacker.example:20001", "127.0.0.1:20002", "localhost.:20001",
                "127.0.0.1:20001.attacker.example", "0.0.0.0:20001"):
        assert not host_allowed(bad, 20001), bad
