"""Where sluice keeps its state: `SLUICE_HOME`, default `~/.sluice`. Read by the daemon, the CLI and the client."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home_from_env"]


def home_from_env() -> Path:
    return Path(os.environ.get("SLUICE_HOME") or "~/.sluice").expanduser()
