"""The `istio` ConfigMap's mesh config: outboundTrafficPolicy read from Istio's MeshConfig YAML, bad YAML named."""

from __future__ import annotations

from sluice.meshconfig import ALLOW_ANY, REGISTRY_ONLY, mesh_config_from, parse_mesh_config, problems


def _cm(mesh: str, name: str = "istio", namespace: str = "istio-system") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"mesh": mesh}}


def test_outbound_traffic_policy_modes() -> None:
    assert parse_mesh_config("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n")[0].outbound_policy == REGISTRY_ONLY
    assert parse_mesh_config("outboundTrafficPolicy:\n  mode: ALLOW_ANY\n")[0].outbound_policy == ALLOW_ANY
    assert parse_mesh_config("accessLogFile: /dev/stdout\n") == (parse_mesh_config("")[0], [])
    assert parse_mesh_config("")[0].outbound_policy == ALLOW_ANY


def test_only_the_istio_configmap_in_istio_system_counts() -> None:
    registry_only = "outboundTrafficPolicy: {mode: REGISTRY_ONLY}"
    assert mesh_config_from([_cm(registry_only)]).outbound_policy == REGISTRY_ONLY
    assert mesh_config_from([_cm(registry_only, name="other")]).outbound_policy == ALLOW_ANY
    assert mesh_config_from([_cm(registry_only, namespace="default")]).outbound_policy == ALLOW_ANY


def test_bad_mesh_config_keeps_the_defaults_and_says_why() -> None:
    config, errors = parse_mesh_config("outboundTrafficPolicy:\n  mode: [unclosed\n")
    assert config.outbound_policy == ALLOW_ANY and errors and "yaml" in errors[0]
    config, errors = parse_mesh_config("outboundTrafficPolicy:\n  mode: REGISTRY_ONLYY\n")
    assert config.outbound_policy == ALLOW_ANY
    assert errors == ['outboundTrafficPolicy.mode: unknown value "REGISTRY_ONLYY" for enum '
                      'istio.mesh.v1alpha1.MeshConfig.OutboundTrafficPolicy.Mode '
                      '(want one of REGISTRY_ONLY, ALLOW_ANY)']
    [warning] = problems("ConfigMap", _cm("outboundTrafficPolicy: 3"))
    assert warning.startswith("ConfigMap istio-system/istio: invalid mesh config in data.mesh")
    assert problems("ConfigMap", _cm("outboundTrafficPolicy: 3", name="other")) == []
    assert problems("Secret", _cm("outboundTrafficPolicy: 3")) == []


def test_settings_sluice_does_not_act_on_are_listed() -> None:
    from sluice.meshconfig import unapplied

    text = ("accessLogFile: /dev/stdout\nenableTracing: true\ndefaultConfig:\n  holdApplicationUntilProxyStarts: true\n"
            "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n  egressProxy: {host: proxy}\n")
    assert unapplied(text) == ["enableTracing", "defaultConfig", "outboundTrafficPolicy.egressProxy"]
    assert unapplied("accessLogFile: ''\n") == ["accessLogFile"]  # turning the access log off is not applied
    assert unapplied("outboundTrafficPolicy: {mode: ALLOW_ANY}\n") == []
    assert unapplied("[not, a, mapping]") == [] and unapplied(": bad") == []
