"""The phased-rollout user story driven through `sluice` against a real daemon (seed/phased-rollout.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.cli_helpers import KUBECTL, Sluice, split_columns, with_namespace
from tests.story import STORY_VS

NS = "tutorial"
EDIT_80_10 = "sed -i s/weight:\\ 90/weight:\\ 80/"
EDIT_80_20 = "sed -i -e s/weight:\\ 90/weight:\\ 80/ -e s/weight:\\ 10/weight:\\ 20/"
INVALID = 'The VirtualService "reviews" is invalid: spec.http[0].route: Invalid value: 90: total destination weight'


@pytest.fixture(scope="module")
def sl(sluice_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sluice]:
    """`sluice` with a kubeconfig whose context namespace is `tutorial`, created first like the story's setup."""
    env = with_namespace(sluice_daemon.env, sluice_daemon.kubeconfig, NS,
                         tmp_path_factory.mktemp("story") / "kubeconfig")
    s = Sluice(env)
    assert s.ok("create", "namespace", NS) == f"namespace/{NS} created\n"
    yield s


def weights(sl: Sluice) -> list[int]:
    out = sl.ok("get", "vs", "reviews", "-o", "jsonpath={.spec.http[0].route[*].weight}")
    return [int(w) for w in out.split()]


def test_apply_story_virtualservice_from_stdin(sl: Sluice) -> None:
    assert sl.ok("apply", "-f", "-", input=STORY_VS) == "virtualservice.networking.istio.io/reviews created\n"
    assert weights(sl) == [90, 10]


def test_get_vs_prints_istio_columns(sl: Sluice) -> None:
    lines = sl.ok("get", "vs").splitlines()
    assert split_columns(lines[0]) == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert lines[0].startswith("NAME      GATEWAYS   HOSTS         AGE")
    cells = lines[1].split()
    assert cells[0] == "reviews" and cells[1] == '["reviews"]'
    everywhere = sl.ok("get", "vs", "-A", "--show-labels").splitlines()
    assert split_columns(everywhere[0]) == ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS", "AGE", "LABELS"]
    assert any(line.split()[:2] == [NS, "reviews"] for line in everywhere[1:])


def test_edit_80_10_is_rejected_and_nothing_changes(sl: Sluice) -> None:
    cp = sl("edit", "virtualservice", "reviews", env={"KUBE_EDITOR": EDIT_80_10})
    assert cp.returncode == 1
    lines = cp.stderr.splitlines()
    assert lines[0] == 'error: virtualservices.networking.istio.io "reviews" is invalid'
    assert lines[1].startswith('A copy of your changes has been stored to "')
    assert lines[2] == "error: Edit cancelled, no valid changes were saved."
    kept = Path(lines[1].split('"')[1])
    text = kept.read_text()
    kept.unlink()
    # The re-opened file carried the server's causes as comments above the user's version (weight 80).
    assert '# virtualservices.networking.istio.io "reviews" was not valid:' in text
    assert "# * spec.http[0].route: Invalid value: 90: total destination weight 90 != 100" in text
    assert "weight: 80" in text
    assert weights(sl) == [90, 10]


def test_edit_80_20_succeeds(sl: Sluice) -> None:
    cp = sl("edit", "vs", "reviews", env={"KUBE_EDITOR": EDIT_80_20})
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "virtualservice.networking.istio.io/reviews edited\n", "")
    assert weights(sl) == [80, 20]


def test_edit_without_changes_is_cancelled(sl: Sluice) -> None:
    cp = sl("edit", "vs", "reviews", env={"KUBE_EDITOR": "true"})
    assert (cp.returncode, cp.stderr) == (0, "Edit cancelled, no changes made.\n")


def test_apply_again_configured_then_unchanged(sl: Sluice) -> None:
    assert sl.ok("apply", "-f", "-", input=STORY_VS) == "virtualservice.networking.istio.io/reviews configured\n"
    assert weights(sl) == [90, 10]
    assert sl.ok("apply", "-f", "-", input=STORY_VS) == "virtualservice.networking.istio.io/reviews unchanged\n"


def test_apply_80_10_prints_the_validation_error(sl: Sluice, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(STORY_VS.replace("weight: 90", "weight: 80"))
    cp = sl("apply", "-f", str(bad))
    assert cp.returncode == 1
    assert cp.stderr.startswith(INVALID), cp.stderr
    assert weights(sl) == [90, 10]


def test_real_kubectl_sees_sluices_last_applied_annotation(sl: Sluice, tmp_path: Path) -> None:
    if not KUBECTL.exists():
        pytest.skip("kubectl 1.35 is not installed (make tools)")
    import subprocess

    cp = subprocess.run([str(KUBECTL), f"--cache-dir={tmp_path}", "apply", "-f", "-"], input=STORY_VS, env=sl.env,
                        capture_output=True, text=True, timeout=60)
    assert cp.stdout == "virtualservice.networking.istio.io/reviews unchanged\n", cp.stderr


def test_output_formats(sl: Sluice) -> None:
    obj = json.loads(sl.ok("get", "vs", "reviews", "-o", "json"))
    assert obj["kind"] == "VirtualService" and obj["metadata"]["namespace"] == NS
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    listed = json.loads(sl.ok("get", "virtualservices.networking.istio.io", "-o", "json"))
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["reviews"]
    assert listed["items"][0]["kind"] == "VirtualService"
    assert sl.ok("get", "vs", "-o", "name") == "virtualservice.networking.istio.io/reviews\n"
    assert sl.ok("get", "vs", "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}") == "reviews\n"
    y = sl.ok("get", "vs", "reviews", "-o", "yaml")
    assert y.startswith("apiVersion: networking.istio.io/v1\nkind: VirtualService\n")
    assert "resourceVersion: \"" in y


def test_describe_virtualservice(sl: Sluice) -> None:
    out = sl.ok("describe", "vs", "reviews")
    assert out.splitlines()[0] == "Name:         reviews"
    assert "Destination:  reviews subset v3 weight 10" in out


def test_analyze_reports_missing_subset(sl: Sluice, tmp_path: Path) -> None:
    dr = tmp_path / "dr.yaml"
    dr.write_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n"
        "  host: reviews\n  subsets:\n  - name: v2\n    labels: {version: v2}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\nspec:\n  selector: {app: reviews}\n"
        "  ports:\n  - port: 9080\n    name: http\n"
    )
    assert sl.ok("apply", "-f", str(dr)) == (
        "destinationrule.networking.istio.io/reviews created\nservice/reviews created\n"
    )
    cp = sl("analyze")
    assert cp.returncode != 0
    assert ('Error [IST0101] (VirtualService tutorial/reviews) Referenced host+subset in destinationrule not found: '
            '"reviews+v3"') in cp.stdout.splitlines()
    assert "Error: Analyzers found issues when analyzing namespace: tutorial." in cp.stderr
    # A file given with -f is analyzed with the stored config and named as the origin.
    fixed = tmp_path / "dr-v3.yaml"
    fixed.write_text(dr.read_text().split("---")[0] + "  - name: v3\n    labels: {version: v3}\n")
    cp = sl("analyze", "-f", str(fixed))
    assert "IST0101" not in cp.stdout


def test_delete_virtualservice(sl: Sluice) -> None:
    assert sl.ok("delete", "vs", "reviews") == 'virtualservice.networking.istio.io "reviews" deleted\n'
    cp = sl("get", "vs", "reviews")
    assert (cp.returncode, cp.stderr) == (
        1, 'Error from server (NotFound): virtualservices.networking.istio.io "reviews" not found\n')
    cp = sl("get", "vs")
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", "No resources found in tutorial namespace.\n")
