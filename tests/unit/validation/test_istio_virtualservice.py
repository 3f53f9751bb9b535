"""VirtualService rules: each case is a spec that must pass (expected None) or fail with that message."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.validation.istio import validate

R = [{"destination": {"host": "reviews"}}]  # a valid route


def vs(spec: dict[str, Any], ns: str = "tutorial") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": ns}, "spec": spec}


def http(**rule: Any) -> dict[str, Any]:
    """A spec with one http rule; `route` defaults to a valid one unless given (None removes it)."""
    rule.setdefault("route", R)
    return {"hosts": ["reviews"], "http": [{k: v for k, v in rule.items() if v is not None}]}


def match(**m: Any) -> dict[str, Any]:
    return http(match=[m])


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    # hosts and top level
    ("short host", {"hosts": ["reviews"], "http": [{"route": R}]}, None),
    ("fqdn host", {"hosts": ["reviews.tutorial.svc.cluster.local"], "http": [{"route": R}]}, None),
    ("ip host", {"hosts": ["10.0.0.1"], "http": [{"route": R}]}, None),
    ("bad host label", {"hosts": ["rev_iews"], "http": [{"route": R}]},
     'spec.hosts[0]: Invalid value: "rev_iews": domain name "rev_iews" invalid (label "rev_iews" invalid)'),
    ("numeric tld", {"hosts": ["foo.123"], "http": [{"route": R}]},
     'domain name "123" invalid (top level domain "123" cannot be all-numeric)'),
    ("too long", {"hosts": ["a" * 256], "http": [{"route": R}]}, "too long (max 255)"),
    ("star on mesh", {"hosts": ["*"], "http": [{"route": R}]},
     "wildcard host * is not allowed for virtual services bound to the mesh gateway"),
    ("star on gateway", {"hosts": ["*"], "gateways": ["istio-system/gw"], "http": [{"route": R}]}, None),
    ("duplicate hosts", {"hosts": ["a.com", "a.com"], "http": [{"route": R}]},
     "spec.hosts[1]: Invalid value: \"a.com\": duplicate hosts in virtual service: a.com & a.com"),
    ("wildcard overlap", {"hosts": ["*.foo.com", "bar.foo.com"], "http": [{"route": R}]},
     "duplicate hosts in virtual service: *.foo.com & bar.foo.com"),
    ("no routes", {"hosts": ["reviews"]}, "spec.http: Required value: http, tcp or tls must be provided"),
    ("null http", {"hosts": ["reviews"], "http": [None]}, "spec.http[0]: Required value: http route may not be null"),
    # gateways
    ("gateway ns/name", {"hosts": ["a.com"], "gateways": ["istio-system/gw"], "http": [{"route": R}]}, None),
    ("gateway mesh", {"hosts": ["a.com"], "gateways": ["mesh"], "http": [{"route": R}]}, None),
    ("gateway empty ns", {"hosts": ["a.com"], "gateways": ["/gw"], "http": [{"route": R}]},
     "config namespace and gateway name cannot be empty"),
    ("gateway bad ns", {"hosts": ["a.com"], "gateways": ["a_b/gw"], "http": [{"route": R}]},
     'invalid value for namespace: "a_b"'),
    ("gateway bad name", {"hosts": ["a.com"], "gateways": ["ns/g.w"], "http": [{"route": R}]},
     'invalid value for gateway name: "g.w"'),
    # delegate
    ("delegate with gateways", {"gateways": ["ns/gw"], "http": [{"route": R}]},
     "delegate virtual service must have no gateways specified"),
    ("delegate with tcp", {"tcp": [{"route": R}]}, "delegate virtual service must have no tcp route specified"),
    ("delegate with tls", {"tls": [{"match": [{"sniHosts": ["a.com"]}], "route": R}]},
     "delegate virtual service must have no tls route specified"),
    ("delegate rule in delegate", {"http": [{"delegate": {"name": "x"}}]},
     "delegate HTTP route cannot contain delegate"),
    ("root rule delegating", http(route=None, delegate={"name": "x", "namespace": "y"}), None),
    ("root rule with route", http(name="r", delegate={"name": "x"}), "root HTTP route r must not specify route"),
    ("root rule with redirect", http(route=None, delegate={"name": "x"}, redirect={"uri": "/x"}),
     "must not specify redirect"),
    # route type conflicts
    ("nothing to do", http(route=None), "spec.http[0].route: Required value: HTTP route, redirect or direct_response is required"),
    ("route+redirect", http(redirect={"uri": "/x"}), "HTTP route cannot contain both route and redirect"),
    ("fault+redirect", http(route=None, redirect={"uri": "/x"}, fault={"abort": {"httpStatus": 500}}),
     "HTTP route cannot contain both fault and redirect"),
    ("rewrite+redirect", http(route=None, redirect={"uri": "/x"}, rewrite={"uri": "/y"}),
     "HTTP route rule cannot contain both rewrite and redirect"),
    ("direct+redirect", http(route=None, redirect={"uri": "/x"}, directResponse={"status": 200}),
     "HTTP route rule cannot contain both direct_response and redirect"),
    ("route+direct", http(directResponse={"status": 200}), "HTTP route cannot contain both route and direct_response"),
    ("fault+direct", http(route=None, directResponse={"status": 200}, fault={"delay": {"fixedDelay": "1s"}}),
     "HTTP route cannot contain both fault and direct_response"),
    ("rewrite+direct", http(route=None, directResponse={"status": 200}, rewrite={"uri": "/"}),
     "HTTP route rule cannot contain both rewrite and direct_response"),
    ("mirror+mirrors", http(mirror={"host": "a"}, mirrors=[{"destination": {"host": "b"}}]),
     "HTTP route cannot contain both mirror and mirrors"),
    # destinations
    ("dest host star", http(route=[{"destination": {"host": "*"}}]), "invalid destination host *"),
    ("dest host missing", http(route=[{"destination": {"subset": "v1"}}]),
     "spec.http[0].route[0].destination.host: Required value"),
    ("destination missing", http(route=[{"weight": 100}]), "destination is required"),
    ("subset ok", http(route=[{"destination": {"host": "a", "subset": "v2-mysql"}}]), None),
    ("subset dotted", http(route=[{"destination": {"host": "a", "subset": "v1.0"}}]), "subset name is invalid: v1.0"),
    ("dest port", http(route=[{"destination": {"host": "a", "port": {"number": 70000}}}]),
     "port number 70000 must be in the range 1..65535"),
    # matches
    ("uri empty prefix ok", match(uri={"prefix": ""}), None),
    ("uri exact ok", match(uri={"exact": "/productpage"}), None),
    ("method empty prefix", match(method={"prefix": ""}), '"method": prefix string match should not be empty'),
    ("scheme empty prefix", match(scheme={"prefix": ""}), '"scheme": prefix string match should not be empty'),
    ("authority empty regex", match(authority={"regex": ""}), '"authority": regex string match should not be empty'),
    ("uri bad regex", match(uri={"regex": "(abc"}), '"uri": error parsing regexp: missing ), unterminated subpattern'),
    ("uri lookahead", match(uri={"regex": "a(?=b)"}), "invalid or unsupported Perl syntax"),
    ("uri regex too large", match(uri={"regex": "a" * 1025}), "regex is too large, max length allowed is 1024"),
    ("uri regex ok", match(uri={"regex": "^/api/v[0-9]+/.*"}), None),
    ("header ok", match(headers={"end-user": {"exact": "jason"}}), None),
    ("header pseudo ok", match(headers={":authority": {"exact": "a"}}), None),
    ("header bad name", match(headers={"bad header": {"exact": "x"}}), "header name bad header is not a valid header name"),
    ("header empty name", match(headers={"": {"exact": "x"}}), "header name cannot be empty"),
    ("header null", match(headers={"x": None}), "header match x cannot be null"),
    ("header empty prefix", match(headers={"x": {"prefix": ""}}), '"headers": prefix string match should not be empty'),
    ("without headers star", match(withoutHeaders={"x": {"regex": "*"}}), None),
    ("without headers bad", match(withoutHeaders={"x": {"regex": "(("}}), '"withoutHeaders": error parsing regexp'),
    ("query param bad", match(queryParams={"q": {"prefix": ""}}), '"queryParams": prefix string match'),
    ("match port", match(port=0), None),
    ("match port bad", match(port=99999), "port number 99999 must be in the range 1..65535"),
    ("source labels ok", match(sourceLabels={"app": "productpage", "version": "v1"}), None),
    ("source label key", match(sourceLabels={"-bad": "x"}), 'invalid tag key: "-bad"'),
    ("source label value", match(sourceLabels={"app": "a b"}), 'invalid tag value: "a b"'),
    ("source namespace", match(sourceNamespace="Not_OK"), "sourceNamespace match Not_OK is invalid"),
    ("match gateways", match(gateways=["bad/x/y"]), "invalid value for gateway name"),
    ("jwt claim on mesh", match(headers={"@request.auth.claims.group": {"exact": "a"}}),
     "JWT claim based routing (key: @request.auth.claims.group) is only supported for gateway, found no gateways: []"),
    # headers
    ("header ops ok", http(headers={"request": {"set": {"x-a": "b", ":authority": "c"}, "remove": ["x-b"]},
                                    "response": {"add": {"x-c": "%HOSTNAME%"}}}), None),
    ("header op pseudo", http(headers={"request": {"set": {":path": "/"}}}), 'invalid header ":path": header cannot have ":" prefix'),
    ("header remove host", http(headers={"request": {"remove": ["Host"]}}), 'invalid header "Host": cannot set Host header'),
    ("response set host", http(headers={"response": {"set": {"host": "x"}}}), "cannot set Host header"),
    ("header value ctl", http(headers={"request": {"set": {"x": "a\x01"}}}), "header value configuration a\x01 is invalid"),
    ("header value percent", http(headers={"request": {"set": {"x": "abc%"}}}), "Un-escaped %"),
    ("header value open var", http(headers={"request": {"set": {"x": "%START_TIME"}}}), "Un-terminated variable expression"),
    ("header value escaped", http(headers={"request": {"set": {"x": "100%%"}}}), None),
    ("authority twice", http(rewrite={"authority": "a"}, headers={"request": {"set": {"host": "b"}}}),
     'authority header cannot be set multiple times: have "a", attempting to set "b"'),
    ("dest header ops", http(route=[{"destination": {"host": "a"}, "headers": {"response": {"remove": [":status"]}}}]),
     'invalid header ":status": header cannot have ":" prefix'),
    # cors
    ("cors ok", http(corsPolicy={"allowOrigins": [{"exact": "https://a.com"}], "allowMethods": ["GET", "POST"],
                                 "allowHeaders": ["*", "x-a"], "maxAge": "24h"}), None),
    ("cors empty origin", http(corsPolicy={"allowOrigins": [{"exact": ""}]}),
     "'' is not a valid match type for CORS allow origins"),
    ("cors bad origin regex", http(corsPolicy={"allowOrigins": [{"regex": "(("}]}), '"corsPolicy.allowOrigins": error parsing regexp'),
    ("cors method", http(corsPolicy={"allowMethods": ["FETCH"]}), '"FETCH" is not a supported HTTP method'),
    ("cors header", http(corsPolicy={"exposeHeaders": ["a b"]}), "header name a b is not a valid header name"),
    ("cors max age ms", http(corsPolicy={"maxAge": "1500ms"}), "max_age duration is accurate only to seconds precision"),
    # fault
    ("fault ok", http(fault={"delay": {"fixedDelay": "5s", "percentage": {"value": 100}},
                             "abort": {"httpStatus": 500, "percentage": {"value": 0.1}}}), None),
    ("fault empty", http(fault={}), "HTTP fault injection must have an abort and/or a delay"),
    ("fault percentage", http(fault={"abort": {"httpStatus": 500, "percentage": {"value": 101}}}),
     "percentage 101 is neither 0.0, nor in range [0.0001, 100.0]"),
    ("fault status", http(fault={"abort": {"httpStatus": 99}}), "HTTP status 99 is not in range 200-599"),
    ("fault grpc ok", http(fault={"abort": {"grpcStatus": "UNAVAILABLE"}}), None),
    ("fault grpc", http(fault={"abort": {"grpcStatus": "NOPE"}}), 'gRPC status "NOPE" is not supported'),
    ("fault http2", http(fault={"abort": {"http2Error": "x"}}), "HTTP/2 abort fault injection not supported yet"),
    ("fault delay short", http(fault={"delay": {"fixedDelay": "0.5ms"}}), "duration must be greater than 1ms"),
    ("fault exponential", http(fault={"delay": {"exponentialDelay": "1s"}}), "exponentialDelay not supported yet"),
    # mirrors
    ("mirror ok", http(mirror={"host": "reviews", "subset": "v3"}, mirrorPercentage={"value": 50.5}), None),
    ("mirror bad subset", http(mirror={"host": "a", "subset": "V_1"}), "subset name is invalid: V_1"),
    ("mirror percentage max", http(mirror={"host": "a"}, mirrorPercentage={"value": 101}),
     "mirror_percentage must have a max value of 100 (it has 101.000000)"),
    ("mirror percentage min", http(mirror={"host": "a"}, mirrorPercentage={"value": -1}),
     "mirror_percentage must have a min value of 0 (it has -1.000000)"),
    ("mirror percent old", http(mirror={"host": "a"}, mirrorPercent=101), "mirror_percent must have a max value of 100 (it has 101)"),
    ("mirrors ok", http(mirrors=[{"destination": {"host": "a"}, "percentage": {"value": 10}}]), None),
    ("mirrors null", http(mirrors=[None]), "mirror cannot be null"),
    ("mirrors no dest", http(mirrors=[{"percentage": {"value": 10}}]), "destination is required for mirrors"),
    ("mirrors pct", http(mirrors=[{"destination": {"host": "a"}, "percentage": {"value": 200}}]),
     "mirror percentage must have a max value of 100 (it has 200.000000)"),
    # redirect
    ("redirect ok", http(route=None, redirect={"uri": "/v1", "authority": "x.com", "redirectCode": 301}), None),
    ("redirect empty", http(route=None, redirect={}), "redirect must specify URI, authority, scheme, or port"),
    ("redirect code", http(route=None, redirect={"uri": "/", "redirectCode": 200}), "200 is not a valid redirect code, must be 3xx"),
    ("redirect scheme", http(route=None, redirect={"scheme": "ftp"}), 'invalid redirect scheme, must be "http" or "https"'),
    ("redirect port", http(route=None, redirect={"port": 70000}), "port number 70000 must be in the range 1..65535"),
    ("redirect uri+prefix", http(route=None, redirect={"uri": "/a", "prefixRewrite": "/b"}),
     "redirect may only specify one of uri or prefix_rewrite"),
    ("redirect prefix on exact", {"hosts": ["a"], "http": [{"match": [{"uri": {"exact": "/a"}}], "redirect": {"prefixRewrite": "/b"}}]},
     "redirect prefix_rewrite requires all URI matches to use prefix match type"),
    # direct response
    ("direct ok", http(route=None, directResponse={"status": 503, "body": {"string": "unavailable"}}), None),
    ("direct status", http(route=None, directResponse={"status": 700}), "HTTP status 700 is not in range 200-599"),
    ("direct no status", http(route=None, directResponse={}), "spec.http[0].directResponse.status: Required value"),
    ("direct big body", http(route=None, directResponse={"status": 200, "body": {"string": "x" * (1024 * 1024 + 1)}}),
     "large direct_responses may impact control plane performance, must be less than 1MB"),
    # rewrite
    ("rewrite ok", http(rewrite={"uri": "/v1/bookRatings"}), None),
    ("rewrite empty", http(rewrite={}), "rewrite must specify at least one of URI, UriRegexRewrite, or authority"),
    ("rewrite both", http(rewrite={"uri": "/", "uriRegexRewrite": {"match": "a", "rewrite": "b"}}),
     "rewrite may only contain one of URI or UriRegexRewrite"),
    ("rewrite regex half", http(rewrite={"uriRegexRewrite": {"match": "a"}}),
     "UriRegexRewrite requires both Rewrite and Match fields to be specified"),
    ("rewrite regex bad", http(rewrite={"uriRegexRewrite": {"match": "((", "rewrite": "b"}}),
     '"HTTPRewrite.UriRegexRewrite.Match": error parsing regexp'),
    # retries and timeouts
    ("retries ok", http(retries={"attempts": 3, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure,503"}), None),
    ("retries negative", http(retries={"attempts": -1}), "attempts cannot be negative"),
    ("retries zero configured", http(retries={"attempts": 0, "retryOn": "5xx"}),
     "http retry policy configured when attempts are set to 0 (disabled)"),
    ("retries zero alone", http(retries={"attempts": 0}), None),
    ("retry on unknown", http(retries={"attempts": 1, "retryOn": "5xx,sometimes"}), '"sometimes" is not a valid retryOn policy'),
    ("retry on bad status", http(retries={"attempts": 1, "retryOn": "999"}), '"999" is not a valid retryOn policy'),
    ("per try timeout", http(retries={"attempts": 1, "perTryTimeout": "1.5us"}), "duration must be greater than 1ms"),
    ("timeout ok", http(timeout="0.5s"), None),
    ("timeout go style", http(timeout="1m30s"), None),
    ("timeout precision", http(timeout="1.0005s"), "only durations to ms precision are supported"),
    ("timeout garbage", http(timeout="soon"), 'time: invalid duration "soon"'),
    ("timeout type", http(timeout=5), "spec.http[0].timeout: Invalid value: 5: must be a duration string"),
    # tcp and tls
    ("tcp ok", {"hosts": ["db"], "tcp": [{"match": [{"port": 3306, "destinationSubnets": ["10.0.0.0/8"]}], "route": R}]}, None),
    ("tcp no route", {"hosts": ["db"], "tcp": [{"match": [{"port": 3306}]}]}, "TCP route is required"),
    ("tcp null match", {"hosts": ["db"], "tcp": [{"match": [None], "route": R}]}, "tcp match may not be nil"),
    ("tcp bad subnet", {"hosts": ["db"], "tcp": [{"match": [{"destinationSubnets": ["10.0.0.0/99"]}], "route": R}]},
     "10.0.0.0/99 is not a valid CIDR block"),
    ("tls ok", {"hosts": ["*.bookinfo.com"], "tls": [{"match": [{"sniHosts": ["login.bookinfo.com"], "port": 443}], "route": R}]}, None),
    ("tls no match", {"hosts": ["a.com"], "tls": [{"route": R}]}, "TLS route must have at least one match condition"),
    ("tls no sni", {"hosts": ["a.com"], "tls": [{"match": [{"port": 443}], "route": R}]}, "TLS match must have at least one SNI host"),
    ("tls sni not subset", {"hosts": ["a.com"], "tls": [{"match": [{"sniHosts": ["b.com"]}], "route": R}]},
     'SNI host "b.com" is not a compatible subset of any of the virtual service hosts: [a.com]'),
    ("tls no route", {"hosts": ["a.com"], "tls": [{"match": [{"sniHosts": ["a.com"]}]}]}, "TLS route is required"),
    # exportTo
    ("export ok", {"hosts": ["a"], "http": [{"route": R}], "exportTo": [".", "istio-system"]}, None),
    ("export dup", {"hosts": ["a"], "http": [{"route": R}], "exportTo": ["x", "x"]}, "duplicate entries in exportTo for entry x"),
    ("export dot dup", {"hosts": ["a"], "http": [{"route": R}], "exportTo": ["tutorial", "."]},
     "duplicate entries in exportTo: . and current namespace tutorial"),
    ("export star mix", {"hosts": ["a"], "http": [{"route": R}], "exportTo": ["*", "x"]},
     "cannot have both public (*) and non-public exportTo values for a resource"),
    ("export tilde", {"hosts": ["a"], "http": [{"route": R}], "exportTo": ["~"]}, "exportTo ~ (none) is not allowed"),
    ("export bad", {"hosts": ["a"], "http": [{"route": R}], "exportTo": ["Not_Valid"]},
     "only .,*, or a valid DNS 1123 label is allowed as exportTo entry"),
]


@pytest.mark.parametrize(("spec", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_virtual_service_rule(spec: dict[str, Any], expected: str | None) -> None:
    errors = [str(e) for e in validate("VirtualService", vs(spec)).errors]
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_all_errors_are_accumulated() -> None:
    spec = http(timeout="soon", retries={"attempts": -1}, fault={})
    spec["hosts"] = ["bad_host"]
    errors = [str(e) for e in validate("VirtualService", vs(spec)).errors]
    assert len(errors) == 4, errors


def test_legacy_gateway_name_warns() -> None:
    result = validate("VirtualService", vs({"hosts": ["a.com"], "gateways": ["gw.istio-system"], "http": [{"route": R}]}))
    assert result.errors == []
    assert result.warnings == ['using legacy gatewayName format "gw.istio-system"; prefer the <namespace>/<name> '
                               'format: "istio-system/gw"']


@pytest.mark.parametrize(("rule", "warning"), [
    ({"mirror": {"host": "a"}, "mirrorPercent": 50}, 'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead'),
    ({"fault": {"abort": {"percentage": {"value": 1}}}}, "abort configured, but error type not set"),
])
def test_warnings(rule: dict[str, Any], warning: str) -> None:
    result = validate("VirtualService", vs(http(**rule)))
    assert result.errors == []
    assert result.warnings == [warning]


def test_wrong_types_are_reported_not_raised() -> None:
    doc = vs({"hosts": "reviews", "http": [{"route": "nope", "match": 3}]})
    errors = [str(e) for e in validate("VirtualService", doc).errors]
    assert 'spec.hosts: Invalid value: "reviews": must be a list' in errors
    assert any(e.startswith("spec.http[0].route: Invalid value") for e in errors)


def test_missing_spec() -> None:
    assert [str(e) for e in validate("VirtualService", {"kind": "VirtualService"}).errors] == ["spec: Required value"]
