"""`python -m sluice.samples.fortio COMMAND …` (what `/usr/bin/fortio` runs in a fortio container)."""

from __future__ import annotations

import sys

from sluice.samples.fortio.cli import main

if __name__ == "__main__":
    sys.exit(main())
