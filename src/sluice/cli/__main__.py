"""`python -m sluice.cli`: the same as the `sluice` console script."""

from __future__ import annotations

from sluice.cli.main import main

main()
