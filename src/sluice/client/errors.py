"""Exceptions raised by the client: API errors carry the server's `Status` body."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ClientError", "ApiError", "ConnectionFailed", "ResourceTypeNotFound", "status_from_response"]


class ClientError(Exception):
    """A problem on the client side (bad kubeconfig, unknown type, …); printed as `error: <message>`."""


class ConnectionFailed(ClientError):
    """The API server could not be reached."""


class ResourceTypeNotFound(ClientError):
    def __init__(self, name: str) -> None:
        super().__init__(f'the server doesn\'t have a resource type "{name}"')
        self.name = name


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` is the Kubernetes `Status` object."""

    def __init__(self, code: int, status: dict[str, Any]) -> None:
        self.code = code
        self.status = status
        super().__init__(self.message)

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.status.get("message") or "")

    @property
    def details(self) -> dict[str, Any]:
        d = self.status.get("details")
        return d if isinstance(d, dict) else {}

    @property
    def causes(self) -> list[dict[str, Any]]:
        c = self.details.get("causes")
        return [x for x in c if isinstance(x, dict)] if isinstance(c, list) else []

    @property
    def not_found(self) -> bool:
        return self.code == 404


# The reasons client-go derives from a bare HTTP code when the body is not a Status
# (apimachinery/pkg/api/errors.NewGenericServerResponse).
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_from_response(code: int, body: bytes) -> dict[str, Any]:
    """Decode a `Status` body, or synthesise one like client-go does for non-Status answers."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        parsed.setdefault("code", code)
        return parsed
    reason = _REASONS.get(code, "InternalError" if code >= 500 else "Unknown")
    if code == 404:
        message = "the server could not find the requested resource"
    elif code == 401:
        message = "the server has asked for the client to provide credentials"
    elif code == 403:
        message = "forbidden"
    else:
        text = body.decode("utf-8", "replace").strip()
        message = f'an error on the server ("{text}") has prevented the request from succeeding'
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}
