"""Decoding of the Kubernetes protobuf wire format for the few bodies kubectl sends that way.

kubectl 1.35's typed clients (e.g. `kubectl create namespace`) send `application/vnd.kubernetes.protobuf`
bodies: the magic `k8s\\0`, then a `runtime.Unknown` {typeMeta, raw} whose `raw` is the object's proto.
Called by `sluice.api.server` to turn such a body into the JSON dict the registry expects. Only the kinds
kubectl creates through typed clients are described; anything else is answered with 415 by the caller.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

__all__ = ["decode", "ProtobufError", "MAGIC"]

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            out.append((num, v))
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtobufError("truncated field")
            out.append((num, buf[i:i + n]))
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > len(buf):
                raise ProtobufError("truncated field")
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _str(v: int | bytes) -> str:
    if not isinstance(v, bytes):
        raise ProtobufError("expected a string field")
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError("a string field is not valid UTF-8") from None


def _map(v: int | bytes) -> tuple[str, str]:
    if not isinstance(v, bytes):
        raise ProtobufError("expected a map entry")
    k = val = ""
    for n, x in _fields(v):
        if n == 1:
            k = _str(x)
        elif n == 2:
            val = _str(x)
    return k, val


def _object_meta(buf: bytes) -> dict[str, Any]:
    m: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for n, v in _fields(buf):
        if n in names:
            if _str(v):  # proto3 writes empty strings; JSON omits them
                m[names[n]] = _str(v)
        elif n in (11, 12):
            k, val = _map(v)
            m.setdefault("labels" if n == 11 else "annotations", {})[k] = val
        elif n == 14:
            m.setdefault("finalizers", []).append(_str(v))
    return m


def _namespace(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = _object_meta(v)
        elif n == 2 and isinstance(v, bytes):
            obj["spec"] = {"finalizers": [_str(x) for k, x in _fields(v) if k == 1]}
    return obj


def _configmap(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = _object_meta(v)
        elif n == 2:
            k, val = _map(v)
            obj.setdefault("data", {})[k] = val
        elif n == 4 and isinstance(v, int):
            obj["immutable"] = bool(v)
    return obj


def _bytes_map(v: int | bytes) -> tuple[str, str]:
    """A map<string, bytes> entry, its value base64-encoded as JSON carries []byte."""
    if not isinstance(v, bytes):
        raise ProtobufError("expected a map entry")
    k, val = "", b""
    for n, x in _fields(v):
        if n == 1:
            k = _str(x)
        elif n == 2 and isinstance(x, bytes):
            val = x
    return k, base64.b64encode(val).decode("ascii")


def _secret(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = _object_meta(v)
        elif n == 2:
            k, val = _bytes_map(v)
            obj.setdefault("data", {})[k] = val
        elif n == 3 and _str(v):
            obj["type"] = _str(v)
        elif n == 4:
            k, text = _map(v)
            obj.setdefault("stringData", {})[k] = text
        elif n == 5 and isinstance(v, int):
            obj["immutable"] = bool(v)
    return obj


def _service_account(buf: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for n, v in _fields(buf):
        if n == 1 and isinstance(v, bytes):
            obj["metadata"] = _object_meta(v)
    return obj


_DECODERS: dict[tuple[str, str], Callable[[bytes], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode(body: bytes) -> dict[str, Any] | None:
    """The object as JSON, or None when its kind is not one this module knows."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    for n, v in _fields(body[len(MAGIC):]):
        if n == 1 and isinstance(v, bytes):
            for m, x in _fields(v):
                if m == 1:
                    api_version = _str(x)
                elif m == 2:
                    kind = _str(x)
        elif n == 2 and isinstance(v, bytes):
            raw = v
    fn = _DECODERS.get((api_version, kind))
    if fn is None:
        return None
    obj = fn(raw)
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj
