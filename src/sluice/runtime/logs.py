"""Reading CRI container logs the way kubelet serves `pods/<name>/log`.

Called by `Kubelet.log_source` with the log file of one container run (written by `sluice.runtime.shim`),
and by `Kubelet.read_log_lines` (`read_lines`: (time, line) pairs for the console). The options
(`tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`, `follow`) are applied in kubelet's
order: tail first, then the time filter, then the byte limit. Invalid options are `ApiError`s, raised before
the response starts so they reach the client as `Status` objects.

A run's log is its rotated files (`sluice.runtime.logfiles`) followed by its current file, read as one: the
kubelet itself serves only the current file, but a tail or a follow that stops at a rotation loses lines a user
expects to see. A follow notices a rotation when the file's name points at a new inode, finishes the old file
and goes on with the new one.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from sluice.api.errors import ApiError
from sluice.runtime import logfiles

__all__ = ["LogOptions", "parse_options", "serve_log", "format_ts", "read_lines"]

_TRUE = {"1", "t", "true", "y", "yes"}
_BLOCK = 64 * 1024


def format_ts(ns: int) -> str:
    """RFC3339 with nine fraction digits, as the shim writes and kubelet prints (`RFC3339NanoFixed`)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


@dataclass(frozen=True)
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: str | None = None  # a timestamp in the shim's fixed format: records at or after it are shown


def _invalid(field: str, value: str, detail: str) -> ApiError:
    return ApiError.bad_request(f"{field}: Invalid value: {value}: {detail}",
                                [{"reason": "FieldValueInvalid", "field": field,
                                  "message": f"Invalid value: {value}: {detail}"}])


