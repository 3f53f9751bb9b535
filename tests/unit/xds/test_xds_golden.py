"""Golden tests: each scenario's generated resources, as YAML, against `golden/<scenario>.yaml`.

`REFRESH_GOLDEN=1 pytest tests/unit/xds` rewrites the golden files; review the diff before keeping it.
"""

from __future__ import annotations

import difflib

import pytest
from xds_scenarios import GOLDEN, as_yaml, refresh, run_scenario, scenario_names


@pytest.mark.parametrize("name", scenario_names())
def test_golden(name: str) -> None:
    actual = as_yaml(name, run_scenario(name))
    path = GOLDEN / f"{name}.yaml"
    if refresh() or not path.exists():
        path.write_text(actual)
        if not refresh():
            pytest.fail(f"wrote missing golden file {path}; review it and run again")
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"golden/{name}.yaml", "generated"))
        pytest.fail(f"generated config differs from golden/{name}.yaml "
                    f"(REFRESH_GOLDEN=1 to accept):\n{diff[:20000]}")


def test_generation_is_deterministic() -> None:
    for name in scenario_names():
        assert as_yaml(name, run_scenario(name)) == as_yaml(name, run_scenario(name)), name
