"""Per-invocation state shared by commands: global flags (`-n`, `--kubeconfig`, `--context`) and the lazy API client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from sluice.client.api import ApiClient
from sluice.client.kubeconfig import Kubeconfig, load_kubeconfig

__all__ = ["Session", "global_options", "session"]

F = TypeVar("F", bound=Callable[..., Any])

_META = "sluice.session"


class Session:
    """What every command needs; built once per process and kept in click's shared `ctx.meta`."""

    def __init__(self) -> None:
        self.namespace_flag: str | None = None
        self.kubeconfig_flag: str | None = None
        self.context_flag: str | None = None
        self._kubeconfig: Kubeconfig | None = None
        self._client: ApiClient | None = None

    @property
    def kubeconfig(self) -> Kubeconfig:
        if self._kubeconfig is None:
            self._kubeconfig = load_kubeconfig(self.kubeconfig_flag)
        return self._kubeconfig

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.kubeconfig.rest_config(self.context_flag))
        return self._client

    @property
    def namespace(self) -> str:
        """`-n` if given, else the context's namespace (kubectl's ToRawKubeConfigLoader().Namespace())."""
        return self.namespace_flag or self.client.namespace

    @property
    def namespace_explicit(self) -> bool:
        return bool(self.namespace_flag)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def session(ctx: click.Context | None = None) -> Session:
    ctx = ctx or click.get_current_context()
    s = ctx.meta.get(_META)
    if not isinstance(s, Session):
        s = Session()
        ctx.meta[_META] = s
    return s


def _store(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            setattr(session(ctx), attr, value)

    return callback


def global_options(f: F) -> F:
    """Accept kubectl's global flags before or after the verb (`sluice -n x get vs`, `sluice get vs -n x`)."""
    opts = [
        click.option("-n", "--namespace", expose_value=False, callback=_store("namespace_flag"),
                     help="If present, the namespace scope for this CLI request."),
        click.option("--kubeconfig", expose_value=False, callback=_store("kubeconfig_flag"),
                     help="Path to the kubeconfig file to use for CLI requests."),
        click.option("--context", expose_value=False, callback=_store("context_flag"),
                     help="The name of the kubeconfig context to use."),
    ]
    wrapped: Any = f
    for opt in reversed(opts):
        wrapped = opt(wrapped)
    return cast(F, wrapped)
