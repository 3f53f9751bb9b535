"""`kubectl attach`: a running container's output, live, on the channels of one WebSocket.

The container's stdout and stderr are the CRI log its shim writes (`<time> <stdout|stderr> <F|P> <text>`);
attach follows that file from its current end, as a runtime attach shows only what the container writes from
now on, and ends with a Success status when the container's run ends. Started by
`sluice.runtime.streams.source`, which refuses stdin beforehand (containers run without a stdin pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from sluice.runtime.streams import channels

__all__ = ["run_attach", "split_records"]

_BLOCK = 64 * 1024
_POLL = 0.1


def split_records(data: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """(stream, text) of the complete CRI records in `data`, and the incomplete rest."""
    cut = data.rfind(b"\n")
    if cut < 0:
        return [], data
    out: list[tuple[str, bytes]] = []
    for rec in data[:cut].split(b"\n"):
        parts = rec.split(b" ", 3)
        if len(parts) < 4:
            continue
        _ts, stream, tag, content = parts
        out.append((stream.decode("ascii", "replace"), content + (b"\n" if tag == b"F" else b"")))
    return out, data[cut + 1:]


async def run_attach(session: channels.Session, log: Path, *, stdout: bool, stderr: bool,
                     running: Callable[[], bool]) -> None:
    """Follow `log` until `running()` turns false (then Success) or the client leaves."""
    session.start()
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            pending = b""
            last_round = False
            while not session.closed.is_set():
                chunk = f.read(_BLOCK)
                if chunk:
                    records, pending = split_records(pending + chunk)
                    for stream, text in records:
                        if stream == "stderr":
                            ok = await session.send(channels.STDERR, text) if stderr else True
                        else:
                            ok = await session.send(channels.STDOUT, text) if stdout else True
                        if not ok:
                            return
                    continue
                if last_round:
                    await session.finish(channels.success())
                    return
                if not running():
                    last_round = True  # one more read picks up what it wrote before it went
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.closed.wait(), _POLL)
    except FileNotFoundError:
        await session.finish(channels.success())
    finally:
        await session.stop()
