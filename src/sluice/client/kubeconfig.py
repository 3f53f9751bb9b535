"""Loading a kubeconfig: which file, which context, and the resulting connection settings."""

from __future__ import annotations

import base64
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sluice.client.errors import ClientError
from sluice.paths import home_from_env

__all__ = ["Kubeconfig", "RestConfig", "default_path", "load_kubeconfig", "redact", "sluice_home"]


def sluice_home() -> Path:
    return home_from_env()


def default_path(explicit: str | None = None) -> list[Path]:
    """The kubeconfig files to read, in kubectl's precedence: the flag, then `$KUBECONFIG`
    (a path list, merged, first file wins per entry), then `$SLUICE_HOME/kubeconfig`."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        if paths:
            return paths
    return [sluice_home() / "kubeconfig"]


@dataclass(frozen=True)
class RestConfig:
    """Everything needed to talk to one API server."""

    server: str
    namespace: str = "default"
    token: str | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    client_cert_data: bytes | None = None  # PEM
    client_key_data: bytes | None = None  # PEM
    context: str = ""


@dataclass
class Kubeconfig:
    """A merged kubeconfig document and the paths it came from."""

    paths: list[Path]
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def current_context(self) -> str:
        return str(self.doc.get("current-context") or "")

    def _named(self, section: str, name: str) -> dict[str, Any] | None:
        for entry in self.doc.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                inner = entry.get(section[:-1])
                return inner if isinstance(inner, dict) else {}
        return None

    def rest_config(self, context: str | None = None) -> RestConfig:
        ctx_name = context or self.current_context
        if not ctx_name:
            raise ClientError("current-context is not set")
        ctx = self._named("contexts", ctx_name)
        if ctx is None:
            raise ClientError(f'context was not found for specified context: {ctx_name}')
        cluster_name = str(ctx.get("cluster") or "")
        cluster = self._named("clusters", cluster_name)
        if cluster is None:
            raise ClientError(f'cluster "{cluster_name}" was not found in kubeconfig for context "{ctx_name}"')
        user = self._named("users", str(ctx.get("user") or "")) or {}
        server = str(cluster.get("server") or "")
        if not server:
            raise ClientError("no server found for cluster " + repr(cluster_name))
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = _read(user["tokenFile"]).decode().strip()
        return RestConfig(
            server=server.rstrip("/"),
            namespace=str(ctx.get("namespace") or "default"),
            token=str(token) if token else None,
            ca_data=_data_or_file(cluster, "certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            client_cert_data=_data_or_file(user, "client-certificate"),
            client_key_data=_data_or_file(user, "client-key"),
            context=ctx_name,
        )


def _read(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise ClientError(f"unable to read {path}: {e.strerror}") from e


def _data_or_file(section: dict[str, Any], key: str) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data))
        except ValueError as e:
            raise ClientError(f"illegal base64 data in {key}-data") from e
    path = section.get(key)
    return _read(str(path)) if path else None


def load_kubeconfig(explicit: str | None = None) -> Kubeconfig:
    """Read and merge the kubeconfig files (first definition of a name wins, as in kubectl)."""
    paths = default_path(explicit)
    merged: dict[str, Any] = {}
    found = False
    for p in paths:
        try:
            text = p.read_text()
        except FileNotFoundError:
            if explicit:
                raise ClientError(f"stat {p}: no such file or directory") from None
            continue
        except OSError as e:
            raise ClientError(f"unable to read {p}: {e.strerror}") from e
        found = True
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ClientError(f"error loading config file \"{p}\": {e}") from e
        if not isinstance(doc, dict):
            raise ClientError(f'error loading config file "{p}": not a kubeconfig')
        _merge(merged, doc)
    if not found:
        raise ClientError(
            f"no kubeconfig found at {paths[0]}: start the control plane with `sluice up` or pass --kubeconfig"
        )
    return Kubeconfig(paths=paths, doc=merged)


def _merge(into: dict[str, Any], doc: dict[str, Any]) -> None:
    for key, value in doc.items():
        if key in ("clusters", "contexts", "users") and isinstance(value, list):
            have = {e.get("name") for e in into.setdefault(key, []) if isinstance(e, dict)}
            into[key].extend(e for e in value if isinstance(e, dict) and e.get("name") not in have)
        elif key not in into or not into[key]:
            into[key] = value


_DATA_KEYS = ("certificate-authority-data", "client-certificate-data", "client-key-data")
_SECRET_KEYS = ("token", "password")


def redact(doc: dict[str, Any]) -> dict[str, Any]:
    """Hide secrets like `kubectl config view`: byte data → DATA+OMITTED, tokens → REDACTED."""
    out = copy.deepcopy(doc)
    for section, inner in (("clusters", "cluster"), ("users", "user")):
        for entry in out.get(section) or []:
            body = entry.get(inner) if isinstance(entry, dict) else None
            if not isinstance(body, dict):
                continue
            for k in _DATA_KEYS:
                if body.get(k):
                    body[k] = "DATA+OMITTED"
            for k in _SECRET_KEYS:
                if body.get(k):
                    body[k] = "REDACTED"
    return out
