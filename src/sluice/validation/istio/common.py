"""Shared checks for Istio's semantic validation: hosts, labels, durations, ports, headers, regexes, exportTo.

Used by the per-kind validators in this package (which the API server runs on every write).
Every check reports into a `Ctx` and never raises; wrong JSON types become TYPE_INVALID errors so one
malformed field cannot hide the rest of the object's errors.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sluice.validation.field import FINITE, ErrorType, FieldError, Path, Validation

__all__ = [
    "IstioOptions",
    "Ctx",
    "go_float",
    "is_dns1123_label",
    "is_wildcard_dns1123_label",
    "wildcard_domain_error",
    "fqdn_error",
    "is_ip",
    "ip_subnet_error",
    "parse_duration",
    "port_error",
    "host_matches",
    "host_subset_of",
    "check_labels",
    "check_duration",
    "check_port",
    "check_percent",
    "check_fraction_percent",
    "check_string_match",
    "check_regex",
    "check_header_name",
    "header_value_error",
    "check_export_to",
    "check_gateway_names",
    "check_workload_selector",
    "check_alpha_workload_selector",
    "HEADER_NAME_RE",
]


@dataclass(frozen=True)
class IstioOptions:
    """Mesh-wide switches that change validation.

    `relative_weights=False` keeps the pre-1.15 rule the user story depends on (multi-destination
    weights must sum to 100); True applies Istio >= 1.15 (weights are relative, only < 0 and an
    all-zero multi-destination route are errors).
    """

    relative_weights: bool = False


class Ctx:
    """Collects errors and warnings for one object, plus what the rules need to know about it."""

    def __init__(self, namespace: str, options: IstioOptions, name: str = "") -> None:
        self.namespace = namespace
        self.name = name
        self.options = options
        self.result = Validation()

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.result.error(FieldError.invalid(path, value, detail))

    def required(self, path: str, detail: str = "") -> None:
        self.result.error(FieldError.required(path, detail))

    def forbidden(self, path: str, detail: str) -> None:
        self.result.error(FieldError.forbidden(path, detail))

    def duplicate(self, path: str, value: Any) -> None:
        self.result.error(FieldError.duplicate(path, value))

    def not_supported(self, path: str, value: Any, supported: list[str]) -> None:
        self.result.error(FieldError.not_supported(path, value, supported))

    def type_invalid(self, path: str, value: Any, expected: str) -> None:
        self.result.error(FieldError(ErrorType.TYPE_INVALID, path, value, f"must be {expected}"))

    def warn(self, message: str) -> None:
        self.result.warn(message)

    # Typed accessors: absent or null gives the zero value; a wrong JSON type is reported once here.

    def obj(self, parent: dict[str, Any], key: str, path: Path) -> dict[str, Any] | None:
        v = parent.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            self.type_invalid(path.child(key), v, "an object")
            return None
        return v

    def lst(self, parent: dict[str, Any], key: str, path: Path) -> list[Any]:
        v = parent.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self.type_invalid(path.child(key), v, "a list")
            return []
        return v

    def str_(self, parent: dict[str, Any], key: str, path: Path) -> str:
        v = parent.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self.type_invalid(path.child(key), v, "a string")
            return ""
        return v

    def int_(self, parent: dict[str, Any], key: str, path: Path) -> int | None:
        v = parent.get(key)
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.type_invalid(path.child(key), v, "an integer")
            return None
        return v

    def num(self, parent: dict[str, Any], key: str, path: Path) -> float | None:
        v = parent.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.type_invalid(path.child(key), v, "a number")
            return None
        if not math.isfinite(v):
            self.invalid(path.child(key), v, FINITE)
            return None
        return float(v)

    def loose_num(self, parent: dict[str, Any], key: str, path: Path) -> float | None:
        """A number if `key` holds one (other types are the schema check's to report); NaN/±Inf are errors."""
        v = parent.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        if not math.isfinite(v):
            self.invalid(path.child(key), v, FINITE)
            return None
        return float(v)

    def bool_(self, parent: dict[str, Any], key: str, path: Path) -> bool:
        v = parent.get(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            self.type_invalid(path.child(key), v, "a boolean")
            return False
        return v

    def str_map(self, parent: dict[str, Any], key: str, path: Path) -> dict[str, str]:
        raw = self.obj(parent, key, path)
        if raw is None:
            return {}
        out: dict[str, str] = {}
        for k, v in raw.items():
            if not isinstance(v, str):
                self.type_invalid(path.child(key).key(k), v, "a string")
                continue
            out[k] = v
        return out

    def str_list(self, parent: dict[str, Any], key: str, path: Path) -> list[str]:
        out: list[str] = []
        for i, v in enumerate(self.lst(parent, key, path)):
            if not isinstance(v, str):
                self.type_invalid(path.child(key).index(i), v, "a string")
                continue
            out.append(v)
        return out


def go_float(v: float) -> str:
    """Format a float like Go's `%v` (150 not 150.0, 1e-05 for tiny values) so messages match Istio's."""
    if v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


# --- DNS names and hosts -------------------------------------------------------------------------

# Istio's label helpers accept upper case too (pkg/config/labels), so these do as well.
_DNS1123_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_WILDCARD_RE = re.compile(rf"^(?:\*|(?:\*|\*-)?{_DNS1123_LABEL})$")
_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_TAG_KEY_RE = re.compile(rf"^({_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*/)?({_QUALIFIED_NAME})$")
_LABEL_VALUE_RE = re.compile(rf"^(?:{_QUALIFIED_NAME})?$")


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS1123_RE.match(value))


def is_wildcard_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(_WILDCARD_RE.match(value))


def _precondition_error(name: str) -> str | None:
    if len(name) > 255:
        return f'domain name "{name}" too long (max 255)'
    if not name:
        return "empty domain name not allowed"
    return None


def _labels_error(domain: str, rest: str) -> str | None:
    parts = rest.split(".")
    tld = parts[-1]
    if tld.isdigit() and tld.isascii():
        return f'domain name "{domain}" invalid (top level domain "{tld}" cannot be all-numeric)'
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None  # a trailing dot (`istio.io.`) is allowed
        if not is_dns1123_label(label):
            return f'domain name "{domain}" invalid (label "{label}" invalid)'
    return None


def fqdn_error(name: str) -> str | None:
    """Istio's ValidateFQDN: DNS-1123 labels, at most 255 characters, no all-numeric TLD."""
    return _precondition_error(name) or _labels_error(name, name)


def wildcard_domain_error(domain: str) -> str | None:
    """Istio's ValidateWildcardDomain: like `fqdn_error`, but the first label may be `*`, `*foo` or `*-foo`."""
    if err := _precondition_error(domain):
        return err
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f'domain name "{domain}" invalid (label "{first}" invalid)'
    if dot:
        # like Istio, the message then names only what follows the first label
        return _labels_error(rest, rest)
    return None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_subnet_error(subnet: str) -> str | None:
    """Istio's ValidateIPSubnet: CIDR (`10.0.0.0/8`) or a plain address."""
    if subnet.count("/") == 1:
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            return f"{subnet} is not a valid CIDR block"
        return None
    return None if is_ip(subnet) else f"{subnet} is not a valid IP"


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: true when either host (wildcards included) covers the other."""
    aw, bw = a.startswith("*"), b.startswith("*")
    if aw and bw:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if aw:
        return b.endswith(a[1:])
    if bw:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf: every name matched by `a` is matched by `b`."""
    if b.startswith("*"):
        return a[1:].endswith(b[1:]) if a.startswith("*") else a.endswith(b[1:])
    if a.startswith("*"):
        return False
    return a == b


# --- durations, ports, percentages ---------------------------------------------------------------

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MS = 1_000_000


def parse_duration(text: str) -> int | None:
    """Parse a Go/protobuf-JSON duration (`1.5s`, `100ms`, `1h30m`) to nanoseconds; None if malformed."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            return None
        total += Fraction(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def check_duration(ctx: Ctx, path: str, value: Any, *, allow_zero: bool = False) -> int | None:
    """Istio's ValidateDuration: at least 1ms and whole milliseconds. Returns nanoseconds when parseable."""
    if value is None:
        return None
    if not isinstance(value, str):
        ctx.type_invalid(path, value, "a duration string such as \"1.5s\" or \"100ms\"")
        return None
    ns = parse_duration(value)
    if ns is None:
        ctx.invalid(path, value, f'time: invalid duration "{value}"')
        return None
    if allow_zero and ns == 0:
        return ns
    if ns < _MS:
        ctx.invalid(path, value, "duration must be greater than 1ms")
    elif ns % _MS:
        ctx.invalid(path, value, "only durations to ms precision are supported")
    return ns


def port_error(port: int) -> str | None:
    return None if 1 <= port <= 65535 else f"port number {port} must be in the range 1..65535"


def check_port(ctx: Ctx, path: str, port: int | None) -> None:
    if port is not None and (err := port_error(port)):
        ctx.invalid(path, port, err)


def check_percent(ctx: Ctx, path: str, value: int | None) -> None:
    """Istio's ValidatePercent (integer 0..100)."""
    if value is not None and not 0 <= value <= 100:
        ctx.invalid(path, value, f"percentage {value} is not in range 0..100")


def check_fraction_percent(ctx: Ctx, parent: dict[str, Any], key: str, path: Path) -> None:
    """A `Percent` message (`{value: 0.5}`): 0, or within [0.0001, 100]."""
    pct = ctx.obj(parent, key, path)
    if pct is None:
        return
    v = ctx.num(pct, "value", path.child(key))
    if v is not None and (v < 0 or v > 100 or 0 < v < 0.0001):
        ctx.invalid(path.child(key).child("value"), v,
                    f"percentage {go_float(v)} is neither 0.0, nor in range [0.0001, 100.0]")


# --- labels and selectors -----------------------------------------------------------------------

def check_labels(ctx: Ctx, path: Path, labels: dict[str, str]) -> None:
    """Kubernetes label rules as Istio applies them (`labels.Instance.Validate`)."""
    for k, v in labels.items():
        p = path.key(k)
        m = _TAG_KEY_RE.match(k)
        if m is None:
            ctx.invalid(p, k, f'invalid tag key: "{k}"')
        elif m.group(1) and len(m.group(1)) - 1 > 253:
            ctx.invalid(p, k, f'invalid tag key: "{k}" (DNS prefix is too long)')
        elif len(m.group(2)) > 63:
            ctx.invalid(p, k, f'invalid tag key: "{k}" (name is too long)')
        if not _LABEL_VALUE_RE.match(v):
            ctx.invalid(p, v, f'invalid tag value: "{v}"')


def check_workload_selector(ctx: Ctx, path: Path, labels: dict[str, str]) -> None:
    """Selectors are exact label matches: no empty keys, no wildcards; no labels selects everything."""
    for k, v in labels.items():
        if k == "":
            ctx.invalid(path.key(k), f"{k}={v}", f'empty key is not supported in selector: "{k}={v}"')
        if "*" in k or "*" in v:
            ctx.invalid(path.key(k), f"{k}={v}", f'wildcard is not supported in selector: "{k}={v}"')


def check_alpha_workload_selector(ctx: Ctx, spec: dict[str, Any], root: Path, what: str) -> dict[str, str] | None:
    """Istio's ValidateAlphaWorkloadSelector at `spec.workloadSelector.labels` of a `what` (`sidecar`, …): the
    labels, None without a selector; a selector without labels is a warning (it selects the whole namespace)."""
    selector = ctx.obj(spec, "workloadSelector", root)
    if selector is None:
        return None
    labels = ctx.str_map(selector, "labels", root.child("workloadSelector"))
    check_workload_selector(ctx, root.child("workloadSelector").child("labels"), labels)
    if not labels:
        ctx.warn(f"{what}: workload selector specified without labels, will be applied to all services in namespace")
    return labels


# --- headers, regexes and string matches -----------------------------------------------------------

HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")  # RFC 7230 tchar
_CONTROL_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
JWT_CLAIM_PREFIX = "@request.auth.claims"


def is_jwt_claim_header(name: str) -> bool:
    return name.startswith((JWT_CLAIM_PREFIX + ".", JWT_CLAIM_PREFIX + "["))


def check_header_name(ctx: Ctx, path: str, name: str, *, allow_pseudo: bool = False,
                      allow_star: bool = False) -> None:
    if name == "":
        ctx.required(path, "header name cannot be empty")
        return
    if allow_star and name == "*":
        return
    if allow_pseudo and (name in _PSEUDO_HEADERS or is_jwt_claim_header(name)):
        return
    if not HEADER_NAME_RE.match(name):
        ctx.invalid(path, name, f"header name {name} is not a valid header name")


def header_value_error(value: str) -> str | None:
    """Envoy's custom-header value syntax: control characters are rejected, `%%` escapes `%`,
    and `%VAR%` / `%VAR(args)%` expressions must be closed."""
    if _CONTROL_CHARS.search(value):
        return f"header value configuration {value} is invalid"
    i, n = 0, len(value)
    while i < n:
        if value[i] != "%":
            i += 1
            continue
        if i + 1 >= n:
            return "header value configuration: invalid header configuration. Un-escaped %"
        if value[i + 1] == "%":
            i += 2
            continue
        end = _variable_end(value, i + 1)
        if end is None:
            return ("header value configuration: invalid header configuration. "
                    f"Un-terminated variable expression '{value}'")
        i = end + 1
    return None


def _variable_end(value: str, start: int) -> int | None:
    """Index of the `%` closing a variable that starts at `start`, skipping a quoted `(…)` argument list."""
    depth, in_str, i = 0, False, start
    while i < len(value):
        ch = value[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"' and depth:
            in_str = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "%" and depth <= 0:
            return i
        i += 1
    return None


# RE2 has no look-around, back-references or atomic groups; Python's `re` would accept them.
_RE2_UNSUPPORTED = re.compile(r"\(\?(?:=|!|<=|<!|>|P=)")
_BACKREF = re.compile(r"\\[1-9]")
_RE2_ONLY_CLASS = re.compile(r"\\[pP](?:\{[^}]*\}|[A-Za-z])")


def regex_error(expr: str) -> str | None:
    """Approximate RE2 acceptance with Python's `re`, phrased like Go's regexp errors."""
    if m := _RE2_UNSUPPORTED.search(expr):
        return f"error parsing regexp: invalid or unsupported Perl syntax: `{m.group(0)}`"
    if m := _BACKREF.search(expr):
        return f"error parsing regexp: invalid escape sequence: `{m.group(0)}`"
    # translate the RE2 spellings Python lacks so only real syntax errors remain
    probe = _RE2_ONLY_CLASS.sub(".", expr).replace(r"\z", r"\Z")
    try:
        re.compile(probe)
    except re.error as e:
        return f"error parsing regexp: {e.msg}: `{expr}`"
    return None


def check_regex(ctx: Ctx, path: str, expr: str, where: str) -> None:
    if len(expr) > 1024:
        ctx.invalid(path, expr, f'"{where}": regex is too large, max length allowed is 1024')
        return
    if err := regex_error(expr):
        ctx.invalid(path, expr, f'"{where}": {err}; Istio uses RE2 style regex-based match '
                                "(https://github.com/google/re2/wiki/Syntax)")


def check_string_match(ctx: Ctx, path: Path, sm: Any, where: str, *, allow_empty_prefix: bool = False) -> None:
    """A StringMatch (`{exact|prefix|regex: …}`): one kind only, no empty prefix or regex, valid RE2."""
    if sm is None:
        return
    if not isinstance(sm, dict):
        ctx.type_invalid(path, sm, "an object")
        return
    kinds = [k for k in ("exact", "prefix", "regex") if k in sm]
    if len(kinds) > 1:
        ctx.invalid(path, sm, f'"{where}": only one of exact, prefix or regex may be set')
    if "prefix" in sm:
        prefix = ctx.str_(sm, "prefix", path)
        if prefix == "" and not allow_empty_prefix:
            ctx.invalid(path.child("prefix"), prefix, f'"{where}": prefix string match should not be empty')
    if "regex" in sm:
        expr = ctx.str_(sm, "regex", path)
        if expr == "":
            ctx.invalid(path.child("regex"), expr, f'"{where}": regex string match should not be empty')
        else:
            check_regex(ctx, path.child("regex"), expr, where)
    if "exact" in sm:
        ctx.str_(sm, "exact", path)


# --- exportTo and gateway references ---------------------------------------------------------------

def check_export_to(ctx: Ctx, path: Path, export_to: list[str], *, service_entry: bool = False,
                    dr_with_selector: bool = False) -> None:
    """Istio's validateExportTo: `.`, `*`, namespaces (and `~` for ServiceEntry), no duplicates or mixes."""
    if not export_to:
        return
    seen: set[str] = set()
    for i, e in enumerate(export_to):
        p = path.index(i)
        key = ctx.namespace if e == "." else e
        if key in seen:
            if key != e:
                ctx.invalid(p, e, f"duplicate entries in exportTo: . and current namespace {ctx.namespace}")
            else:
                ctx.invalid(p, e, f"duplicate entries in exportTo for entry {e}")
            continue
        if e == "~" and service_entry:
            seen.add(key)
        elif e == "~":
            ctx.invalid(p, e, "exportTo ~ (none) is not allowed for Istio configuration objects")
        elif e in (".", "*") or is_dns1123_label(e):
            seen.add(key)
        else:
            ctx.invalid(p, e, "only .,*, or a valid DNS 1123 label is allowed as exportTo entry")
    if dr_with_selector and seen:
        if ctx.namespace in seen:
            if len(seen) > 1:
                ctx.invalid(path, export_to,
                            "destination rule with workload selector cannot have multiple entries in exportTo")
        else:
            ctx.invalid(path, export_to,
                        "destination rule with workload selector cannot have exportTo beyond current namespace")
    if "*" in seen and len(export_to) > 1:
        ctx.invalid(path, export_to, "cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(export_to) > 1:
        ctx.invalid(path, export_to, "cannot export service entry to no one (~) and someone")


def check_gateway_names(ctx: Ctx, path: Path, names: list[str]) -> None:
    """Gateway references: `<namespace>/<name>`, or the legacy `name[.namespace…]` form with a warning."""
    for i, name in enumerate(names):
        p = path.index(i)
        ns, slash, gw = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                ctx.warn(f'using legacy gatewayName format "{name}"; prefer the <namespace>/<name> format: '
                         f'"{parts[1]}/{parts[0]}"')
            if err := fqdn_error(name):
                ctx.invalid(p, name, err)
            continue
        if not ns or not gw:
            ctx.invalid(p, name, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(ns):
            ctx.invalid(p, name, f'invalid value for namespace: "{ns}"')
        if not is_dns1123_label(gw):
            ctx.invalid(p, name, f'invalid value for gateway name: "{gw}"')
