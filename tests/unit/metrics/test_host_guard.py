"""The Prometheus-compatible port stays open for reads, as Prometheus is, but serves only requests that name it by
its loopback address and port (DNS-rebinding defence), and sends no CORS headers."""

from __future__ import annotations

from tests.unit.metrics.served import served

from sluice.metrics.api import metrics_app
from sluice.metrics.promql import Engine
from sluice.metrics.tsdb import TSDB


async def test_reads_are_open_but_the_host_is_checked() -> None:
    tsdb = TSDB(None)
    tsdb.append(1_000, [((("__name__", "up"),), 1.0)], scrape_target="t")
    app = metrics_app(tsdb, lambda lookback: Engine(tsdb), metrics_text=lambda: "up 1\n")
    try:
        async with served(app) as c:
            paths = ("/api/v1/query?query=up&time=1", "/metrics", "/", "/api/v1/labels",
                     "/api/v1/status/buildinfo")
            for path in paths:
                for host in (f"127.0.0.1:{c.port}", f"localhost:{c.port}", f"[::1]:{c.port}"):
                    r = await c.get(path, headers={"Host": host})  # no credential, as Prometheus
                    assert r.status == 200, (path, host)
                for host in ("attacker.example", f"attacker.example:{c.port}", f"127.0.0.1:{c.port + 1}"):
                    r = await c.get(path, headers={"Host": host, "Origin": "http://evil.example"})
                    text = await r.text()
                    assert r.status == 403 and "DNS-rebinding" in text, path
                    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            r = await c.post("/api/v1/query", data={"query": "up", "time": "1"},
                             headers={"Host": "attacker.example"})
            assert r.status == 403
            r = await c.get("/api/v1/query?query=up&time=1", headers={"Origin": "http://evil.example"})
            assert r.status == 200 and not [h for h in r.headers if h.lower().startswith("access-control-")]
    finally:
        tsdb.close()
