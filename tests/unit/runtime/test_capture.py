"""istio-init's capture rules as nftables: the default rule set and each annotation's effect."""

from __future__ import annotations

import pytest

from sluice.runtime.netns.capture import CaptureError, capture_config, capture_rules

A = "traffic.sidecar.istio.io/"


def _rules(annotations: dict[str, str] | None = None) -> list[str]:
    script = capture_rules(capture_config(annotations or {}))
    return [line.removeprefix("add rule inet istio-proxy-nat ") for line in script.splitlines()
            if line.startswith("add rule")]


def test_default_rules_follow_istio_init_order() -> None:
    rules = _rules()
    assert rules[:3] == ["istio-inbound tcp dport 15008 counter return",
                         "istio-redirect meta l4proto tcp counter redirect to :15001",
                         "istio-in-redirect meta l4proto tcp counter redirect to :15006"]
    inbound = [r for r in rules if r.startswith("istio-inbound")]
    assert inbound == ["istio-inbound tcp dport 15008 counter return",
                       "istio-inbound tcp dport 15090 counter return",
                       "istio-inbound tcp dport 15021 counter return",
                       "istio-inbound tcp dport 15020 counter return",
                       "istio-inbound meta l4proto tcp counter jump istio-in-redirect"]
    output = [r.removeprefix("istio-output ") for r in rules if r.startswith("istio-output")]
    assert output == [
        "oifname lo ip saddr 127.0.0.6/32 counter return",
        "oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skuid 1337 counter jump "
        "istio-in-redirect",
        "oifname lo skuid != 1337 counter return",
        "skuid 1337 counter return",
        "oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skgid 1337 counter jump "
        "istio-in-redirect",
        "oifname lo skgid != 1337 counter return",
        "skgid 1337 counter return",
        "ip daddr 127.0.0.1/32 counter return",
        "counter jump istio-redirect",
    ]


def test_annotations() -> None:
    rules = _rules({A + "excludeOutboundPorts": "5432,6379", A + "excludeOutboundIPRanges": "10.1.0.0/16",
                    A + "excludeInboundPorts": "9000", A + "includeOutboundPorts": "8443"})
    out = [r.removeprefix("istio-output ") for r in rules if r.startswith("istio-output")]
    assert out[:4] == ["tcp dport 5432 counter return", "udp dport 5432 counter return",
                       "tcp dport 6379 counter return", "udp dport 6379 counter return"]
    assert out.index("ip daddr 10.1.0.0/16 counter return") < out.index("tcp dport 8443 counter jump istio-redirect")
    assert "istio-inbound tcp dport 9000 counter return" in rules


def test_listed_inbound_ports_ignore_exclusions_and_empty_disables() -> None:
    rules = _rules({A + "includeInboundPorts": "9080", A + "excludeInboundPorts": "9080"})
    inbound = [r for r in rules if r.startswith("istio-inbound")]
    assert inbound == ["istio-inbound tcp dport 15008 counter return",
                       "istio-inbound tcp dport 9080 counter jump istio-in-redirect"]
    assert not any(r.startswith("prerouting") for r in _rules({A + "includeInboundPorts": ""}))


def test_include_outbound_ranges() -> None:
    out = [r for r in _rules({A + "includeOutboundIPRanges": "10.96.0.0/12"}) if r.startswith("istio-output")]
    assert out[-1] == "istio-output ip daddr 10.96.0.0/12 counter jump istio-redirect"
    assert "istio-output counter jump istio-redirect" not in out
    assert not any("jump istio-redirect" in r for r in _rules({A + "includeOutboundIPRanges": ""})
                   if r.startswith("istio-output"))


@pytest.mark.parametrize("annotations, message", [
    ({A + "excludeOutboundPorts": "http"}, 'excludeOutboundPorts: "http" is not a valid port'),
    ({A + "excludeOutboundIPRanges": "10.0.0.0/33"}, 'excludeOutboundIPRanges: "10.0.0.0/33" is not a valid CIDR'),
    ({A + "excludeOutboundIPRanges": "*"}, "'*' is not allowed"),
])
def test_bad_annotations_are_refused(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(CaptureError, match=message.replace("*", r"\*").replace("(", r"\(")):
        capture_config(annotations)