def _int(query: dict[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError.bad_request(f'{key}: Invalid value: "{raw}": must be an integer') from None


def _parse_time(raw: str) -> datetime:
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.11 accepts at most microseconds; RFC3339Nano may carry nanoseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError.bad_request(f'sinceTime: Invalid value: "{raw}": must be an RFC3339 time') from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def parse_options(query: dict[str, str], now_ns: int | None = None) -> LogOptions:
    """Validate the query of a log request (kube-apiserver's `ValidatePodLogOptions`)."""
    tail = _int(query, "tailLines")
    limit = _int(query, "limitBytes")
    since_seconds = _int(query, "sinceSeconds")
    since_time = query.get("sinceTime") or None
    if tail is not None and tail < 0:
        raise _invalid("tailLines", str(tail), "must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise _invalid("limitBytes", str(limit), "must be greater than 0")
    if since_seconds is not None and since_time is not None:
        raise ApiError.bad_request("at most one of `sinceTime` or `sinceSeconds` may be specified")
    since: str | None = None
    if since_seconds is not None:
        if since_seconds < 1:
            raise _invalid("sinceSeconds", str(since_seconds), "must be greater than 0")
        now = time.time_ns() if now_ns is None else now_ns
        since = format_ts(now - since_seconds * 1_000_000_000)
    elif since_time is not None:
        when = _parse_time(since_time)
        since = format_ts(int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000)
    return LogOptions(
        container=query.get("container", ""),
        follow=query.get("follow", "").lower() in _TRUE,
        previous=query.get("previous", "").lower() in _TRUE,
        timestamps=query.get("timestamps", "").lower() in _TRUE,
        tail_lines=tail, limit_bytes=limit, since=since)


def _tail_scan(f: BinaryIO, end: int, lines: int) -> tuple[int, int]:
    """(offset where the last `lines` records start, how many records were found up to that many), reading
    backwards in blocks from `end`."""
    if lines == 0:
        return end, 0
    pos = end
    count = 0
    # A trailing newline ends the last record; it does not start a new one.
    skip_last = True
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        i = len(block)
        while True:
            i = block.rfind(b"\n", 0, i)
            if i < 0:
                break
            if skip_last and pos + i == end - 1:
                skip_last = False
                continue
            count += 1
            if count == lines:
                return pos + i + 1, count
    # The first record starts at 0 (it has no newline before it).
    return 0, count + (1 if end > 0 else 0)


def _tail_start(files: list[str], lines: int | None) -> tuple[int, int]:
    """Where the last `lines` records of a run's files (oldest first, the current one last) start: (index of
    the file, offset in its contents); everything with `lines` None."""
    if lines is None:
        return 0, 0
    need = lines
    for i in range(len(files) - 1, -1, -1):
        path = files[i]
        if path.endswith(logfiles.GZ):
            f: BinaryIO = io.BytesIO(logfiles.read_whole(path))
        else:
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue  # removed by a rotation meanwhile
        with f:
            off, found = _tail_scan(f, f.seek(0, os.SEEK_END), need)
        if found >= need or i == 0:
            return i, off
        need -= found
    return 0, 0


class _Formatter:
    """Turns CRI records into what the client sees, honouring `since`, `timestamps` and `limitBytes`."""

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.remaining = opts.limit_bytes

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def render(self, records: list[bytes]) -> bytes:
        out: list[bytes] = []
        since = self.opts.since.encode() if self.opts.since else None
        for rec in records:
            parts = rec.split(b" ", 3)
            if len(parts) < 4:
                continue  # not a CRI record (never written by the shim): skip rather than garble
            ts, _stream, tag, content = parts
            if since is not None and ts < since:
                continue
            text = content + (b"\n" if tag == b"F" else b"")
            out.append(ts + b" " + text if self.opts.timestamps else text)
        data = b"".join(out)
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        return data


async def serve_log(request: web.Request, path: Path, opts: LogOptions,
                    finished: Callable[[], bool]) -> web.StreamResponse:
    """Stream the log of the run whose current file is `path`, its rotated files first (`logfiles`); with
    `follow`, keep streaming across rotations until `finished()` and the file stops growing."""
    files = logfiles.chain(str(path))
    idx, offset = await asyncio.to_thread(_tail_start, files, opts.tail_lines)
    resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache, private"})
    await resp.prepare(request)
    fmt = _Formatter(opts)
    seen = {logfiles.stamp_of(p) for p in files[:-1]}
    for p in files[idx:-1]:  # complete rotated files: each holds whole records
        if fmt.exhausted:
            break
        data = (await asyncio.to_thread(logfiles.read_whole, p))[offset:]
        offset = 0
        out = fmt.render(data.split(b"\n")[:-1])
        if out:
            await resp.write(out)
    if idx < len(files) - 1:
        offset = 0
    try:
        await _stream_current(resp, path, offset, opts, fmt, finished, seen)
    except FileNotFoundError:
        pass  # the pod was removed while we read: end the stream, as kubelet does
    await resp.write_eof()
    return resp


async def _stream_current(resp: web.StreamResponse, path: Path, offset: int, opts: LogOptions, fmt: _Formatter,
                          finished: Callable[[], bool], seen: set[str]) -> None:
    f = path.open("rb")
    try:
        if await _catch_up(resp, path, fmt, seen, os.fstat(f.fileno()).st_ino, offset):
            offset = 0  # a rotation came between the listing and the open: the offset was in that file
        f.seek(offset)
        pending = b""
        writer_gone = False
        replaced = False  # the name now points at a new file: read this one to its end, then switch
        while not fmt.exhausted:
            chunk = f.read(_BLOCK)
            if chunk:
                pending += chunk
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    records = pending[:cut].split(b"\n")
                    pending = pending[cut + 1:]
                    data = fmt.render(records)
                    if data:
                        await resp.write(data)
                continue
            if not replaced and _rotated_away(path, f):
                replaced = True  # the shim writes nothing here after the rotation: one more read finishes it
                continue
            if replaced:
                # This file is complete. Files rotated after it come next (if we fell behind), then the new one.
                ours = os.fstat(f.fileno()).st_ino
                f.close()
                await _catch_up(resp, path, fmt, seen, ours, 0)
                f = path.open("rb")
                pending = b""
                replaced = False
                continue
            if not opts.follow or writer_gone:
                break
            if finished():
                writer_gone = True  # one more read picks up whatever it wrote before it went
                continue
            await asyncio.sleep(0.1)
    finally:
        f.close()


async def _catch_up(resp: web.StreamResponse, path: Path, fmt: _Formatter, seen: set[str], ours: int,
                    offset: int) -> bool:
    """Stream the rotated files not seen yet (other than the open file `ours`), the first from `offset`;
    whether there were any."""
    any_new = False
    for p in logfiles.rotated(str(path)):
        stamp = logfiles.stamp_of(p)
        if stamp in seen:
            continue
        seen.add(stamp)
        if not p.endswith(logfiles.GZ) and _inode(p) == ours:
            continue
        data = await asyncio.to_thread(logfiles.read_whole, p)
        out = fmt.render(data[0 if any_new else offset:].split(b"\n")[:-1])
        any_new = True
        if out:
            await resp.write(out)
    return any_new


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


def _rotated_away(path: Path, f: BinaryIO) -> bool:
    """Whether `path` names another file than the open `f` now (a rotation replaced it)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def read_lines(path: Path, tail_lines: int, after: str | None = None) -> list[tuple[str, str]]:
    """(timestamp, text) of the last `tail_lines` records of a CRI log, oldest first, then only those
    strictly after `after` (a timestamp in the shim's fixed format, so they compare as text).

    Partial (`P`) records are joined with the rest of their line and stamped with its first record's time;
    a line still being written (no `F` record yet) is left for a later read. A missing file has no lines.
    """
    data = _read_tail(path, tail_lines)
    cut = data.rfind(b"\n")
    records = data[:cut].split(b"\n") if cut >= 0 else []
    out: list[tuple[str, str]] = []
    pending: dict[bytes, tuple[bytes, list[bytes]]] = {}  # stream → (first time, pieces)
    for rec in records:
        parts = rec.split(b" ", 3)
        if len(parts) < 4:
            continue  # not a CRI record
        ts, stream, tag, content = parts
        first, pieces = pending.pop(stream, (ts, []))
        pieces.append(content)
        if tag == b"P":
            pending[stream] = (first, pieces)
            continue
        stamp = first.decode("ascii", errors="replace")
        if after is None or stamp > after:
            out.append((stamp, b"".join(pieces).decode("utf-8", errors="replace")))
    out.sort(key=lambda line: line[0])  # stdout and stderr joined lines may finish out of order
    return out


def _read_tail(path: Path, tail_lines: int) -> bytes:
    """The bytes of the last `tail_lines` records of a run's files (rotated ones included)."""
    try:
        with path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                complete = f.read(1) == b"\n"
            else:
                complete = True
    except FileNotFoundError:
        return b""
    if not tail_lines:
        return b""
    # a record still being written counts as one in `_tail_scan`: ask for one more
    files = logfiles.chain(str(path))
    idx, offset = _tail_start(files, tail_lines if complete else tail_lines + 1)
    parts = []
    for i, p in enumerate(files[idx:]):
        data = logfiles.read_whole(p)
        parts.append(data[offset:] if i == 0 else data)
    return b"".join(parts)
