"""The `istio` ConfigMap's mesh config: outboundTrafficPolicy and the access-log settings read from Istio's
MeshConfig YAML, bad YAML named."""

from __future__ import annotations

import logging

import pytest

from sluice.meshconfig import (
    ALLOW_ANY,
    JSON,
    REGISTRY_ONLY,
    TEXT,
    MeshConfig,
    format_error,
    mesh_config_from,
    parse_mesh_config,
    problems,
)


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
    # of defaultConfig, holdApplicationUntilProxyStarts is acted on (the injector's), the rest is named
    assert unapplied(text) == ["enableTracing", "outboundTrafficPolicy.egressProxy"]
    assert unapplied("defaultConfig:\n  concurrency: 2\n  holdApplicationUntilProxyStarts: false\n") == [
        "defaultConfig.concurrency"]
    assert unapplied("accessLogFile: ''\naccessLogEncoding: JSON\naccessLogFormat: '{}'\n") == []  # applied
    assert unapplied("accessLogFile: /var/log/envoy.log\n") == ["accessLogFile"]  # no container file system
    assert unapplied("outboundTrafficPolicy: {mode: ALLOW_ANY}\n") == []
    assert unapplied("[not, a, mapping]") == [] and unapplied(": bad") == []


def test_access_log_settings() -> None:
    assert MeshConfig().istio_text_log  # Sluice's default: the demo profile's log to /dev/stdout
    off, errors = parse_mesh_config("accessLogFile: ''\n")
    assert (off.access_log_file, errors, off.istio_text_log) == ("", [], False)
    assert parse_mesh_config("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")[0].access_log_file == "/dev/stdout"
    assert parse_mesh_config("accessLogFile: null\naccessLogEncoding: null\n") == (MeshConfig(), [])
    assert parse_mesh_config("accessLogFile: /tmp/x.log\n")[0].access_log_file == "/dev/stdout"  # not applied
    assert parse_mesh_config("accessLogEncoding: JSON\n")[0].access_log_encoding == JSON
    assert parse_mesh_config("accessLogEncoding: 1\n")[0].access_log_encoding == JSON  # the enum's number
    assert parse_mesh_config("accessLogEncoding: 0\n")[0].access_log_encoding == TEXT
    # Istio ends a TEXT format with a newline; a JSON one is kept as compact JSON
    assert parse_mesh_config("accessLogFormat: '%PROTOCOL%'\n")[0].access_log_format == "%PROTOCOL%\n"
    json_fmt = parse_mesh_config('accessLogEncoding: JSON\naccessLogFormat: \'{"a": "%PROTOCOL%"}\'\n')[0]
    assert json_fmt.access_log_format == '{"a":"%PROTOCOL%"}' and not json_fmt.istio_text_log


def test_bad_access_log_settings_are_named() -> None:
    config, errors = parse_mesh_config("accessLogEncoding: YAML\n")
    assert config == MeshConfig() and errors == [
        'accessLogEncoding: unknown value "YAML" for enum istio.mesh.v1alpha1.MeshConfig.AccessLogEncoding '
        "(want one of TEXT, JSON)"]
    assert parse_mesh_config("accessLogFile: [a]\n")[1] == ["accessLogFile: expected a string, not list"]
    # a format Envoy would refuse: Istio's default format instead, the rest of the config applies
    config, errors = parse_mesh_config("accessLogFormat: '100% done'\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    assert (config.access_log_format, config.outbound_policy) == ("", REGISTRY_ONLY)
    assert errors == ["accessLogFormat: no valid command operator at position 3 (a literal % is written %%); the "
                      "sidecars use Istio's default TEXT format"]
    [warning] = problems("ConfigMap", _cm("accessLogEncoding: JSON\naccessLogFormat: 'not json'\n"))
    assert warning.startswith("ConfigMap istio-system/istio: data.mesh.accessLogFormat: not a JSON object: ")
    assert warning.endswith("the sidecars use Istio's default JSON format")


def test_format_syntax_follows_envoys_parser() -> None:
    assert format_error("[%START_TIME(%Y %s)%] %REQ(:PATH):10% 100%% %CEL(request.path)%\n") == ""
    assert format_error("%req(x)%") and format_error("%UNCLOSED") and format_error("50%")
    assert format_error('{"a": ["%BAD"]}', JSON) and format_error("[1]", JSON) == "not a JSON object"
    assert format_error('{"a": NaN}', JSON).startswith("not a JSON object")
    assert format_error('{"a": {"b": "%PROTOCOL%"}, "c": 1}', JSON) == ""


def test_a_configs_problems_are_logged_once_not_on_every_push(caplog: pytest.LogCaptureFixture) -> None:
    bad = _cm("accessLogEncoding: LOGGED_ONCE\n")  # a text no other test has the config read with
    with caplog.at_level(logging.WARNING, logger="sluice.meshconfig"):
        for _ in range(3):  # three pushes read the same ConfigMap
            assert mesh_config_from([bad]) == MeshConfig()
        assert len(caplog.records) == 1
        mesh_config_from([_cm("accessLogEncoding: 7\n")])  # an edit with a new problem is logged
        mesh_config_from([bad])  # and so is the old one, when it comes back
    assert len(caplog.records) == 3


def test_default_config_hold_application() -> None:
    assert MeshConfig().hold_application is False
    assert parse_mesh_config("defaultConfig:\n  holdApplicationUntilProxyStarts: true\n") == (
        MeshConfig(hold_application=True), [])
    assert parse_mesh_config("defaultConfig: {}\n") == (MeshConfig(), [])
    # a value protobuf's JSON would refuse makes the whole text unusable, as istiod's mesh watcher refuses it
    assert parse_mesh_config("defaultConfig:\n  holdApplicationUntilProxyStarts: 'yes'\n") == (
        MeshConfig(), ["defaultConfig.holdApplicationUntilProxyStarts: expected a boolean, not str"])
    assert parse_mesh_config("defaultConfig: [1]\n") == (MeshConfig(), ["defaultConfig: expected an object, not list"])
