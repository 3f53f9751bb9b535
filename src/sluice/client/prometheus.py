"""A small client for the Prometheus HTTP API: sluice's embedded one on the metrics port, or an external
Prometheus when `prometheus_url` is set in `SLUICE_HOME/config.yaml`. Used by `sluice query` and `sluice stat`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

__all__ = ["PromClient", "PromError", "prometheus_url"]


class PromError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class _Home(Protocol):
    """What `prometheus_url` reads of `sluice.daemon.state.Home` (a layer above this one, so not imported)."""

    def load_options(self, overrides: None) -> Any: ...

    def read_run(self) -> dict[str, Any] | None: ...


def prometheus_url(home: _Home) -> str:
    opts = home.load_options(None)
    if opts.prometheus_url:
        return str(opts.prometheus_url).rstrip("/")
    run = home.read_run() or {}
    return f"http://127.0.0.1:{int(run.get('metrics_port') or opts.metrics_port)}"


class PromClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read())
            except ValueError:
                raise PromError("http", f"{e.code} {e.reason} from {self.base}") from None
        except (OSError, ValueError) as e:
            raise PromError("unavailable", f"cannot reach the Prometheus API at {self.base}: {e}") from None
        if body.get("status") != "success":
            raise PromError(str(body.get("errorType") or "error"), str(body.get("error") or "unknown error"))
        return body.get("data")

    def query(self, expr: str, time: str | None = None) -> Any:
        params = {"query": expr}
        if time:
            params["time"] = time
        return self._get("/api/v1/query", params)

    def query_range(self, expr: str, start: str, end: str, step: str) -> Any:
        return self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
