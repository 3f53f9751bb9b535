"""VirtualService HTTP rules → Envoy routes (Istio's `core/route` package, the parts we need).

One rule with N matches becomes N routes, in order; a rule or match that cannot apply to this proxy and
port (`port`, `sourceLabels`, `sourceNamespace`, `gateways`) is left out, and nothing after a catch-all is
emitted. Also builds the default route to a Service that has no VirtualService, and Istio's default retry
policy. Called by `routes` for sidecar and gateway route tables.
"""

from __future__ import annotations

import http
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sluice import mesh

from .model import Proxy
from .protos import typed
from .push_context import IstioConfig, PushContext
from .spec import (
    Obj,
    duration,
    fraction_of_percent,
    gateway_ref,
    int_percent,
    is_present_match,
    labels_match,
    resolve_host,
    string_matcher,
    sub,
)
from .traffic_policy import hash_policy

__all__ = ["RouteContext", "destination_cluster", "virtual_service_routes", "default_route", "default_retry_policy", "is_catch_all",
           "FAULT_FILTER", "CORS_FILTER", "DEFAULT_ROUTE_NAME"]

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
DEFAULT_ROUTE_NAME = "default"  # Istio's name for the route to a service that has no VirtualService
_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
_PREVIOUS_HOSTS = {"name": "envoy.retry_host_predicates.previous_hosts",
                   "typed_config": typed("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate")}
