"""istioctl-analyze checks over small object sets, rendered the way istioctl prints them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from sluice.validation.analyze import (
    Message,
    analyze,
    analyze_target,
    exit_code,
    format_message,
    summary_line,
)

BOOKINFO = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: tutorial}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2-abc, namespace: tutorial, labels: {app: reviews, version: v2}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3-abc, namespace: tutorial, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: tutorial}
spec:
  host: reviews
  subsets:
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def objects(extra: str = "") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(BOOKINFO + "---\n" + extra) if d]


def vs(routes: str, name: str = "reviews", extra: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: tutorial}}
spec:
  hosts: [reviews]
{extra}
  http:
  - route:
{routes}
"""


def lines(objs: list[dict[str, Any]], **kw: Any) -> list[str]:
    return [format_message(m) for m in analyze(objs, **kw)]


def test_clean_configuration_has_no_messages() -> None:
    objs = objects(vs("    - destination: {host: reviews, subset: v2}\n      weight: 90\n"
                      "    - destination: {host: reviews.tutorial.svc.cluster.local, subset: v3}\n      weight: 10"))
    assert lines(objs) == []
    assert summary_line([], analyze_target("tutorial")) == "\u2714 No validation issues found when analyzing namespace: tutorial."


def test_missing_subset_is_ist0101() -> None:
    objs = objects(vs("    - destination: {host: reviews, subset: v4}"))
    assert lines(objs) == ['Error [IST0101] (VirtualService tutorial/reviews) Referenced host+subset in destinationrule '
                           'not found: "reviews+v4"']
    msgs = analyze(objs)
    assert summary_line(msgs, analyze_target("tutorial")) == "Error: Analyzers found issues when analyzing namespace: tutorial."
    assert exit_code(msgs) == 79


@pytest.mark.parametrize("host", ["reviews", "reviews.tutorial", "reviews.tutorial.svc.cluster.local"])
def test_host_forms_resolve(host: str) -> None:
    assert lines(objects(vs(f"    - destination: {{host: {host}, subset: v2}}"))) == []


def test_unknown_host_reports_host_and_subset() -> None:
    assert lines(objects(vs("    - destination: {host: reviewss, subset: v1}"))) == [
        'Error [IST0101] (VirtualService tutorial/reviews) Referenced host not found: "reviewss"',
        'Error [IST0101] (VirtualService tutorial/reviews) Referenced host+subset in destinationrule not found: "reviewss+v1"',
    ]


def test_short_name_in_other_namespace_is_not_found() -> None:
    other = vs("    - destination: {host: reviews}").replace("namespace: tutorial", "namespace: other")
    assert lines(objects(other)) == ['Error [IST0101] (VirtualService other/reviews) Referenced host not found: "reviews"']


def test_service_entry_hosts_count() -> None:
    se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: tutorial}
spec: {hosts: ["*.example.com"], ports: [{number: 443, name: tls, protocol: TLS}], resolution: NONE}
"""
    objs = objects(se + "---\n" + vs("    - destination: {host: api.example.com}"))
    assert lines(objs) == []  # the host resolves (no IST0101), and every field of the entry is programmed


def test_mirror_and_gateway_references() -> None:
    spec = vs("    - destination: {host: reviews, subset: v2}\n    mirror: {host: ratings, subset: v1}",
              extra="  gateways: [mesh, tutorial/missing-gw]")
    assert lines(objects(spec)) == [
        'Error [IST0101] (VirtualService tutorial/reviews) Referenced gateway not found: "tutorial/missing-gw"',
        'Error [IST0101] (VirtualService tutorial/reviews) Referenced mirror host not found: "ratings"',
        'Error [IST0101] (VirtualService tutorial/reviews) Referenced mirror+subset in destinationrule not found: "ratings+v1"',
    ]


def test_existing_gateway_is_found() -> None:
    gw = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: tutorial}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
    spec = vs("    - destination: {host: reviews, subset: v2}", extra="  gateways: [bookinfo-gateway, mesh]")
    assert lines(objects(gw + "---\n" + spec)) == []


def test_subset_selecting_no_pods_is_ist0173() -> None:
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-extra, namespace: tutorial}
spec:
  host: reviews
  subsets: [{name: v9, labels: {version: v9}}]
"""
    assert lines(objects(dr)) == [
        "Error [IST0173] (DestinationRule tutorial/reviews-extra) The Subset v9 defined in the DestinationRule does not "
        "select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
    ]


