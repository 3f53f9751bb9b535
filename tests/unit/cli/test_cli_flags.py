"""Command-line parsing details that make `sluice` accept kubectl's spelling of flags."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sluice.cli.delete import parse_duration
from sluice.cli.errors import CliError
from sluice.cli.label import parse_label_changes
from sluice.cli.main import cli, normalise_bool_flags, run


def test_bool_flags_with_values() -> None:
    assert normalise_bool_flags(["delete", "deploy", "x", "--wait=false"]) == ["delete", "deploy", "x", "--no-wait"]
    assert normalise_bool_flags(["get", "vs", "--watch=true", "--show-labels=false"]) == ["get", "vs", "--watch"]
    assert normalise_bool_flags(["logs", "--", "--follow=false"]) == ["logs", "--", "--follow=false"]
    assert normalise_bool_flags(["get", "--output=yaml"]) == ["get", "--output=yaml"]


def test_durations() -> None:
    assert parse_duration("0") == 0
    assert parse_duration("30s") == 30
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5") == 5
    with pytest.raises(CliError):
        parse_duration("5x")


def test_label_changes() -> None:
    assert parse_label_changes(["a=b", "c-", "example.com/d="]) == ({"a": "b", "example.com/d": ""}, ["c"])
    with pytest.raises(CliError, match="invalid label value"):
        parse_label_changes(["a=b c"])
    with pytest.raises(CliError, match="both modify and remove"):
        parse_label_changes(["a=b", "a-"])
    with pytest.raises(CliError, match="invalid label spec"):
        parse_label_changes(["-bad-=x"])


def test_usage_errors_are_kubectl_style(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["get", "--no-such-flag"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "See 'sluice get --help' for usage." in err
    assert "Traceback" not in err


def test_missing_kubeconfig_is_an_error_not_a_traceback(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_HOME", "/nonexistent-sluice-home")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert run(["get", "vs"]) == 1
    assert capsys.readouterr().err.startswith("error: no kubeconfig found at /nonexistent-sluice-home/kubeconfig")


def test_connection_refused_is_reported_like_kubectl(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import pathlib
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = pathlib.Path(str(tmp_path)) / "kc"
    kc.write_text(f"clusters:\n- name: c\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\ncontexts:\n- name: c\n"
                  "  context: {cluster: c}\ncurrent-context: c\n")
    assert run(["--kubeconfig", str(kc), "get", "vs"]) == 1
    assert capsys.readouterr().err == (
        f"The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
    )


def test_help_lists_kubectl_verbs() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for verb in ("apply", "get", "describe", "edit", "delete", "create", "label", "scale", "logs", "config",
                 "analyze", "up", "down", "status", "demo"):
        assert f"  {verb}" in out
