"""Istio's MeshConfig, the parts Sluice programs, read from the `mesh` key of ConfigMap `istio-system/istio`.

Istio keeps its mesh-wide settings there as MeshConfig YAML; istiod re-pushes every proxy when it changes.
Sluice reads:

- `outboundTrafficPolicy.mode` (`ALLOW_ANY`, the default: unknown destinations pass through; `REGISTRY_ONLY`:
  only services in the registry are reachable);
- the sidecars' file access log: `accessLogFile` (`""` turns it off, as Istio's default profile has it;
  `/dev/stdout` or `/dev/stderr` write it to the `istio-proxy` container log), `accessLogEncoding` (`TEXT` or
  `JSON`) and `accessLogFormat` (Istio's custom format: a format string for TEXT, a JSON object for JSON; empty
  for Istio's default one). Sluice's defaults are Istio's demo profile's, the log on in Istio's TEXT format,
  and a key the mesh config leaves out keeps Sluice's default. The gRPC access-log stream that Istio's
  metrics come from is not affected by any of these;
- `defaultConfig.holdApplicationUntilProxyStarts`: the injector puts a new pod's proxy first and holds its apps
  until the proxy is ready, unless the pod's own `proxy.istio.io/config` says otherwise (Istio merges the
  annotation's ProxyConfig over the mesh's `defaultConfig`); the other `defaultConfig` fields are warned about.

`problems` reads the same text for the API server, which returns them as warnings on the write (kubectl
prints them), and the push logs them: a mesh config that cannot be read leaves the defaults in force; an
`accessLogFormat` that Envoy would refuse leaves Istio's default format in force (as istiod does for JSON
that does not parse) instead of stopping every listener update. Pure: called by `PushContext.build`, the
API server's admission and its sidecar injector.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MeshConfig", "ALLOW_ANY", "REGISTRY_ONLY", "TEXT", "JSON", "DEV_STDOUT", "MESH_CONFIGMAP",
           "MESH_NAMESPACE", "parse_mesh_config", "mesh_config_from", "problems", "unapplied", "unapplied_what",
           "is_mesh_configmap", "format_error"]

log = logging.getLogger(__name__)

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"
_MODES = (REGISTRY_ONLY, ALLOW_ANY)  # the enum's order in Istio's mesh.proto
TEXT = "TEXT"
JSON = "JSON"
_ENCODINGS = (TEXT, JSON)  # the enum's order in Istio's mesh.proto (AccessLogEncoding)
DEV_STDOUT = "/dev/stdout"
# Where a sidecar's file access log can go here: off, or its istio-proxy container log (the shim keeps both of
# the proxy's streams). Another path (a file in Istio's container) has no place to go: warned, not applied.
_LOG_FILES = ("", DEV_STDOUT, "/dev/stderr")
MESH_CONFIGMAP = "istio"
MESH_NAMESPACE = "istio-system"
_MAX_MESH = 1 << 20
HOLD_APPLICATION = "holdApplicationUntilProxyStarts"


@dataclass(frozen=True)
class MeshConfig:
    outbound_policy: str = ALLOW_ANY
    access_log_file: str = DEV_STDOUT  # "" = no file access log
    access_log_encoding: str = TEXT
    access_log_format: str = ""  # "" = Istio's default format for the encoding; JSON: an object's JSON text
    hold_application: bool = False  # defaultConfig.holdApplicationUntilProxyStarts

    @property
    def istio_text_log(self) -> bool:
        """Whether the sidecars write Istio's default TEXT line to their container log (what the telemetry
        catch-up reads when ALS entries were lost)."""
        return self.access_log_file == DEV_STDOUT and self.access_log_encoding == TEXT and not self.access_log_format


def _decode(text: str) -> tuple[Any, str]:
    """The YAML document in `text` ({} for nothing), or the reason it cannot be read."""
    from sluice.kube.decoding import DecodeError, decode_yaml

    try:
        doc = decode_yaml(text, _MAX_MESH) if text.strip() else {}
    except DecodeError as e:
        return None, f"{e}"
    return ({} if doc is None else doc), ""


def parse_mesh_config(text: str) -> tuple[MeshConfig, list[str]]:
    """The MeshConfig in `text` (YAML) and what is wrong with it; on an error, the defaults."""
    doc, error = _decode(text)
    config, errors, notes = _config_of(doc, error)
    return config, errors + notes


def _enum(value: Any, names: tuple[str, ...]) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value


def _config_of(doc: Any, error: str) -> tuple[MeshConfig, list[str], list[str]]:
    """The config, the errors that make the whole text unusable (the defaults stay), and the notes on settings
    that keep their default while the rest applies."""
    if error:
        return MeshConfig(), [error], []
    if not isinstance(doc, Mapping):
        return MeshConfig(), [f"cannot unmarshal {type(doc).__name__} into MeshConfig: expected an object"], []
    mode: Any = ALLOW_ANY
    policy = doc.get("outboundTrafficPolicy")
    if policy is not None:
        if not isinstance(policy, Mapping):
            return MeshConfig(), ["outboundTrafficPolicy: expected an object"], []
        mode = _enum(policy.get("mode", ALLOW_ANY), _MODES)
        if mode not in _MODES:
            return MeshConfig(), [f'outboundTrafficPolicy.mode: unknown value "{mode}" for enum '
                                  f'istio.mesh.v1alpha1.MeshConfig.OutboundTrafficPolicy.Mode (want one of '
                                  f'{", ".join(_MODES)})'], []
    defaults = doc.get("defaultConfig")
    if defaults is not None and not isinstance(defaults, Mapping):
        return MeshConfig(), [f"defaultConfig: expected an object, not {type(defaults).__name__}"], []
    hold = (defaults or {}).get(HOLD_APPLICATION)
    if hold is not None and not isinstance(hold, bool):
        return MeshConfig(), [f"defaultConfig.{HOLD_APPLICATION}: expected a boolean, not {type(hold).__name__}"], []

    def setting(key: str, default: Any) -> Any:  # a key left out or null keeps Sluice's default
        value = doc.get(key)
        return default if value is None else value

    encoding = _enum(setting("accessLogEncoding", TEXT), _ENCODINGS)
    if encoding not in _ENCODINGS:
        return MeshConfig(), [f'accessLogEncoding: unknown value "{encoding}" for enum '
                              f'istio.mesh.v1alpha1.MeshConfig.AccessLogEncoding (want one of '
                              f'{", ".join(_ENCODINGS)})'], []
    path = setting("accessLogFile", DEV_STDOUT)
    fmt = setting("accessLogFormat", "")
    for key, value in (("accessLogFile", path), ("accessLogFormat", fmt)):
        if not isinstance(value, str):
            return MeshConfig(), [f"{key}: expected a string, not {type(value).__name__}"], []
    notes = []
    if fmt and (why := format_error(fmt, encoding)):
        notes.append(f"accessLogFormat: {why}; the sidecars use Istio's default {encoding} format")
        fmt = ""
    if encoding == JSON and fmt:
        fmt = json.dumps(json.loads(fmt), separators=(",", ":"))
    elif fmt and not fmt.endswith("\n"):
        fmt += "\n"  # Istio ends every TEXT format with a newline if it has none
    return MeshConfig(outbound_policy=str(mode), access_log_file=path if path in _LOG_FILES else DEV_STDOUT,
                      access_log_encoding=str(encoding), access_log_format=fmt,
                      hold_application=hold is True), [], notes


# Envoy's format parser (Envoy 1.40, checked with `envoy --mode validate`): `%%` is a literal `%`; any other `%`
# starts a command operator `%NAME%`, `%NAME(args)%` or `%NAME(args):LEN%` with NAME in capitals, digits and `_`.
# An unknown NAME passes here and is refused by Envoy (a NACK, as Istio's istiod would get).
_COMMAND = re.compile(r"%(?:%|[A-Z0-9_]+(?:\([^)]*\))?(?::[0-9]+)?%)")
_MAX_FORMAT = 16 * 1024


def format_error(fmt: str, encoding: str = TEXT) -> str:
    """Why Envoy would refuse `fmt` as an access-log format of `encoding` (a format string for TEXT, a JSON
    object whose string values are format strings for JSON); empty if it would not."""
    if len(fmt) > _MAX_FORMAT:
        return f"longer than {_MAX_FORMAT} characters"
    if encoding == JSON:
        try:
            doc = json.loads(fmt, parse_constant=_no_constant)
        except ValueError as e:
            return f"not a JSON object: {e}"
        if not isinstance(doc, dict):
            return "not a JSON object"
        return next((why for s in _strings(doc) if (why := format_error(s))), "")
    pos = 0
    while (at := fmt.find("%", pos)) >= 0:
        m = _COMMAND.match(fmt, at)
        if m is None:
            return f"no valid command operator at position {at} (a literal % is written %%)"
        pos = m.end()
    return ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# The MeshConfig settings Sluice acts on (the others are stored but not applied, said on write and by analyze):
# an object's sub-settings, or None for a plain value.
_APPLIED: dict[str, frozenset[str] | None] = {
    "outboundTrafficPolicy": frozenset({"mode"}), "accessLogFile": None, "accessLogEncoding": None,
    "accessLogFormat": None, "defaultConfig": frozenset({"holdApplicationUntilProxyStarts"})}


def unapplied(text: str) -> list[str]:
    """The paths (`accessLogFile`, `outboundTrafficPolicy.egressProxy`) of the settings in mesh config `text` that
    Sluice stores but does not act on yet; empty for text that cannot be read (`parse_mesh_config` says why)."""
    return _unapplied_in(_decode(text)[0])


def _unapplied_in(doc: Any) -> list[str]:
    if not isinstance(doc, Mapping):
        return []
    out = []
    for key, value in doc.items():
        if key not in _APPLIED:
            out.append(str(key))
        elif key == "accessLogFile" and isinstance(value, str) and value not in _LOG_FILES:
            out.append(str(key))  # a file in Istio's container: the log stays in the container log
        elif isinstance(value, Mapping) and (subs := _APPLIED[key]) is not None:
            out.extend(f"{key}.{sub}" for sub in value if sub not in subs)
    return out


def is_mesh_configmap(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") == "ConfigMap" and meta.get("name") == MESH_CONFIGMAP
            and meta.get("namespace") == MESH_NAMESPACE)


def problems(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """Warnings for a write of the mesh ConfigMap whose `mesh` key cannot be read (empty for anything else)."""
    if kind != "ConfigMap" or not is_mesh_configmap({**obj, "kind": kind}):
        return []
    data = obj.get("data") or {}
    mesh = data.get("mesh") if isinstance(data, Mapping) else None
    if not isinstance(mesh, str):
        return []
    doc, error = _decode(mesh)  # once: the document may be up to the ConfigMap's size
    _, errors, notes = _config_of(doc, error)
    where = f"ConfigMap {MESH_NAMESPACE}/{MESH_CONFIGMAP}"
    return [f"{where}: invalid mesh config in data.mesh, the mesh keeps its defaults (outboundTrafficPolicy "
            f"ALLOW_ANY, access log to /dev/stdout in TEXT): {e}" for e in errors] + [
        f"{where}: data.mesh.{n}" for n in notes] + [
        f"{where} {unapplied_what(path)}" for path in _unapplied_in(doc)]


def unapplied_what(path: str) -> str:
    if path == "accessLogFile":
        return (f"data.mesh.{path} is stored but not applied: a sidecar's access log goes to its istio-proxy "
                f"container log ({DEV_STDOUT} or /dev/stderr), or nowhere (\"\"); it stays at {DEV_STDOUT}")
    return f"data.mesh.{path} is stored but not applied: Sluice does not act on this mesh setting yet"


# The text read last and its config: every push and every pod create read the mesh config; it is parsed, and its
# problems logged, once per text.
_last: list[tuple[str, MeshConfig]] = [("", MeshConfig())]


def mesh_config_from(configmaps: Iterable[Mapping[str, Any]]) -> MeshConfig:
    """The mesh config of the stored ConfigMaps (`istio-system/istio`, key `mesh`), else the defaults."""
    for cm in configmaps:
        if not is_mesh_configmap(cm):
            continue
        data = cm.get("data") or {}
        text = data.get("mesh") if isinstance(data, Mapping) else None
        if not isinstance(text, str):
            return MeshConfig()
        last_text, last_config = _last[0]
        if text == last_text:
            return last_config
        doc, error = _decode(text)
        config, errors, notes = _config_of(doc, error)
        _last[0] = (text, config)
        for e in errors:
            log.warning("ConfigMap %s/%s: invalid mesh config, using the defaults: %s", MESH_NAMESPACE,
                        MESH_CONFIGMAP, e)
        for n in notes:
            log.warning("ConfigMap %s/%s: data.mesh.%s", MESH_NAMESPACE, MESH_CONFIGMAP, n)
        return config
    return MeshConfig()
