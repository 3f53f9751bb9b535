"""The user story's kubectl steps, verbatim, with the real kubectl 1.35 and 1.20 against a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import Kubectl
from tests.story import STORY_VS


def _use_namespace(kubectl: Kubectl, tmp_path: Path, ns: str) -> dict[str, str]:
    """A kubeconfig whose context namespace is `ns`, as a user of the story has (`tutorial`)."""
    cfg = yaml.safe_load(kubectl.daemon.kubeconfig.read_text())
    cfg["contexts"][0]["context"]["namespace"] = ns
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    env = {"KUBECONFIG": str(path), "TMPDIR": str(tmp_path)}
    kubectl("create", "namespace", ns, env=env, check=True)
    return env


def _weights(kubectl: Kubectl, env: dict[str, str]) -> list[int]:
    out = kubectl("get", "virtualservice", "reviews", "-o", "json", env=env, check=True).stdout
    return [r["weight"] for r in json.loads(out)["spec"]["http"][0]["route"]]


def test_story_apply_get_edit_apply(kubectl: Kubectl, tmp_path: Path) -> None:
    ns = f"tutorial-{kubectl.version.replace('.', '')}"
    env = _use_namespace(kubectl, tmp_path, ns)

    # Step 1: apply the 90:10 VirtualService from stdin, verbatim.
    cp = kubectl("apply", "-f", "-", input=STORY_VS, env=env, check=True)
    assert cp.stdout.strip() == "virtualservice.networking.istio.io/reviews created"
    assert _weights(kubectl, env) == [90, 10]

    cp = kubectl("apply", "-f", "-", input=STORY_VS, env=env, check=True)
    assert cp.stdout.strip() == "virtualservice.networking.istio.io/reviews unchanged"

    # `get vs` prints Istio's printer columns.
    lines = kubectl("get", "vs", env=env, check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert lines[1].split()[:2] == ["reviews", '["reviews"]']

    # The bad edit (v2 at 80, v3 left at 10) is rejected with the server's message; nothing changes.
    # The editor script keeps a copy of each file kubectl hands it: the second one carries the errors.
    seen = tmp_path / "seen.txt"
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\nsed -i "s/weight: 90/weight: 80/" "$1"\ncat "$1" >> {seen}\n')
    editor.chmod(0o755)
    cp = kubectl("edit", "virtualservice", "reviews", env={**env, "KUBE_EDITOR": str(editor)})
    assert cp.returncode == 1, cp.stderr
    assert 'virtualservices.networking.istio.io "reviews" is invalid' in cp.stderr
    assert "Edit cancelled, no valid changes were saved." in cp.stderr
    assert ("# * spec.http[0].route: Invalid value: 90: total destination weight 90 != 100"
            in seen.read_text().splitlines())
    assert _weights(kubectl, env) == [90, 10]
    # The story's exact editor command does the same.
    cp = kubectl("edit", "virtualservice", "reviews", env={**env, "KUBE_EDITOR": r"sed -i s/weight:\ 90/weight:\ 80/"})
    assert cp.returncode == 1 and "Edit cancelled, no valid changes were saved." in cp.stderr
    assert _weights(kubectl, env) == [90, 10]

    bad = STORY_VS.replace("weight: 90", "weight: 80")
    cp = kubectl("apply", "-f", "-", input=bad, env=env)
    assert cp.returncode == 1
    assert cp.stderr.strip() == ('The VirtualService "reviews" is invalid: spec.http[0].route: Invalid value: 90: '
                                 "total destination weight 90 != 100")
    assert _weights(kubectl, env) == [90, 10]

    # The corrected edit (80:20) is saved.
    editor = r"sed -i -e s/weight:\ 90/weight:\ 80/ -e s/weight:\ 10/weight:\ 20/"
    cp = kubectl("edit", "virtualservice", "reviews", env={**env, "KUBE_EDITOR": editor}, check=True)
    assert "virtualservice.networking.istio.io/reviews edited" in cp.stdout
    assert _weights(kubectl, env) == [80, 20]

    # Applying the file again moves the weights back: configured.
    seventy = STORY_VS.replace("weight: 90", "weight: 30").replace("weight: 10", "weight: 70")
    cp = kubectl("apply", "-f", "-", input=seventy, env=env, check=True)
    assert cp.stdout.strip() == "virtualservice.networking.istio.io/reviews configured"
    assert _weights(kubectl, env) == [30, 70]

    # An unknown field is rejected with its path (client- or server-side, depending on the kubectl version).
    bogus = STORY_VS.replace("  hosts:\n", "  bogusField: 1\n  hosts:\n")
    cp = kubectl("apply", "-f", "-", input=bogus, env=env)
    assert cp.returncode == 1
    assert "bogusField" in cp.stderr


def test_explain_virtualservice_route(kubectl: Kubectl) -> None:
    cp = kubectl("explain", "virtualservice.spec.http.route", check=True)
    assert "weight" in cp.stdout
    assert "destination" in cp.stdout


def test_get_single_object_table_and_errors(kubectl: Kubectl, tmp_path: Path) -> None:
    ns = f"tables-{kubectl.version.replace('.', '')}"
    env = _use_namespace(kubectl, tmp_path, ns)
    kubectl("apply", "-f", "-", input=STORY_VS, env=env, check=True)
    lines = kubectl("get", "vs", "reviews", env=env, check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    lines = kubectl("get", "vs", "-A", env=env, check=True).stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [ns, "reviews"] for line in lines[1:])
    cp = kubectl("get", "vs", "nonexistent", env=env)
    assert cp.returncode == 1
    assert cp.stderr.strip() == 'Error from server (NotFound): virtualservices.networking.istio.io "nonexistent" not found'
    cp = kubectl("get", "dr", env=env)
    assert cp.returncode == 0
    assert f"No resources found in {ns} namespace." in cp.stderr
    cp = kubectl("get", "nosuchtype", env=env)
    assert cp.returncode == 1
    assert 'the server doesn\'t have a resource type "nosuchtype"' in cp.stderr
