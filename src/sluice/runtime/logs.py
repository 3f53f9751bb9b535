"""Reading CRI container logs the way kubelet serves `pods/<name>/log`.

Called by `Kubelet.log_source` with the log file of one container run (written by `sluice.runtime.shim`),
and by `Kubelet.read_log_lines` (`read_lines`: (time, line) pairs for the console). The options
(`tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`, `follow`) are applied in kubelet's
order: tail first, then the time filter, then the byte limit. Invalid options are `ApiError`s, raised before
the response starts so they reach the client as `Status` objects.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from sluice.api.errors import ApiError

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


def _tail_offset(path: Path, lines: int) -> int:
    """The file offset where the last `lines` records start (reading backwards in blocks)."""
    if lines == 0:
        return path.stat().st_size
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
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
                    return pos + i + 1
        return 0


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
    """Stream the log at `path`; with `follow`, keep streaming until `finished()` and the file stops growing."""
    offset = 0
    if opts.tail_lines is not None and path.exists():
        offset = _tail_offset(path, opts.tail_lines)
    resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache, private"})
    await resp.prepare(request)
    fmt = _Formatter(opts)
    pending = b""
    writer_gone = False
    try:
        with path.open("rb") as f:
            f.seek(offset)
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
                if not opts.follow or writer_gone:
                    break
                if finished():
                    writer_gone = True  # one more read picks up whatever it wrote before it went
                    continue
                await asyncio.sleep(0.1)
    except FileNotFoundError:
        pass  # the pod was removed while we read: end the stream, as kubelet does
    await resp.write_eof()
    return resp


def read_lines(path: Path, tail_lines: int, after: str | None = None) -> list[tuple[str, str]]:
    """(timestamp, text) of the last `tail_lines` records of a CRI log, oldest first, then only those
    strictly after `after` (a timestamp in the shim's fixed format, so they compare as text).

    Partial (`P`) records are joined with the rest of their line and stamped with its first record's time;
    a line still being written (no `F` record yet) is left for a later read. A missing file has no lines.
    """
    try:
        with path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end and tail_lines:
                f.seek(end - 1)
                # a record still being written counts as one in `_tail_offset`: ask for one more
                complete = f.read(1) == b"\n"
                f.seek(_tail_offset(path, tail_lines if complete else tail_lines + 1))
                data = f.read(end - f.tell())
            else:
                data = b""
    except FileNotFoundError:
        return []
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
