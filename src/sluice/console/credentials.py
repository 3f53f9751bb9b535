"""The console's secrets under `SLUICE_HOME/console/` (directory 0700, files 0600) and the checks on them.

- `login-token`: the one-time login token. `sluice console` (and `demo`, `status`) read it and print
  `http://127.0.0.1:20001/<page>?token=…`; the daemon accepts it once, turns it into a session cookie and writes
  a fresh one, so a printed address that was already used (or leaked from the browser's history) logs no one in.
- `session-key`: the key that signs session cookies. Sessions are stateless (`<issued>.<nonce>.<HMAC>`), so they
  survive a daemon restart; they expire after `SESSION_TTL_S`. Deleting the key (and restarting the daemon)
  ends every session.

Every comparison of a secret is `hmac.compare_digest` (constant time).

Callers: the daemon (`sluice.console.auth.ConsoleAuth.for_home`) and the CLI (`sluice.daemon.control`, which
only reads the login token).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

__all__ = ["console_dir", "login_token_path", "read_login_token", "LoginTokens", "Sessions", "SESSION_TTL_S",
           "token_from_input"]

SESSION_TTL_S = 7 * 86400
_SESSION_DOMAIN = b"sluice-console-session\x00"


def console_dir(home_root: Path) -> Path:
    return home_root / "console"


def login_token_path(home_root: Path) -> Path:
    return console_dir(home_root) / "login-token"


def _session_key_path(home_root: Path) -> Path:
    return console_dir(home_root) / "session-key"


def _write_secret(path: Path, text: str) -> None:
    """Atomically, with 0600 permissions from the first byte (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def _read_secret(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def read_login_token(home_root: Path) -> str | None:
    """The current login token (None: no daemon has written one, or this user cannot read it)."""
    return _read_secret(login_token_path(home_root))


def _new_token() -> str:
    return secrets.token_urlsafe(32)


class LoginTokens:
    """The one-time login token: one valid at a time, replaced as soon as it is used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        current = _read_secret(path)
        if current is None:
            current = _new_token()
            _write_secret(path, current)
        else:
            os.chmod(path, 0o600)
        self._current = current

    def consume(self, candidate: str) -> bool:
        """True (and a fresh token written for the next login) when `candidate` is the current token."""
        if not candidate or not hmac.compare_digest(candidate.encode(), self._current.encode()):
            return False
        self._current = _new_token()
        _write_secret(self.path, self._current)
        return True


class Sessions:
    """Session cookie values: `<issued unix seconds>.<random nonce>.<HMAC-SHA256 of both under the key>`."""

    def __init__(self, key: bytes, ttl_s: int = SESSION_TTL_S, now: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._now = now

    @classmethod
    def for_home(cls, home_root: Path) -> Sessions:
        path = _session_key_path(home_root)
        key = _read_secret(path)
        if key is None:
            key = secrets.token_hex(32)
            _write_secret(path, key)
        else:
            os.chmod(path, 0o600)
        return cls(key.encode())

    def _sign(self, issued: str, nonce: str) -> str:
        return hmac.new(self._key, _SESSION_DOMAIN + f"{issued}.{nonce}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        issued, nonce = str(int(self._now())), secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._sign(issued, nonce)}"

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12:
            return False
        issued, nonce, sig = parts
        if not hmac.compare_digest(sig.encode(), self._sign(issued, nonce).encode()):
            return False
        age = self._now() - int(issued)
        return -300 <= age <= self.ttl_s  # a little clock skew back is fine; the future is not


def token_from_input(text: str) -> str:
    """What a user pasted into the login form: the token itself, or the whole address `sluice console` printed."""
    text = text.strip()
    if "token=" in text:
        query = urllib.parse.urlsplit(text).query if "?" in text else text
        found = urllib.parse.parse_qs(query).get("token")
        if found:
            return found[-1].strip()
    return text
