"""Deployments through the real kubectl: apply, scale, label, delete with --wait (which 1.35 does by watch-list)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Kubectl

DATA = Path(__file__).resolve().parent.parent / "data"


def test_deployment_apply_scale_delete(kubectl: Kubectl) -> None:
    ns = f"work-{kubectl.version.replace('.', '')}"
    kubectl("create", "namespace", ns, check=True)
    manifest = (DATA / "deployment.yaml").read_text()
    cp = kubectl("apply", "-n", ns, "-f", "-", input=manifest, check=True)
    assert cp.stdout.strip() == "deployment.apps/reviews-v2 created"
    cp = kubectl("apply", "-n", ns, "-f", "-", input=manifest.replace("1.20.3", "1.20.4"), check=True)
    assert cp.stdout.strip() == "deployment.apps/reviews-v2 configured"
    obj = json.loads(kubectl("get", "-n", ns, "deployment", "reviews-v2", "-o", "json", check=True).stdout)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.20.4")
    assert obj["metadata"]["generation"] == 2

    cp = kubectl("scale", "-n", ns, "deployment", "reviews-v2", "--replicas=3", check=True)
    assert cp.stdout.strip() == "deployment.apps/reviews-v2 scaled"
    out = kubectl("get", "-n", ns, "deploy", "reviews-v2", "-o", "jsonpath={.spec.replicas}", check=True).stdout
    assert out == "3"

    cp = kubectl("label", "-n", ns, "deployment", "reviews-v2", "stage=canary", check=True)
    assert "labeled" in cp.stdout
    lines = kubectl("get", "-n", ns, "deployments", "-l", "stage in (canary,prod),app", check=True).stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]
    assert lines[1].split()[0] == "reviews-v2"

    cp = kubectl("delete", "-n", ns, "deployment", "reviews-v2", timeout=60, check=True)
    assert cp.stdout.startswith('deployment.apps "reviews-v2" deleted')
    cp = kubectl("get", "-n", ns, "deployments", check=True)
    assert "No resources found" in cp.stderr


SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"


def test_bookinfo_samples_apply_and_story_end(kubectl: Kubectl) -> None:
    ns = f"bookinfo-{kubectl.version.replace('.', '')}"
    kubectl("create", "namespace", ns, check=True)
    cp = kubectl("apply", "-n", ns, "-f", str(SAMPLES / "bookinfo.yaml"), check=True)
    assert "deployment.apps/reviews-v2 created" in cp.stdout
    assert "service/reviews created" in cp.stdout and "serviceaccount/bookinfo-reviews created" in cp.stdout
    cp = kubectl("apply", "-n", ns, "-f", str(SAMPLES / "destination-rule-all.yaml"), check=True)
    assert "destinationrule.networking.istio.io/reviews created" in cp.stdout
    lines = kubectl("get", "-n", ns, "dr", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "HOST", "AGE"]
    assert ["reviews", "reviews"] in [line.split()[:2] for line in lines[1:]]
    lines = kubectl("get", "-n", ns, "svc", "-o", "wide", check=True).stdout.splitlines()
    assert lines[0].split()[:6] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "SELECTOR" in lines[0]
    # The story's last steps: everything to v3, then reviews-v2 goes.
    kubectl("apply", "-n", ns, "-f", str(SAMPLES / "reviews-90-10.yaml"), check=True)
    cp = kubectl("apply", "-n", ns, "-f", str(SAMPLES / "virtual-service-reviews-v3.yaml"), check=True)
    assert cp.stdout.strip() == "virtualservice.networking.istio.io/reviews configured"
    obj = json.loads(kubectl("get", "-n", ns, "vs", "reviews", "-o", "json", check=True).stdout)
    assert obj["spec"]["http"][0]["route"] == [{"destination": {"host": "reviews", "subset": "v3"}}]
    cp = kubectl("delete", "-n", ns, "deployment", "reviews-v2", check=True)
    assert cp.stdout.startswith('deployment.apps "reviews-v2" deleted')
    names = kubectl("get", "-n", ns, "deploy", "-o", "name", check=True).stdout.split()
    assert "deployment.apps/reviews-v2" not in names and "deployment.apps/reviews-v3" in names
