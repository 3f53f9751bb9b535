"""Kubernetes container semantics: command/args against the image's ENTRYPOINT/CMD, env sources, service links."""

from __future__ import annotations

import sys
from fractions import Fraction
from typing import Any

import pytest

from sluice.runtime import images
from sluice.runtime.environment import container_env, kubelet_env, service_env
from sluice.runtime.quantity import QuantityError, parse_quantity, resource_value

BOOKINFO = "docker.io/istio/examples-bookinfo-details-v1:1.20.3"
NODE = {"cpu": Fraction(8), "memory": Fraction(16 * 2**30), "ephemeral-storage": Fraction(100 * 2**30)}


def argv(container: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    return images.resolve({"name": "c", **container}, env).argv


# ------------------------------------------------------------------ command / args
def test_command_replaces_entrypoint_and_drops_cmd() -> None:
    assert argv({"image": "curlimages/curl:8.16.0", "command": ["/bin/sleep", "infinity"]}) == ["/bin/sleep",
                                                                                                 "infinity"]
    assert argv({"image": "curlimages/curl", "command": ["sh", "-c"], "args": ["echo hi"]}) == ["sh", "-c", "echo hi"]
    assert argv({"image": "sluice.dev/traffic-generator", "command": ["true"]}) == ["true"]
    assert argv({"image": "nginx:1.25", "command": ["python3", "-V"]}) == ["python3", "-V"]


def test_args_alone_go_to_the_images_entrypoint() -> None:
    # curlimages/curl: /entrypoint.sh runs curl unless the first word is a program.
    assert argv({"image": "curlimages/curl", "args": ["-s", "http://web:8000/"]}) == ["curl", "-s", "http://web:8000/"]
    assert argv({"image": "curlimages/curl", "args": ["http://web/"]}, {"PATH": "/usr/bin:/bin"}) == \
        ["curl", "http://web/"]
    assert argv({"image": "curlimages/curl", "args": ["sleep", "5"]}, {"PATH": "/usr/bin:/bin"}) == ["sleep", "5"]
    assert argv({"image": "curlimages/curl"}) == ["curl"]  # the default CMD: a bare curl, which exits 2
    gen = argv({"image": "sluice.dev/traffic-generator:latest", "args": ["http://productpage:9080/"]})
    assert gen == [sys.executable, "-m", "sluice.load", "http://productpage:9080/"]


def test_images_without_entrypoint_run_args_or_their_cmd() -> None:
    assert argv({"image": "alpine", "args": ["echo", "hi"]}) == ["echo", "hi"]
    assert argv({"image": "docker.io/library/busybox:1.36"}) == ["sh"]
    assert argv({"image": "python:3.12-slim"}) == ["python3"]


def test_bookinfo_runs_builtin_unless_its_cmd_is_overridden() -> None:
    p = images.resolve({"name": "details", "image": BOOKINFO})
    assert p.builtin == "bookinfo" and p.argv[1:] == ["-m", "sluice.samples.bookinfo.details"]
    p = images.resolve({"name": "details", "image": BOOKINFO, "args": ["sleep", "1"]})
    assert p.builtin == "" and p.argv == ["sleep", "1"] and p.env["SERVICE_VERSION"] == "v1"
    # Restating the image's own CMD is no override.
    p = images.resolve({"name": "details", "image": BOOKINFO, "args": ["ruby", "details.rb", "9080"]})
    assert p.builtin == "bookinfo"


def test_unknown_image_needs_a_command() -> None:
    with pytest.raises(images.ImageError) as e:
        images.resolve({"name": "web", "image": "nginx:1.25", "args": ["-g", "daemon off;"]})
    assert e.value.reason == "ErrImagePull"
    assert '"nginx:1.25"' in e.value.message and "ENTRYPOINT" in e.value.message and "set command" in e.value.message
    with pytest.raises(images.ImageError) as e:
        images.resolve({"name": "web", "image": "nginx:1.25"})
    assert e.value.reason == "ErrImagePull"


def test_command_expansion_sees_only_the_kubelets_variables() -> None:
    prog = images.resolve({"name": "c", "image": BOOKINFO})
    c = {"name": "c", "image": BOOKINFO, "command": ["echo", "$(SERVICE_VERSION)", "$(POD_NAME)", "$(WHO)"],
         "env": [{"name": "WHO", "value": "me"}]}
    env = container_env(POD, c, prog, pod_ip="10.244.0.5", host_ip="10.244.0.1", has_sidecar=False,
                        configmaps=lambda ns, name: None, allocatable=NODE)
    assert env["SERVICE_VERSION"] == "v1" and env["POD_NAME"] == "web-1"  # in the process's environment …
    assert images.resolve(c, env).argv == ["echo", "$(SERVICE_VERSION)", "$(POD_NAME)", "me"]  # … not in $(VAR)


def test_command_and_args_are_expanded_with_the_container_env() -> None:
    env = {"GREETING": "hello", "REVIEWS_SERVICE_HOST": "10.96.0.12"}
    got = argv({"image": "busybox", "command": ["echo", "$(GREETING)", "$(REVIEWS_SERVICE_HOST)"],
                "args": ["$(NOPE)", "$$(GREETING)"]}, env)
    assert got == ["echo", "hello", "10.96.0.12", "$(NOPE)", "$(GREETING)"]


# ------------------------------------------------------------------ service links
SVC = {"metadata": {"name": "reviews", "namespace": "tutorial"},
       "spec": {"clusterIP": "10.96.0.12", "ports": [{"name": "http", "port": 9080, "protocol": "TCP"},
                                                      {"name": "grpc-web", "port": 9090}, {"port": 53, "protocol": "UDP"}]}}
HEADLESS = {"metadata": {"name": "db", "namespace": "tutorial"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
MASTER = {"metadata": {"name": "kubernetes", "namespace": "default"},
          "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
OTHER_NS = {"metadata": {"name": "ratings", "namespace": "other"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 9080}]}}
DASHED = {"metadata": {"name": "my-svc", "namespace": "tutorial"},
          "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80}]}}


def test_service_env_is_kubelets_from_services() -> None:
    env = service_env([SVC, HEADLESS, MASTER, OTHER_NS, DASHED], "tutorial")
    assert env == {
        "REVIEWS_SERVICE_HOST": "10.96.0.12", "REVIEWS_SERVICE_PORT": "9080", "REVIEWS_SERVICE_PORT_HTTP": "9080",
        "REVIEWS_SERVICE_PORT_GRPC_WEB": "9090",
        "REVIEWS_PORT": "tcp://10.96.0.12:9080",
        "REVIEWS_PORT_9080_TCP": "tcp://10.96.0.12:9080", "REVIEWS_PORT_9080_TCP_PROTO": "tcp",
        "REVIEWS_PORT_9080_TCP_PORT": "9080", "REVIEWS_PORT_9080_TCP_ADDR": "10.96.0.12",
        "REVIEWS_PORT_9090_TCP": "tcp://10.96.0.12:9090", "REVIEWS_PORT_9090_TCP_PROTO": "tcp",
        "REVIEWS_PORT_9090_TCP_PORT": "9090", "REVIEWS_PORT_9090_TCP_ADDR": "10.96.0.12",
        "REVIEWS_PORT_53_UDP": "udp://10.96.0.12:53", "REVIEWS_PORT_53_UDP_PROTO": "udp",
        "REVIEWS_PORT_53_UDP_PORT": "53", "REVIEWS_PORT_53_UDP_ADDR": "10.96.0.12",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "MY_SVC_SERVICE_HOST": "10.96.0.30", "MY_SVC_SERVICE_PORT": "80", "MY_SVC_PORT": "tcp://10.96.0.30:80",
        "MY_SVC_PORT_80_TCP": "tcp://10.96.0.30:80", "MY_SVC_PORT_80_TCP_PROTO": "tcp",
        "MY_SVC_PORT_80_TCP_PORT": "80", "MY_SVC_PORT_80_TCP_ADDR": "10.96.0.30",
    }


def test_service_links_disabled_keeps_only_the_master_service() -> None:
    env = service_env([SVC, MASTER], "tutorial", enable_service_links=False)
    assert "REVIEWS_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    v6 = {"metadata": {"name": "v6", "namespace": "x"}, "spec": {"clusterIP": "fd00::5", "ports": [{"port": 80}]}}
    assert service_env([v6], "x")["V6_PORT"] == "tcp://[fd00::5]:80"


# ------------------------------------------------------------------ env sources
POD = {"metadata": {"name": "web-1", "namespace": "tutorial", "uid": "u-1", "labels": {"app": "web"},
                    "annotations": {"team": "a"}},
       "spec": {"serviceAccountName": "web", "enableServiceLinks": True}}
CM = {"data": {"LOG_LEVEL": "debug", "mode": "fast", "1st": "x"}}


def env_of(container: dict[str, Any], pod: dict[str, Any] | None = None,
           services: list[dict[str, Any]] | None = None,
           warnings: list[tuple[str, str]] | None = None) -> dict[str, str]:
    sink = warnings if warnings is not None else []
    return kubelet_env(pod or POD, {"name": "c", **container}, pod_ip="10.244.0.5", host_ip="10.244.0.1",
                       configmaps=lambda ns, name: CM if (ns, name) == ("tutorial", "cfg") else None,
                       services=services or [], allocatable=NODE, warn=lambda r, m: sink.append((r, m)))


def test_field_refs_cover_the_kubelets_list() -> None:
    paths = {"N": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid", "NODE": "spec.nodeName",
             "SA": "spec.serviceAccountName", "IP": "status.podIP", "IPS": "status.podIPs", "HOST": "status.hostIP",
             "HOSTS": "status.hostIPs", "APP": "metadata.labels['app']", "TEAM": "metadata.annotations['team']"}
    env = env_of({"env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in paths.items()]})
    assert env == {"N": "web-1", "NS": "tutorial", "UID": "u-1", "NODE": "sluice", "SA": "web", "IP": "10.244.0.5",
                   "IPS": "10.244.0.5", "HOST": "10.244.0.1", "HOSTS": "10.244.0.1", "APP": "web", "TEAM": "a"}
    with pytest.raises(images.ImageError) as e:
        env_of({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]})
    assert e.value.reason == "CreateContainerConfigError" and "spec.hostname" in e.value.message


def test_env_from_configmap_with_prefix_and_env_winning() -> None:
    warnings: list[tuple[str, str]] = []
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"},
                              {"configMapRef": {"name": "missing", "optional": True}}],
                  "env": [{"name": "APP_mode", "value": "slow-$(APP_LOG_LEVEL)"}]}, warnings=warnings)
    assert env == {"APP_LOG_LEVEL": "debug", "APP_mode": "slow-debug", "APP_1st": "x"}
    assert warnings == []
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, warnings=warnings)
    assert env == {"LOG_LEVEL": "debug", "mode": "fast"}  # "1st" is not a variable name: skipped, with a warning
    assert warnings == [("InvalidEnvironmentVariableNames", "Keys [1st] from the EnvFrom configMap "
                         "tutorial/cfg were skipped since they are considered invalid environment variable names.")]
    with pytest.raises(images.ImageError) as e:
        env_of({"envFrom": [{"configMapRef": {"name": "missing"}}]})
    assert e.value.message == 'configmap "missing" not found'


def test_secrets_are_not_found_unless_optional() -> None:
    assert env_of({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}}],
                   "envFrom": [{"secretRef": {"name": "s", "optional": True}}]}) == {}
    for c in ({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
              {"envFrom": [{"secretRef": {"name": "s"}}]}):
        with pytest.raises(images.ImageError) as e:
            env_of(c)
        assert e.value.reason == "CreateContainerConfigError" and e.value.message.startswith('secret "s" not found')


def test_values_expand_against_services_and_earlier_vars() -> None:
    env = env_of({"env": [{"name": "URL", "value": "http://$(REVIEWS_SERVICE_HOST):$(REVIEWS_SERVICE_PORT)"},
                          {"name": "EMPTY"}, {"name": "LATER", "value": "$(URL)/x $(UNDEFINED)"}]}, services=[SVC])
    assert env["URL"] == "http://10.96.0.12:9080" and env["EMPTY"] == ""
    assert env["LATER"] == "http://10.96.0.12:9080/x $(UNDEFINED)"
    assert env["REVIEWS_PORT_9080_TCP_ADDR"] == "10.96.0.12"
    off = {**POD, "spec": {"enableServiceLinks": False}}
    assert "REVIEWS_SERVICE_HOST" not in env_of({}, pod=off, services=[SVC])


def test_resource_field_refs() -> None:
    res = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}}
    refs = {"LCPU": {"resource": "limits.cpu"}, "LCPU_M": {"resource": "limits.cpu", "divisor": "1m"},
            "LMEM": {"resource": "limits.memory", "divisor": "1Mi"}, "RCPU_M": {"resource": "requests.cpu",
                                                                            "divisor": "1m"},
            "RMEM": {"resource": "requests.memory"}, "LSTORE": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}
    env = env_of({"resources": res, "env": [{"name": k, "valueFrom": {"resourceFieldRef": v}} for k, v in refs.items()]})
    # limits.cpu 0.5 rounds up to 1; an unset request is the limit; an unset limit is the node's allocatable.
    assert env == {"LCPU": "1", "LCPU_M": "500", "LMEM": "128", "RCPU_M": "250", "RMEM": "134217728", "LSTORE": "100"}
    assert env_of({"env": [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}) == \
        {"C": "8"}
    with pytest.raises(images.ImageError) as e:
        env_of({"env": [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]})
    assert "unsupported container resource" in e.value.message


def test_quantities() -> None:
    assert parse_quantity("250m") == Fraction(1, 4) and parse_quantity("1Gi") == 2**30
    assert parse_quantity("1e3") == 1000 and parse_quantity(2) == 2 and parse_quantity("1.5k") == 1500
    with pytest.raises(QuantityError):
        parse_quantity("1 GB")
    assert resource_value({"limits": {"memory": "1G"}}, "limits.memory", parse_quantity("1Mi"), NODE) == "954"


def test_container_env_layers() -> None:
    prog = images.resolve({"name": "d", "image": BOOKINFO})
    env = container_env(POD, {"name": "d", "env": [{"name": "SERVICE_VERSION", "value": "v9"}]}, prog,
                        pod_ip="10.244.0.5", host_ip="10.244.0.1", has_sidecar=False,
                        configmaps=lambda ns, name: None, services=[SVC], allocatable=NODE)
    assert env["SERVICE_VERSION"] == "v9"  # the container's env wins over the image's
    assert env["REVIEWS_SERVICE_HOST"] == "10.96.0.12" and env["HOSTNAME"] == "web-1"


def test_hostname_is_the_sandboxes() -> None:
    prog = images.resolve({"name": "c", "image": "busybox"})

    def hostname(spec: dict[str, Any]) -> str:
        pod = {"metadata": {"name": "web-1", "namespace": "tutorial"}, "spec": spec}
        return container_env(pod, {"name": "c"}, prog, pod_ip="10.244.0.5", host_ip="10.244.0.1", has_sidecar=False,
                             configmaps=lambda ns, name: None, allocatable=NODE)["HOSTNAME"]

    assert hostname({}) == "web-1"
    assert hostname({"hostname": "db-0", "subdomain": "db"}) == "db-0"
    assert hostname({"hostname": "db-0", "subdomain": "db", "setHostnameAsFQDN": True}) == \
        "db-0.db.tutorial.svc.cluster.local"
