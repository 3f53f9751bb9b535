"""`sluice` verbs beyond the story path: scale, label, delete variants, create, logs, config, watch, errors."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.cli_helpers import ROOT, Sluice, sluice_command, split_columns, with_namespace

NS = "cli-commands"
DEPLOYMENT = (ROOT / "tests" / "data" / "deployment.yaml").read_text()


@pytest.fixture(scope="module")
def sl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sluice]:
    env = with_namespace(sluice_daemon.env, sluice_daemon.kubeconfig, NS, tmp_path_factory.mktemp("cmds") / "kc")
    s = Sluice(env)
    s.ok("create", "namespace", NS)
    yield s


def test_create_namespace_twice(sl: Sluice) -> None:
    cp = sl("create", "namespace", NS)
    assert (cp.returncode, cp.stderr) == (1, f'Error from server (AlreadyExists): namespaces "{NS}" already exists\n')


def test_apply_and_scale_deployment(sl: Sluice) -> None:
    assert sl.ok("apply", "-f", "-", input=DEPLOYMENT) == "deployment.apps/reviews-v2 created\n"
    lines = sl.ok("get", "deploy").splitlines()
    assert split_columns(lines[0]) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[0] == "reviews-v2"
    wide = sl.ok("get", "deployments.apps", "-o", "wide").splitlines()
    assert split_columns(wide[0])[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert sl.ok("scale", "deployment", "reviews-v2", "--replicas=3") == "deployment.apps/reviews-v2 scaled\n"
    assert sl.ok("get", "deploy", "reviews-v2", "-o", "jsonpath={.spec.replicas}") == "3"
    assert sl.ok("scale", "deploy/reviews-v2", "--replicas", "1") == "deployment.apps/reviews-v2 scaled\n"
    assert sl.ok("get", "deploy", "reviews-v2", "-o", "jsonpath={.spec.replicas}") == "1"
    # The scaled object still applies as configured (replicas came from the file), then unchanged.
    assert sl.ok("scale", "deploy", "reviews-v2", "--replicas=2")
    assert sl.ok("apply", "-f", "-", input=DEPLOYMENT) == "deployment.apps/reviews-v2 configured\n"
    assert sl.ok("apply", "-f", "-", input=DEPLOYMENT) == "deployment.apps/reviews-v2 unchanged\n"


def test_scale_errors(sl: Sluice) -> None:
    cp = sl("scale", "deploy", "missing", "--replicas=2")
    assert (cp.returncode, cp.stderr) == (1, 'Error from server (NotFound): deployments.apps "missing" not found\n')
    cp = sl("scale", "deploy", "reviews-v2")
    assert cp.returncode == 1 and cp.stderr.startswith("error: ")


def test_label(sl: Sluice) -> None:
    assert sl.ok("label", "deploy", "reviews-v2", "track=canary") == "deployment.apps/reviews-v2 labeled\n"
    assert sl.ok("get", "deploy", "-l", "track=canary", "-o", "name") == "deployment.apps/reviews-v2\n"
    cp = sl("label", "deploy", "reviews-v2", "track=stable")
    assert (cp.returncode, cp.stderr) == (1, "error: 'track' already has a value (canary), and --overwrite is false\n")
    assert sl.ok("label", "deploy/reviews-v2", "track=stable", "--overwrite") == "deployment.apps/reviews-v2 labeled\n"
    assert "track=stable" in sl.ok("get", "deploy", "--show-labels")
    assert sl.ok("label", "deploy", "reviews-v2", "track-") == "deployment.apps/reviews-v2 unlabeled\n"
    assert sl.ok("get", "deploy", "-l", "track", "-o", "name") == ""


def test_describe_deployment(sl: Sluice) -> None:
    out = sl.ok("describe", "deployment", "reviews-v2")
    assert out.startswith("Name:                   reviews-v2\nNamespace:              cli-commands\n")
    assert "Selector:               app=reviews,version=v2" in out
    assert "docker.io/istio/examples-bookinfo-reviews-v2" in out


def test_logs_without_pods(sl: Sluice) -> None:
    cp = sl("logs", "-l", "app=nothing-here")
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", f"No resources found in {NS} namespace.\n")
    cp = sl("logs", "no-such-pod", "-c", "istio-proxy")
    assert (cp.returncode, cp.stderr) == (1, 'Error from server (NotFound): pods "no-such-pod" not found\n')


def test_get_watch_prints_new_rows(sl: Sluice, tmp_path: Path) -> None:
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
    sl.ok("apply", "-f", "-", input=cm.format(name="first"))
    env = dict(sl.env)
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.Popen([*sluice_command(), "get", "configmaps", "-w"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split()[:2] == ["NAME", "DATA"]
        assert proc.stdout.readline().split()[0] == "first"
        sl.ok("apply", "-f", "-", input=cm.format(name="second"))
        assert proc.stdout.readline().split()[0] == "second"
    finally:
        proc.terminate()
        proc.wait(10)


def test_delete_variants(sl: Sluice, tmp_path: Path) -> None:
    cms = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: del-{i}\n  labels: {{group: del}}\n" for i in range(3))
    f = tmp_path / "cms.yaml"
    f.write_text(cms)
    assert sl.ok("apply", "-f", str(f)).count("created") == 3
    assert sl.ok("delete", "-f", str(f), "--wait=false").splitlines() == [
        'configmap "del-0" deleted', 'configmap "del-1" deleted', 'configmap "del-2" deleted']
    sl.ok("apply", "-f", str(f))
    assert sl.ok("delete", "configmaps", "-l", "group=del").count("deleted") == 3
    assert sl.ok("get", "cm", "-l", "group=del", "-o", "name") == ""
    cp = sl("delete", "cm", "del-0")
    assert (cp.returncode, cp.stderr) == (1, 'Error from server (NotFound): configmaps "del-0" not found\n')
    assert sl("delete", "cm", "del-0", "--ignore-not-found").returncode == 0


def test_delete_deployment_waits_until_gone(sl: Sluice) -> None:
    assert sl.ok("delete", "deployment", "reviews-v2") == 'deployment.apps "reviews-v2" deleted\n'
    cp = sl("get", "deploy", "reviews-v2")
    assert cp.returncode == 1 and "NotFound" in cp.stderr


def test_config_commands(sl: Sluice) -> None:
    view = sl.ok("config", "view")
    assert "certificate-authority-data: DATA+OMITTED" in view
    assert "token: REDACTED" in view
    assert "REDACTED" not in sl.ok("config", "view", "--raw")
    assert sl.ok("config", "current-context").strip()


def test_errors_are_kubectl_style(sl: Sluice) -> None:
    cp = sl("get", "nosuchtype")
    assert (cp.returncode, cp.stderr) == (1, 'error: the server doesn\'t have a resource type "nosuchtype"\n')
    cp = sl("apply", "-f", "-", input="apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n")
    assert cp.returncode == 1 and 'no matches for kind "Nope" in version "v1"' in cp.stderr
    cp = sl("apply", "-f", "-", input="kind: [unclosed\n")
    assert cp.returncode == 1 and cp.stderr.startswith("error: ")
    cp = sl("get", "vs", "-n", "no-such-namespace")
    assert cp.returncode == 0 and cp.stderr == "No resources found in no-such-namespace namespace.\n"
    for cp in (sl("get", "vs", "-o", "bogus"), sl("edit", "vs", "missing"), sl("describe", "vs", "missing")):
        assert cp.returncode == 1 and "Traceback" not in cp.stderr


def test_json_list_output_of_namespaces(sl: Sluice) -> None:
    doc = json.loads(sl.ok("get", "ns", "-o", "json"))
    assert NS in [i["metadata"]["name"] for i in doc["items"]]