def test_subset_must_also_match_the_service_selector() -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: tutorial, labels: {app: other, version: v9}}\n"
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-extra, namespace: tutorial}
spec: {host: reviews, subsets: [{name: v9, labels: {version: v9}}]}
"""
    assert [m.code for m in analyze(objects(pod + "---\n" + dr))] == ["IST0173"]


def test_deployment_templates_stand_in_for_pods() -> None:
    objs = [d for d in objects() if d["kind"] != "Pod"]
    objs += [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"reviews-{v}", "namespace": "tutorial"},
              "spec": {"template": {"metadata": {"labels": {"app": "reviews", "version": v}}}}} for v in ("v2", "v3")]
    assert lines(objs) == []
    objs = [o for o in objs if o["metadata"]["name"] != "reviews-v3"]
    assert [m.code for m in analyze(objs)] == ["IST0173"]


def test_unknown_destination_rule_host_is_ist0174() -> None:
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: tutorial}
spec: {host: ghost}
"""
    assert lines(objects(dr)) == [
        "Warning [IST0174] (DestinationRule tutorial/ghost) The host ghost defined in the DestinationRule does not "
        "match any services in the mesh."]
    assert summary_line(analyze(objects(dr)), analyze_target("tutorial")) == ""


def test_conflicting_mesh_virtual_services_are_ist0109() -> None:
    a = vs("    - destination: {host: reviews, subset: v2}", name="reviews-a")
    b = vs("    - destination: {host: reviews, subset: v3}", name="reviews-b")
    expected = ("The VirtualServices tutorial/reviews-a,tutorial/reviews-b associated with mesh gateway define the same "
                "host */reviews.tutorial.svc.cluster.local which can lead to undefined behavior. This can be fixed by "
                "merging the conflicting VirtualServices into a single resource.")
    assert lines(objects(a + "---\n" + b)) == [
        f"Error [IST0109] (VirtualService tutorial/reviews-a) {expected}",
        f"Error [IST0109] (VirtualService tutorial/reviews-b) {expected}",
    ]


def test_gateway_bound_virtual_services_do_not_conflict() -> None:
    a = vs("    - destination: {host: reviews, subset: v2}", name="reviews-a")
    b = vs("    - destination: {host: reviews, subset: v3}", name="reviews-b", extra="  gateways: [missing]")
    assert [m.code for m in analyze(objects(a + "---\n" + b))] == ["IST0101"]


def test_schema_errors_are_ist0106() -> None:
    objs = objects(vs("    - destination: {host: reviews, subset: v2}\n      weight: 80\n"
                      "    - destination: {host: reviews, subset: v3}\n      weight: 10"))
    assert lines(objs) == ["Error [IST0106] (VirtualService tutorial/reviews) Schema validation error: "
                           "spec.http[0].route: Invalid value: 90: total destination weight 90 != 100"]


