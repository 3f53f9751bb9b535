"""The stats a proxy keeps, from its pod's annotations, as istio-agent writes Istio's bootstrap `stats_matcher`."""

from __future__ import annotations

import pytest

from sluice.resources.proxyconfig import PROXY_CONFIG, proxy_config, stats_matcher


def _patterns(annotations: dict[str, str], ips: tuple[str, ...] = ("10.1.0.7",)) -> list[dict[str, object]]:
    return list(stats_matcher(annotations, ips)["inclusion_list"]["patterns"])  # type: ignore[index]


def test_istios_default_inclusion_list() -> None:
    assert _patterns({}) == [
        {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "listener_manager"},
        {"prefix": "server"}, {"prefix": "cluster.xds-grpc"}, {"prefix": "wasm"},
        {"suffix": "rbac.allowed"}, {"suffix": "rbac.denied"}, {"suffix": "shadow_allowed"},
        {"suffix": "shadow_denied"}, {"safe_regex": {"regex": r"vhost\..*\.route\..*"}},
        {"prefix": "component"}, {"prefix": "istio"}]


def test_an_annotation_replaces_the_proxy_configs_list_and_pod_ip_is_substituted() -> None:
    config = "proxyStatsMatcher:\n  inclusionPrefixes: [cluster.outbound]\n  inclusionSuffixes: [upstream_rq_total]"
    got = _patterns({PROXY_CONFIG: config, "sidecar.istio.io/statsInclusionSuffixes": "http.{pod_ip}_,x"},
                    ("10.1.0.7", "10.1.0.8"))
    assert {"prefix": "cluster.outbound"} in got
    assert {"suffix": "upstream_rq_total"} not in got  # the annotation's list wins, not a merge
    assert got[7:10] == [{"suffix": "http.10.1.0.7_"}, {"suffix": "http.10.1.0.8_"}, {"suffix": "x"}]


@pytest.mark.parametrize(("text", "why"), [
    ("[1, 2", "yaml: line"),
    ("- a", "expected an object"),
    ("proxyStatsMatcher: 3", "proxyStatsMatcher: expected an object"),
    ("proxyStatsMatcher:\n  inclusionRegexps: [1]", "inclusionRegexps: expected a list of strings"),
    ("holdApplicationUntilProxyStarts: yes please", "holdApplicationUntilProxyStarts: expected a boolean"),
])
def test_a_proxy_config_that_does_not_parse_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        proxy_config({PROXY_CONFIG: text})
    assert _patterns({PROXY_CONFIG: text}) == _patterns({})  # the bootstrap keeps Istio's defaults


def test_what_sluice_does_not_act_on_is_named() -> None:
    from sluice.resources.proxyconfig import unapplied

    assert unapplied({}) == [] and unapplied({PROXY_CONFIG: "proxyStatsMatcher: {inclusionPrefixes: [a]}"}) == []
    assert unapplied({PROXY_CONFIG: "concurrency: 2\nholdApplicationUntilProxyStarts: true"}) == [
        "metadata.annotations[proxy.istio.io/config].concurrency"]
    assert unapplied({PROXY_CONFIG: "hold_application_until_proxy_starts: true"}) == []


def test_hold_application_until_proxy_starts() -> None:
    from sluice.resources.proxyconfig import hold_application

    assert hold_application({PROXY_CONFIG: "holdApplicationUntilProxyStarts: true"})
    assert hold_application({PROXY_CONFIG: '{"hold_application_until_proxy_starts": true}'})
    assert not hold_application({PROXY_CONFIG: "holdApplicationUntilProxyStarts: false"})
    assert not hold_application({}) and not hold_application({PROXY_CONFIG: "holdApplicationUntilProxyStarts: 1"})
    # the mesh's defaultConfig value, unless the pod's own ProxyConfig sets the field
    assert hold_application({}, default=True) and hold_application({PROXY_CONFIG: "concurrency: 2"}, default=True)
    assert not hold_application({PROXY_CONFIG: "holdApplicationUntilProxyStarts: false"}, default=True)
