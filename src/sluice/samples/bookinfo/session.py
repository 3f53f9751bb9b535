"""productpage's login session: a signed cookie holding the user name (Flask keeps it the same way).

The signing key is fixed, as the original's is, so that any productpage replica (and a restarted one)
accepts a cookie another one issued; the cookie only selects `end-user` routing in a demo, it guards nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

__all__ = ["COOKIE_NAME", "encode_session", "decode_session"]

COOKIE_NAME = "session"
_KEY = b"sluice-bookinfo-productpage-session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str) -> str:
    return _b64(hmac.new(_KEY, payload.encode("ascii"), hashlib.sha256).digest())


def encode_session(user: str) -> str:
    payload = _b64(json.dumps({"user": user}, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_sign(payload)}"


def decode_session(value: str | None) -> str | None:
    """The user in a valid cookie value, else None (tampered, malformed or absent)."""
    if not value or "." not in value:
        return None
    payload, _, signature = value.rpartition(".")
    try:
        if not hmac.compare_digest(signature, _sign(payload)):
            return None
        data = json.loads(_unb64(payload))
    except (ValueError, UnicodeError):
        return None
    user = data.get("user") if isinstance(data, dict) else None
    return user if isinstance(user, str) and user else None
