"""Progress display for long waits: a rich spinner on a terminal's stderr, nothing when output is redirected."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["waiting"]


@contextmanager
def waiting(message: str) -> Iterator[None]:
    """Show `message` with a spinner while the block runs; scripts (no TTY) see no extra output."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message, spinner="dots"):
        yield
