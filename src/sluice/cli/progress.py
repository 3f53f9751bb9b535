"""Progress display for long waits: a rich spinner on a terminal's stderr, nothing when output is redirected."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["waiting"]


@contextmanager
def waiting(message: str) -> Iterator[Callable[[str], None]]:
    """Show `message` with a spinner while the block runs; scripts (no TTY) see no extra output. The block gets a
    function that replaces the spinner's text (the latest state of what is waited for)."""
    if not sys.stderr.isatty():
        yield lambda _text: None
        return
    from rich.console import Console

    with Console(stderr=True).status(message, spinner="dots") as status:
        yield lambda text: status.update(text)
