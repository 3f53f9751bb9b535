"""The mesh bench's arguments and tables: loads as RATExCONNECTIONS, feature variants checked before anything
starts, medians with their spread, and ratios against the bare pair."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import mesh_bench  # noqa: E402
from mesh_bench import Load, Sample, dataplane_table, feature_table, parse_args  # noqa: E402


def test_defaults_are_the_full_run() -> None:
    args = parse_args([])
    assert (args.duration, args.reps) == (20.0, 5)
    assert args.loads == [Load(1000, 4), Load(500, 1)]
    # what a Sluice sidecar has, each alone and all together (not the ALS tuning variants)
    assert args.features == [*mesh_bench.SLUICE_FEATURES, "+".join(mesh_bench.SLUICE_FEATURES)]
    assert args.sections == ["dataplane", "propagation", "demo"]
    assert not args.log_on_only and parse_args(["--log-on-only"]).log_on_only
    assert parse_args(["--features", ""]).features == []


def test_short_run_and_feature_variants() -> None:
    args = parse_args(["--duration", "2", "--reps", "5", "--load", "300x1", "--features", "als,file_log+als",
                       "--sections", "dataplane"])
    assert args.loads == [Load(300, 1)] and str(args.loads[0]) == "300 rps on one connection"
    assert args.features == ["als", "file_log+als"]
    assert parse_args(["--features", "als256k,als1m+als_noextra"]).features == ["als256k", "als1m+als_noextra"]


@pytest.mark.parametrize("argv", [["--load", "fast"], ["--load", "0x4"], ["--features", "tracing"],
                                  ["--features", "als+tracing"], ["--sections", "everything"], ["--reps", "0"]])
def test_bad_arguments_are_refused_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def _samples(p50s: list[float], cpu: float | None, rps: float = 1000.0) -> list[Sample]:
    return [Sample(p, p * 2, p * 4, rps, 0, cpu) for p in p50s]


def test_tables_report_medians_spread_and_ratios() -> None:
    samples = {"direct": _samples([0.2, 0.3, 0.25], None), "bare": _samples([0.5, 0.6, 0.7], 0.30),
               "bare+als": _samples([0.6, 0.7, 0.8], 0.33), "sluice": _samples([0.6, 0.66, 1.2], 0.36),
               "sluice-nolog": _samples([0.55, 0.6, 0.65], 0.33)}
    table = "\n".join(dataplane_table(samples, Load(1000, 4), 2.0, 3))
    assert "| bare | 0.60 (0.50–0.70) |" in table
    assert "| sluice | 0.66 (0.60–1.20) |" in table
    assert "| **sluice / bare** (medians) | 1.10× |" in table and "1.20× |" in table  # p50 and CPU
    assert "| sluice / bare (best rounds) | 1.20× |" in table  # 0.60 / 0.50
    assert "| **sluice-nolog / bare** (medians) | 1.00× |" in table  # the log-off configuration too
    assert "0.228 / 0.298" in table  # Istio's published figures stay
    [row] = [r for r in feature_table(samples, ["als"]) if r.startswith("| als")]
    assert row == "| als | +0.100 | +0.200 | +0.400 | +0.030 | 1.10× |"
    assert "did not keep up" not in table


def test_a_machine_that_cannot_keep_up_is_said_so() -> None:
    samples = {"direct": _samples([0.2], None), "bare": _samples([0.5], 0.3), "sluice": _samples([90.0], 0.5, 600)}
    table = "\n".join(dataplane_table(samples, Load(1000, 4), 2.0, 1))
    assert "**The machine did not keep up**" in table and "sluice (1 of 1)" in table
