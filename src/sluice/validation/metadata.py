"""ObjectMeta checks every kind shares (names, namespaces, labels, annotations), with apimachinery's messages.

Called by the API server's registry on every create and update, before the kind's own validation.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.validation.field import FieldError, Path

__all__ = ["validate_metadata", "dns1123_label_error", "dns1123_subdomain_error"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(f"^{_LABEL}$")
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QNAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_QNAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
              "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
              "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def dns1123_label_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _LABEL_RE.match(value) else _LABEL_MSG


def dns1123_subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN_RE.match(value) else _SUBDOMAIN_MSG


def qualified_name_errors(key: str) -> list[str]:
    prefix, sep, name = key.rpartition("/")
    errs: list[str] = []
    if sep and (not prefix or dns1123_subdomain_error(prefix)):
        errs.append("prefix part " + (dns1123_subdomain_error(prefix) or "must be non-empty"))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _QNAME_RE.match(name):
        errs.append(_QNAME_MSG)
    return errs


def validate_metadata(meta: Any, *, namespaced: bool, name_is_label: bool = False) -> list[FieldError]:
    """Checks `metadata`: name present and well-formed, labels and annotations well-formed."""
    p = Path("metadata")
    if not isinstance(meta, dict):
        return [FieldError.required(p, "")]
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            errs.append(FieldError.required(p.child("name"), "name or generateName is required"))
    elif not isinstance(name, str):
        errs.append(FieldError.invalid(p.child("name"), name, "must be a string"))
    else:
        msg = dns1123_label_error(name) if name_is_label else dns1123_subdomain_error(name)
        if msg:
            errs.append(FieldError.invalid(p.child("name"), name, msg))
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            errs.append(FieldError.invalid(p.child("labels"), labels, "must be a map of string keys to string values"))
        else:
            for k, v in labels.items():
                for m in qualified_name_errors(k):
                    errs.append(FieldError.invalid(p.child("labels"), k, m))
                if not isinstance(v, str):
                    errs.append(FieldError.invalid(p.child("labels"), v, "label values must be strings"))
                elif len(v) > 63:
                    errs.append(FieldError.invalid(p.child("labels"), v, "must be no more than 63 characters"))
                elif not _LABEL_VALUE_RE.match(v):
                    errs.append(FieldError.invalid(p.child("labels"), v, _VALUE_MSG))
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            errs.append(FieldError.invalid(p.child("annotations"), annotations,
                                           "must be a map of string keys to string values"))
        else:
            total = 0
            for k, v in annotations.items():
                for m in qualified_name_errors(k):
                    errs.append(FieldError.invalid(p.child("annotations"), k, m))
                if not isinstance(v, str):
                    errs.append(FieldError.invalid(p.child("annotations").key(k), v, "must be a string"))
                else:
                    total += len(k) + len(v)
            if total > 256 * 1024:
                errs.append(FieldError(errs[0].type if errs else FieldError.required("").type,
                                       p.child("annotations"), detail="may not be more than 262144 bytes"))
    return errs
