"""Kubernetes resource quantities, and the values the downward API gives for a container's resources.

Used by `sluice.runtime.environment` for `env[].valueFrom.resourceFieldRef`. The kubelet's rules: a limit that
is not set is the node's allocatable amount; a request that is not set is the limit when there is one (the API
server's defaulting) and 0 otherwise; the value is divided by `divisor` (default 1) and rounded up, CPU in
millicores first. Pure, except `node_allocatable`, which reads this machine's size.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

__all__ = ["QuantityError", "parse_quantity", "resource_value", "node_allocatable"]

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_NODE_RESOURCES = ("cpu", "memory", "ephemeral-storage")


class QuantityError(ValueError):
    pass


def parse_quantity(value: Any) -> Fraction:
    """`"250m"` → 1/4, `"1Gi"` → 1073741824, `2` → 2 (exact)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QuantityError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise QuantityError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    number, suffix = Fraction(m.group(1)), m.group(2) or ""
    if suffix in _BINARY:
        return number * Fraction(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    return number * Fraction(10) ** int(suffix[1:])


def _amount(section: Any, name: str) -> Fraction | None:
    if isinstance(section, dict) and section.get(name) is not None:
        return parse_quantity(section[name])
    return None


def resource_value(resources: Mapping[str, Any], resource: str, divisor: Fraction | None,
                   allocatable: Mapping[str, Fraction]) -> str:
    """The string a `resourceFieldRef` for `resource` (e.g. `limits.memory`) gives for these `resources`."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (name in _NODE_RESOURCES or name.startswith("hugepages-")):
        raise QuantityError(f"unsupported container resource : {resource}")
    divisor = divisor if divisor else Fraction(1)
    if divisor <= 0:
        raise QuantityError(f"invalid divisor for {resource}: must be positive")
    limit = _amount(resources.get("limits"), name)
    if kind == "limits":
        value = limit if limit is not None else allocatable.get(name, Fraction(0))
    else:
        request = _amount(resources.get("requests"), name)
        value = request if request is not None else limit if limit is not None else Fraction(0)
    if name == "cpu":
        return str(math.ceil(math.ceil(value * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(value) / math.ceil(divisor)))


@functools.cache
def node_allocatable() -> dict[str, Fraction]:
    """This machine's CPUs, memory and root file system size: what a limit that is not set stands for."""
    out = {"cpu": Fraction(os.cpu_count() or 1), "memory": Fraction(0), "ephemeral-storage": Fraction(0)}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    out["memory"] = Fraction(int(line.split()[1]) * 1024)
                    break
    except OSError:
        pass
    try:
        st = os.statvfs("/")
        out["ephemeral-storage"] = Fraction(st.f_blocks * st.f_frsize)
    except OSError:
        pass
    return out