def test_unreachable_rules_are_ist0130_and_ist0131() -> None:
    spec = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: tutorial}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /a}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {exact: /a}}, {uri: {exact: /b}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
"""
    assert lines(objects(spec)) == [
        "Warning [IST0130] (VirtualService tutorial/reviews) VirtualService rule #3 not used (only the last rule can have no matches).",
        "Info [IST0131] (VirtualService tutorial/reviews) VirtualService rule #1 match #0 is not used "
        "(duplicate/overlapping match in rule #0).",
    ]


def test_namespaces_limit_who_gets_messages() -> None:
    other = vs("    - destination: {host: reviews}").replace("namespace: tutorial", "namespace: other")
    objs = objects(other + "---\n" + vs("    - destination: {host: reviews, subset: v4}"))
    assert {m.namespace for m in analyze(objs)} == {"other", "tutorial"}
    assert {m.namespace for m in analyze(objs, namespaces={"tutorial"})} == {"tutorial"}


def test_origin_is_printed_inside_the_parentheses() -> None:
    m = Message("IST0101", "Error", "VirtualService", "tutorial", "reviews",
                'Referenced host+subset in destinationrule not found: "reviews+v4"', origin="reviews.yaml:3")
    assert format_message(m) == ('Error [IST0101] (VirtualService tutorial/reviews reviews.yaml:3) Referenced '
                                 'host+subset in destinationrule not found: "reviews+v4"')
    objs = objects(vs("    - destination: {host: reviews, subset: v4}"))
    [got] = analyze(objs, origins={("VirtualService", "tutorial", "reviews"): "vs.yaml:1"})
    assert got.origin == "vs.yaml:1"


def test_all_namespaces_target() -> None:
    assert summary_line([], analyze_target(None)) == "\u2714 No validation issues found when analyzing all namespaces."


def test_config_left_out_of_pushes_is_ist0001() -> None:
    objs = objects(vs("    - destination: {host: reviews, subset: v2}"))
    objs[-1]["metadata"]["resourceVersion"] = "7"
    entry = {"kind": "VirtualService", "namespace": "tutorial", "name": "reviews", "resourceVersion": "7",
             "error": "Couldn't parse duration: 400000000000s"}
    assert lines(objs, rejected=[entry]) == [
        "Error [IST0001] (VirtualService tutorial/reviews) Internal error: not pushed to any proxy, translating it "
        "failed: Couldn't parse duration: 400000000000s"]
    assert exit_code(analyze(objs, rejected=[entry])) == 79
    # Edited since (the next push tries it again), deleted, or outside the namespaces analyzed: not reported.
    assert lines(objs, rejected=[{**entry, "resourceVersion": "6"}]) == []
    assert lines(objs, rejected=[{**entry, "name": "gone"}]) == []
    assert lines(objs, rejected=[entry], namespaces={"other"}) == []


GATEWAY_HTTPS = """
apiVersion: v1
kind: Pod
metadata: {name: istio-ingressgateway-abc, namespace: istio-system, labels: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mygateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
    hosts: [httpbin.example.com]
"""


def test_a_gateway_credential_is_looked_up_where_the_gateway_runs() -> None:
    objs = objects(GATEWAY_HTTPS)
    assert lines(objs) == ['Error [IST0101] (Gateway default/mygateway) Referenced credentialName not found: '
                           '"httpbin-credential"']
    in_gateway_ns = objs + [{"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "httpbin-credential", "namespace": "default"}}]
    assert len(lines(in_gateway_ns)) == 1  # the Gateway's own namespace is not where Istio looks
    found = objs + [{"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "httpbin-credential", "namespace": "istio-system"}}]
    assert lines(found) == []


def test_sidecar_selectors() -> None:
    def sidecar(name: str, selector: str = "") -> str:
        return (f"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: tutorial}}\n"
                f"spec:\n  {selector}egress: [{{hosts: ['./*']}}]\n---\n")

    found = [format_message(m) for m in analyze(objects(
        sidecar("a") + sidecar("b") + sidecar("v2", "workloadSelector: {labels: {version: v2}}\n  ")
        + sidecar("reviews", "workloadSelector: {labels: {app: reviews}}\n  ")
        + sidecar("ghost", "workloadSelector: {labels: {app: ghost, tier: x}}\n  ")))]
    assert found == [
        'Error [IST0101] (Sidecar tutorial/ghost) Referenced selector not found: "app=ghost,tier=x"',
        'Error [IST0110] (Sidecar tutorial/reviews) The Sidecars [reviews v2] in namespace "tutorial" select the '
        'same workload pod "reviews-v2-abc", which can lead to undefined behavior.',
        'Error [IST0110] (Sidecar tutorial/v2) The Sidecars [reviews v2] in namespace "tutorial" select the same '
        'workload pod "reviews-v2-abc", which can lead to undefined behavior.',
        'Error [IST0111] (Sidecar tutorial/a) The Sidecars [a b] in namespace "tutorial" have no workload selector, '
        "which can lead to undefined behavior.",
        'Error [IST0111] (Sidecar tutorial/b) The Sidecars [a b] in namespace "tutorial" have no workload selector, '
        "which can lead to undefined behavior.",
    ], found
