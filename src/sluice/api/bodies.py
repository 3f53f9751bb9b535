"""Request bodies turned into JSON values, within `sluice.kube.decoding`'s limits, with kube-apiserver's errors.

Called by the API server (`sluice.api.server`) for small bodies on its event loop and by the body worker
process (`sluice.api.body_worker`) for large ones, so both answer the same `Status` for the same body. Pure:
imports nothing of the HTTP server.
"""

from __future__ import annotations

from typing import Any

from sluice.api import protobuf
from sluice.api.errors import ApiError
from sluice.kube import decoding

__all__ = ["decode_object", "decode_error"]

# Bodies kube-apiserver decodes; form posts (a browser's default) and anything else get its 415.
_JSON_TYPES = ("application/json", "")
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_ACCEPTED = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


def decode_object(body: bytes, content_type: str, kind: str = "") -> Any:
    """The request body as a JSON value, within `sluice.kube.decoding`'s limits; errors are `Status`es."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/octet-stream":  # aiohttp's value for a missing header: kube-apiserver reads JSON
        ctype = ""
    if ctype == "application/vnd.kubernetes.protobuf":
        try:
            obj = protobuf.decode(body)
        except protobuf.ProtobufError as e:
            raise ApiError.bad_request(f"couldn't decode the protobuf request body: {e}") from None
        if obj is None:
            raise ApiError.unsupported_media_type(ctype, ["application/json", "application/yaml"])
        return obj
    if ctype not in _JSON_TYPES + _YAML_TYPES:
        raise ApiError.unsupported_media_type(ctype, _ACCEPTED)
    if not body.strip():
        raise ApiError.bad_request("the request body is empty; send a JSON or YAML object")
    try:
        if ctype in _YAML_TYPES:
            return decoding.decode_yaml(body)
        return decoding.decode_json(body)
    except decoding.TooLarge:
        raise ApiError.too_large() from None
    except decoding.DecodeError as e:
        raise decode_error(e, kind) from None


def decode_error(e: decoding.DecodeError, kind: str) -> ApiError:
    """kube-apiserver's wording for a body it cannot turn into an object (`transformDecodeError`)."""
    what = f"the object provided is unrecognized (must be of type {kind or 'Object'})"
    if e.field:
        return ApiError.bad_request(f"{what}: {e.field}: {e.message}",
                                    [{"reason": "FieldValueInvalid", "message": e.message, "field": e.field}])
    return ApiError.bad_request(f"{what}: {e.message}")