_GRPC_STATUS = {name: code for code, name in enumerate((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"))}
_REDIRECT_CODES = {0: "MOVED_PERMANENTLY", 301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                   307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}


@dataclass(frozen=True)
class RouteContext:
    """Everything one VirtualService's routes depend on, for one proxy and one listener port."""

    push: PushContext
    proxy: Proxy
    vs: IstioConfig
    port: int  # the port the virtual host is for: default destination port and `match.port` filter
    gateways: Collection[str]  # `mesh` for sidecars, `<ns>/<name>` of the gateways a server belongs to


def default_retry_policy(consistent_hash: bool = False) -> Obj:
    policy: Obj = {"retry_on": _DEFAULT_RETRY_ON, "num_retries": 2, "host_selection_retry_max_attempts": 5,
                   "retriable_status_codes": [503]}
    if not consistent_hash:
        # with a consistent hash, a retry must stay on the hashed host
        policy["retry_host_predicate"] = [_PREVIOUS_HOSTS]
    return policy


def _retry_policy(retries: Any, consistent_hash: bool) -> Obj | None:
    policy = default_retry_policy(consistent_hash)
    if not isinstance(retries, dict):
        return policy
    attempts = int(retries.get("attempts") or 0)
    if attempts <= 0:
        return None  # explicitly disabled
    policy["num_retries"] = attempts
    if retries.get("retryOn"):
        tokens, codes = [], []
        for part in str(retries["retryOn"]).split(","):
            part = part.strip()
            if part.isdigit() and int(part) in http.HTTPStatus._value2member_map_:
                codes.append(int(part))
            elif part:
                tokens.append(part)
        if codes and "retriable-status-codes" not in tokens:
            tokens.append("retriable-status-codes")
        policy["retry_on"] = ",".join(tokens)
        if codes:
            policy["retriable_status_codes"] = codes
        else:
            policy.pop("retriable_status_codes", None)
    if (d := duration(retries.get("perTryTimeout"))) is not None:
        policy["per_try_timeout"] = d
    if "retryIgnorePreviousHosts" in retries:
        if retries["retryIgnorePreviousHosts"]:
            policy["retry_host_predicate"] = [_PREVIOUS_HOSTS]
        else:
            policy.pop("retry_host_predicate", None)
    if retries.get("retryRemoteLocalities"):
        policy["retry_priority"] = {"name": "envoy.retry_priorities.previous_priorities", "typed_config": typed(
            "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
            {"update_frequency": 2})}
    if (d := duration(retries.get("backoff"))) is not None:
        policy["retry_back_off"] = {"base_interval": d}
    return policy


def default_route(push: PushContext, proxy: Proxy, hostname: str, port: int) -> Obj:
    """The route to a service port without a VirtualService: all paths, no timeout, default retries."""
    action: Obj = {"cluster": mesh.outbound_cluster(port, "", hostname), "timeout": "0s",
                   "retry_policy": default_retry_policy()}
    hp = hash_policy(push.destination_rule(hostname, proxy.namespace, proxy.labels), "", port)
    if hp is not None:
        action["hash_policy"] = [hp]
    return {"name": DEFAULT_ROUTE_NAME, "match": {"prefix": "/"}, "route": action}


def is_catch_all(route: Obj) -> bool:
    m = route.get("match") or {}
    path_all = m.get("prefix") == "/" or (m.get("safe_regex") or {}).get("regex") == ".*"
    return path_all and not m.get("headers") and not m.get("query_parameters")


def virtual_service_routes(ctx: RouteContext) -> list[Obj]:
    out: list[Obj] = []
    for rule in ctx.vs.spec.get("http") or []:
        if not isinstance(rule, dict):
            continue
        matches = [m for m in rule.get("match") or [] if isinstance(m, dict)]
        if not matches:
            if (r := _translate(ctx, rule, None)) is not None:
                out.append(r)
            break  # a rule without matches catches everything: later rules are unreachable
        catch_all = False
        for match in matches:
            if (r := _translate(ctx, rule, match)) is not None:
                out.append(r)
                if is_catch_all(r):
                    catch_all = True
                    break
        if catch_all:
            break
    return out


def _source_matches(ctx: RouteContext, match: Obj | None) -> bool:
    if match is None:
        return True
    gateways = [gateway_ref(str(g), ctx.vs.namespace) for g in match.get("gateways") or []]
    if gateways:
        return any(g in ctx.gateways for g in gateways)
    source = {str(k): str(v) for k, v in (match.get("sourceLabels") or {}).items()}
    if not labels_match(source, ctx.proxy.labels):
        return False
    ns = match.get("sourceNamespace")
    return not ns or ns == ctx.proxy.namespace


def _translate(ctx: RouteContext, rule: Obj, match: Obj | None) -> Obj | None:
    if match is not None and match.get("port") and int(match["port"]) != ctx.port:
        return None
    if not _source_matches(ctx, match):
        return None
    name = str(rule.get("name") or "")
    if match is not None and match.get("name"):
        name = f"{name}.{match['name']}"
    route: Obj = {}
    if name:
        route["name"] = name
    route["match"] = route_match(match)
    route["metadata"] = {"filter_metadata": {"istio": {"config": ctx.vs.config_path}}}
    authority = _apply_headers(route, rule.get("headers"))
    if isinstance(rule.get("redirect"), dict):
        redirect = _redirect(rule["redirect"], ctx.port)
        if redirect is None:
            return None
        route["redirect"] = redirect
    elif isinstance(rule.get("directResponse"), dict):
        route["direct_response"] = _direct_response(rule["directResponse"])
    else:
        route["route"] = _route_action(ctx, rule, route, authority)
    per_filter: Obj = {}
    if isinstance(rule.get("fault"), dict) and (fault := _fault(rule["fault"])) is not None:
        per_filter[FAULT_FILTER] = fault
    if isinstance(rule.get("corsPolicy"), dict):
        per_filter[CORS_FILTER] = _cors(rule["corsPolicy"])
    if per_filter:
        route["typed_per_filter_config"] = per_filter
    return route


# --- match ---------------------------------------------------------------------------------------------

def _header_matcher(name: str, sm: Any, *, invert: bool = False) -> Obj:
    out: Obj = {"name": name}
    if is_present_match(sm):
        out["present_match"] = True
    elif (m := string_matcher(sm)) is not None:
        out["string_match"] = m
        if invert:
            out["treat_missing_header_as_empty"] = True
    if invert:
        out["invert_match"] = True
    return out


def route_match(match: Obj | None) -> Obj:
    out: Obj = {"prefix": "/"}
    if match is None:
        return out
    headers = []
    for name, sm in sorted((match.get("headers") or {}).items()):
        if not str(name).startswith("@request.auth.claims"):  # JWT claims need authn: not supported yet
            headers.append(_header_matcher(str(name).lower(), sm))
    for name, sm in sorted((match.get("withoutHeaders") or {}).items()):
        if not str(name).startswith("@request.auth.claims"):
            headers.append(_header_matcher(str(name).lower(), sm, invert=True))
    headers.sort(key=lambda h: str(h["name"]))
    uri = match.get("uri")
    if isinstance(uri, dict):
        if "exact" in uri:
            out = {"path": str(uri["exact"])}
        elif "prefix" in uri:
            out = {"prefix": str(uri["prefix"])}
        elif "regex" in uri:
            out = {"safe_regex": {"regex": str(uri["regex"])}}
    out["case_sensitive"] = not bool(match.get("ignoreUriCase"))
    for key, header in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        if isinstance(match.get(key), dict):
            headers.append(_header_matcher(header, match[key]))
    if headers:
        out["headers"] = headers
    params = []
    for name, sm in sorted((match.get("queryParams") or {}).items()):
        qp: Obj = {"name": str(name)}
        if is_present_match(sm):
            qp["present_match"] = True
        elif (m := string_matcher(sm)) is not None:
            qp["string_match"] = m
        params.append(qp)
    if params:
        out["query_parameters"] = params
    return out


# --- actions -------------------------------------------------------------------------------------------

def _header_ops(headers: Any) -> tuple[list[Obj], list[Obj], list[str], list[str], str]:
    """Istio `Headers` → (request adds, response adds, request removes, response removes, authority)."""
    if not isinstance(headers, dict):
        return [], [], [], [], ""
    req, resp = sub(headers, "request"), sub(headers, "response")
    authority = ""

    def values(ops: Any, action: str, *, request: bool) -> list[Obj]:
        nonlocal authority
        out = []
        for key, value in sorted((ops or {}).items()):
            key = str(key)
            if request and key.lower() in (":authority", "host"):
                authority = str(value)
            if key.startswith(":") or key.lower() == "host":
                continue  # Envoy cannot modify pseudo-headers / Host this way
            out.append({"header": {"key": key, "value": str(value)}, "append_action": action})
        return out

    req_add = values(req.get("set"), "OVERWRITE_IF_EXISTS_OR_ADD", request=True)
    set_auth, authority = authority, ""
    req_add += values(req.get("add"), "APPEND_IF_EXISTS_OR_ADD", request=True)
    authority = set_auth or authority  # a `set` authority beats an `add` one
    resp_add = values(resp.get("set"), "OVERWRITE_IF_EXISTS_OR_ADD", request=False)
    resp_add += values(resp.get("add"), "APPEND_IF_EXISTS_OR_ADD", request=False)

    def removes(names: Any) -> list[str]:
        return [str(n) for n in names or [] if not str(n).startswith(":") and str(n).lower() != "host"]

    return req_add, resp_add, removes(req.get("remove")), removes(resp.get("remove")), authority


def _apply_headers(target: Obj, headers: Any, *, append: bool = False) -> str:
    req_add, resp_add, req_rm, resp_rm, authority = _header_ops(headers)
    for key, values in (("request_headers_to_add", req_add), ("response_headers_to_add", resp_add),
                        ("request_headers_to_remove", req_rm), ("response_headers_to_remove", resp_rm)):
        if values:
            target[key] = (target.get(key, []) + values) if append else values
    return authority


def destination_cluster(ctx: RouteContext, dest: Mapping[str, Any]) -> tuple[str, str, int]:
    """(cluster name, destination FQDN, port) as Istio's GetDestinationCluster picks the port."""
    host = resolve_host(str(dest.get("host") or ""), ctx.vs.namespace, ctx.push.namespaces)
    svc = ctx.push.services_by_host.get(host)
    alias = ctx.push.aliases_by_host.get(host) if svc is None else None
    ports = svc.ports if svc is not None else alias.ports if alias is not None else ()
    if alias is not None:
        host = alias.target  # an ExternalName: its target's cluster, one hop as Istio's (not a chain's end)
    port_spec = dest.get("port")
    if isinstance(port_spec, dict) and port_spec.get("number"):
        port = int(port_spec["number"])
    elif len(ports) == 1:
        port = ports[0].port
    else:
        port = ctx.port
    return mesh.outbound_cluster(port, str(dest.get("subset") or ""), host), host, port


def _hash_for(ctx: RouteContext, dest: Mapping[str, Any]) -> Obj | None:
    _, host, port = destination_cluster(ctx, dest)
    dr = ctx.push.destination_rule(host, ctx.proxy.namespace, ctx.proxy.labels)
    return hash_policy(dr, str(dest.get("subset") or ""), port)


def _mirror_fraction(percentage: Any, legacy_percent: Any) -> Obj | None:
    if isinstance(percentage, dict):
        return fraction_of_percent(percentage) if float(percentage.get("value") or 0) > 0 else None
    if legacy_percent is not None:
        value = int(legacy_percent.get("value", 0) if isinstance(legacy_percent, dict) else legacy_percent)
        return int_percent(value) if value > 0 else None
    return int_percent(100)


def _route_action(ctx: RouteContext, rule: Obj, route: Obj, authority: str) -> Obj:
    action: Obj = {"timeout": duration(rule.get("timeout")) or "0s"}
    rewrite = rule.get("rewrite")
    if isinstance(rewrite, dict):
        regex = rewrite.get("uriRegexRewrite")
        if isinstance(regex, dict) and regex.get("match"):
            action["regex_rewrite"] = {"pattern": {"regex": str(regex["match"])},
                                       "substitution": str(regex.get("rewrite") or "")}
        elif rewrite.get("uri"):
            action["prefix_rewrite"] = str(rewrite["uri"])
        if rewrite.get("authority"):
            authority = str(rewrite["authority"])
    if authority:
        action["host_rewrite_literal"] = authority
    mirrors: list[Obj] = []
    if isinstance(rule.get("mirror"), dict):
        fraction = _mirror_fraction(rule.get("mirrorPercentage"), rule.get("mirrorPercent"))
        if fraction is not None:
            mirrors.append(_mirror(ctx, rule["mirror"], fraction))
    for m in rule.get("mirrors") or []:
        if isinstance(m, dict) and isinstance(m.get("destination"), dict):
            fraction = _mirror_fraction(m.get("percentage"), None)
            if fraction is not None:
                mirrors.append(_mirror(ctx, m["destination"], fraction))
    if mirrors:
        action["request_mirror_policies"] = mirrors
    dests = [d for d in rule.get("route") or [] if isinstance(d, dict) and isinstance(d.get("destination"), dict)]
    hashes: list[Obj] = []
    if len(dests) == 1:
        dest = dests[0]
        action["cluster"] = destination_cluster(ctx, dest["destination"])[0]
        dest_authority = _apply_headers(route, dest.get("headers"), append=True)
        if dest_authority and "host_rewrite_literal" not in action:
            action["host_rewrite_literal"] = dest_authority
        if (hp := _hash_for(ctx, dest["destination"])) is not None:
            hashes.append(hp)
    else:
        weighted = []
        for dest in dests:
            weight = int(dest.get("weight") or 0)
            if weight == 0:
                continue  # Istio drops zero-weight destinations when there are others
            entry: Obj = {"name": destination_cluster(ctx, dest["destination"])[0], "weight": weight}
            dest_authority = _apply_headers(entry, dest.get("headers"))
            if dest_authority:
                entry["host_rewrite_literal"] = dest_authority
            weighted.append(entry)
            if (hp := _hash_for(ctx, dest["destination"])) is not None:
                hashes.append(hp)
        action["weighted_clusters"] = {"clusters": weighted}
    if hashes:
        action["hash_policy"] = hashes
    retry = _retry_policy(rule.get("retries"), consistent_hash=len(dests) == 1 and bool(hashes))
    if retry is not None:
        action["retry_policy"] = retry
    return action


def _mirror(ctx: RouteContext, dest: Mapping[str, Any], fraction: Obj) -> Obj:
    return {"cluster": destination_cluster(ctx, dest)[0], "runtime_fraction": {"default_value": fraction},
            "trace_sampled": False}


def _redirect(redirect: Obj, port: int) -> Obj | None:
    out: Obj = {}
    if redirect.get("authority"):
        out["host_redirect"] = str(redirect["authority"])
    if redirect.get("uri"):
        out["path_redirect"] = str(redirect["uri"])
    scheme = str(redirect.get("scheme") or "")
    if scheme:
        out["scheme_redirect"] = scheme
    port_redirect = 0
    if redirect.get("port"):
        port_redirect = int(redirect["port"])
    elif redirect.get("derivePort") == "FROM_REQUEST_PORT":
        port_redirect = port  # routes are built per listener port, so the request port is known
    if redirect.get("port") or redirect.get("derivePort"):
        default = {"http": 80, "https": 443}.get(scheme or "http")
        if port_redirect and port_redirect != default:
            out["port_redirect"] = port_redirect
    code = int(redirect.get("redirectCode") or 0)
    if code not in _REDIRECT_CODES:
        return None  # Envoy has no other redirect codes; Istio drops such a route too
    out["response_code"] = _REDIRECT_CODES[code]
    return out


def _direct_response(direct: Obj) -> Obj:
    out: Obj = {"status": int(direct.get("status") or 200)}
    body = direct.get("body")
    if isinstance(body, dict):
        if "string" in body:
            out["body"] = {"inline_string": str(body["string"])}
        elif "bytes" in body:
            out["body"] = {"inline_bytes": str(body["bytes"])}  # already base64 in the stored JSON
    return out


def _fault(fault: Obj) -> Obj | None:
    out: Obj = {}
    delay = fault.get("delay")
    if isinstance(delay, dict) and (d := duration(delay.get("fixedDelay"))) is not None:
        pct = (fraction_of_percent(delay["percentage"]) if isinstance(delay.get("percentage"), dict)
               else int_percent(int(delay.get("percent") or 0)))
        out["delay"] = {"fixed_delay": d, "percentage": pct}
    abort = fault.get("abort")
    if isinstance(abort, dict):
        a: Obj = {}
        if abort.get("httpStatus"):
            a["http_status"] = int(abort["httpStatus"])
        elif abort.get("grpcStatus") is not None:
            status = abort["grpcStatus"]
            a["grpc_status"] = int(status) if str(status).isdigit() else _GRPC_STATUS.get(str(status), 2)
        if a:
            if isinstance(abort.get("percentage"), dict):
                a["percentage"] = fraction_of_percent(abort["percentage"])
            out["abort"] = a
    if not out:
        return None
    return typed("envoy.extensions.filters.http.fault.v3.HTTPFault", out)


def _cors(policy: Obj) -> Obj:
    out: Obj = {"filter_enabled": {"default_value": int_percent(100)},
                "forward_not_matching_preflights": policy.get("unmatchedPreflights") != "IGNORE"}
    origins = []
    for o in policy.get("allowOrigins") or []:
        if isinstance(o, dict) and (m := string_matcher(o)) is not None:
            origins.append(m)
    if not origins:
        origins = [{"exact": str(o)} for o in policy.get("allowOrigin") or []]
    if origins:
        out["allow_origin_string_match"] = origins
    for key, field in (("allowMethods", "allow_methods"), ("allowHeaders", "allow_headers"),
                       ("exposeHeaders", "expose_headers")):
        if policy.get(key):
            out[field] = ",".join(str(v) for v in policy[key])
    if (d := duration(policy.get("maxAge"))) is not None:
        out["max_age"] = str(int(float(d[:-1])))
    if "allowCredentials" in policy:
        out["allow_credentials"] = bool(policy["allowCredentials"])
    return typed("envoy.extensions.filters.http.cors.v3.CorsPolicy", out)
