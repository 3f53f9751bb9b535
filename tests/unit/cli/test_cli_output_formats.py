"""`-o` parsing and the non-table printers of `get`."""

from __future__ import annotations

import pytest

from sluice.cli.errors import CliError
from sluice.cli.get import no_resources_message, parse_output, print_objects
from sluice.client.discovery import ResourceInfo

VS = ResourceInfo("networking.istio.io", "v1", "virtualservices", "virtualservice", "VirtualService", True)
NS = ResourceInfo("", "v1", "namespaces", "namespace", "Namespace", False)
OBJ = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
       "metadata": {"name": "reviews", "namespace": "tutorial"}, "spec": {"hosts": ["reviews", "r2"]}}


def test_parse_output() -> None:
    assert parse_output(None).tabular and parse_output("wide").kind == "wide"
    assert parse_output("jsonpath={.metadata.name}").kind == "jsonpath"
    cc = parse_output("custom-columns=NAME:.metadata.name,HOSTS:.spec.hosts")
    assert [h for h, _ in cc.columns] == ["NAME", "HOSTS"]
    for bad in ("xml", "custom-columns=NAME", "jsonpath={.a"):
        with pytest.raises(CliError):
            parse_output(bad)


def test_custom_columns_print_go_values(capsys: pytest.CaptureFixture[str]) -> None:
    out = parse_output("custom-columns=NAME:.metadata.name,HOSTS:.spec.hosts,GW:.spec.gateways")
    print_objects([OBJ], out, single=False, infos=[VS])
    assert capsys.readouterr().out == "NAME      HOSTS          GW\nreviews   [reviews r2]   <none>\n"


def test_name_and_jsonpath(capsys: pytest.CaptureFixture[str]) -> None:
    print_objects([OBJ], parse_output("name"), single=False, infos=[VS])
    print_objects([OBJ], parse_output("jsonpath={.metadata.name}"), single=True, infos=[VS])
    print_objects([OBJ], parse_output("jsonpath={.items[*].metadata.name}"), single=False, infos=[VS])
    assert capsys.readouterr().out == "virtualservice.networking.istio.io/reviews\nreviewsreviews"


def test_no_resources_messages() -> None:
    assert no_resources_message("tutorial", False, VS) == "No resources found in tutorial namespace."
    assert no_resources_message("tutorial", True, VS) == "No resources found"
    assert no_resources_message("tutorial", False, NS) == "No resources found"
