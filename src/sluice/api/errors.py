"""Kubernetes `Status` errors (apimachinery/pkg/api/errors), raised by handlers and rendered by the server.

kubectl prints these verbatim (`Error from server (NotFound): …`, `The VirtualService "reviews" is invalid: …`),
so the reason, code, message and details follow kube-apiserver exactly.
"""

from __future__ import annotations

from typing import Any

from sluice.resources.kinds import ResourceType
from sluice.validation.field import FieldError

__all__ = ["ApiError", "status"]


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None,
           ok: bool = False) -> dict[str, Any]:
    s: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success" if ok else "Failure", "message": message, "reason": reason,
                         "code": code}
    if details is not None:
        s["details"] = details
    if not reason:  # omitempty, as a webhook's refusal has none
        del s["reason"]
    if ok:
        s.pop("message")
        s.pop("reason", None)
    return s


class ApiError(Exception):
    """An error answered as a `Status` object with the given HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return status(self.code, self.reason, self.message, self.details)

    # -- constructors, one per apimachinery error -------------------------------------------------
    @classmethod
    def not_found(cls, rt: ResourceType | None, name: str, what: str | None = None) -> ApiError:
        resource = what or (rt.qualified if rt else "")
        details = {"name": name, "group": rt.group if rt else "", "kind": rt.plural if rt else resource}
        return cls(404, "NotFound", f'{resource} "{name}" not found', details)

    @classmethod
    def namespace_not_found(cls, namespace: str) -> ApiError:
        return cls(404, "NotFound", f'namespaces "{namespace}" not found',
                   {"name": namespace, "kind": "namespaces"})

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def conflict(cls, rt: ResourceType, name: str, detail: str | None = None) -> ApiError:
        detail = detail or ("the object has been modified; please apply your changes to the latest version "
                            "and try again")
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {detail}',
                   {"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
        agg = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
        causes = [{"reason": e.type.reason, "message": e.message, "field": e.field} for e in errors]
        return cls(422, "Invalid", f'{rt.kind_qualified} "{name}" is invalid: {agg}',
                   {"name": name, "group": rt.group, "kind": rt.kind, "causes": causes})

    @classmethod
    def bad_request(cls, message: str, causes: list[dict[str, str]] | None = None) -> ApiError:
        return cls(400, "BadRequest", message, {"causes": causes} if causes else None)

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: list[str]) -> ApiError:
        return cls(415, "UnsupportedMediaType",
                   f"the body of the request was in an unknown format - accepted media types include: "
                   f"{', '.join(accepted)}")

    @classmethod
    def method_not_allowed(cls, method: str) -> ApiError:
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @classmethod
    def too_large(cls) -> ApiError:
        return cls(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")

    @classmethod
    def expired(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def gone_path(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource")

    @classmethod
    def insufficient_storage(cls, path: str, detail: str) -> ApiError:
        # 507 (RFC 4918: the server cannot store what the request needs) rather than kube-apiserver's 500
        # "etcdserver: mvcc: database space exceeded", whose remedy (etcd compaction, defrag, alarm disarm)
        # does not apply here: what helps is free space on the store's disk, and the message says so.
        return cls(507, "InsufficientStorage",
                   f"insufficient storage: the disk holding {path} is full ({detail}); nothing was changed. "
                   "Free space on that filesystem and retry", {"causes": [{"reason": "InsufficientStorage",
                                                                         "message": detail}]})

    @classmethod
    def internal(cls, message: str) -> ApiError:
        return cls(500, "InternalError", f"Internal error occurred: {message}")
