"""Secrets (core/v1): base64 data as Kubernetes checks and stores it.

`stringData` is folded into `data` on every write (kube-apiserver's Secret strategy), so only base64 values are
ever stored; `base64_error` gives the JSON decoder's message for a value that is not base64 (kube-apiserver
rejects the whole body with it); `decoded` reads one key back as bytes. Used by the API registry (defaults,
admission) and by the xDS translation (a gateway's `credentialName`). Values never go to a log.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["TLS", "OPAQUE", "fold_string_data", "base64_error", "decoded", "MAX_SIZE"]

TLS = "kubernetes.io/tls"
OPAQUE = "Opaque"
MAX_SIZE = 1024 * 1024  # kube's MaxSecretSize: the sum of the decoded values
_ALPHABET = re.compile(r"[A-Za-z0-9+/=\r\n]")


def fold_string_data(obj: dict[str, Any]) -> None:
    """`stringData` wins over `data` key by key and is not kept (kube's Secret PrepareForCreate/Update)."""
    plain = obj.pop("stringData", None)
    if isinstance(plain, dict) and plain:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for k, v in plain.items():
            data[str(k)] = base64.b64encode(str(v).encode()).decode("ascii")


def base64_error(value: str) -> str | None:
    """None when `value` is standard base64 (Go's encoding/json reading []byte; CR and LF are skipped), else
    its message: `illegal base64 data at input byte N`."""
    for i, ch in enumerate(value):
        if not _ALPHABET.fullmatch(ch):
            return f"illegal base64 data at input byte {i}"
    compact = value.replace("\r", "").replace("\n", "")
    stripped = compact.rstrip("=")
    if len(compact) % 4:  # a last quantum cut short: Go names where it starts
        return f"illegal base64 data at input byte {len(compact) - len(compact) % 4}"
    if "=" in stripped or len(compact) - len(stripped) > 2:  # padding inside, or too much of it
        return f"illegal base64 data at input byte {stripped.index('=') if '=' in stripped else len(stripped)}"
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return f"illegal base64 data at input byte {len(compact)}"
    return None


def decoded(secret: Mapping[str, Any], key: str) -> bytes | None:
    data = secret.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get(key), str):
        return None
    try:
        return base64.b64decode(str(data[key]).replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
