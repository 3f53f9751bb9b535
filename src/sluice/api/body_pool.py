"""A small pool of body worker processes (`sluice.api.body_worker`), driven from the daemon's event loop.

Created by the API server (`sluice.api.server.make_app`) and by the console (`sluice.console.api.console_app`,
its workers running `sluice.console.worker`) and closed when the app shuts down; used by the registry
(`Registry.*_in_worker`) for request bodies over 64 KiB, and by the console for its large objects. Workers start on first use (most daemons
never see such a body), one job each at a time, at most `size` of them; up to `backlog` more requests wait
for one, and past that a request is refused as kube-apiserver refuses one past its in-flight limit (429
TooManyRequests, `Retry-After: 1`, which client-go and kubectl retry). A job that runs past `time_limit` has
its worker killed and is answered with kube-apiserver's request timeout (504); a worker that dies mid-job
(killed, out of memory) answers that request 500 and is replaced by a fresh one for the next (one that died
while idle is replaced before it is given a job). SLUICE_BODY_WORKERS and SLUICE_BODY_BACKLOG set the sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from sluice.api.body_wire import LEN as _LEN
from sluice.api.body_wire import TAKEN as _TAKEN
from sluice.api.body_wire import pack
from sluice.api.errors import ApiError
from sluice.childproc import module_env

__all__ = ["BodyPool", "WORKER_MODULE"]

log = logging.getLogger("sluice.api.body_pool")

WORKER_MODULE = "sluice.api.body_worker"
# kube-apiserver's default request timeout (--request-timeout 1m0s): a 3 MiB body takes seconds, not this.
TIME_LIMIT = 60.0


def too_many_requests() -> ApiError:
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.", {"retryAfterSeconds": 1})


def timed_out() -> ApiError:
    return ApiError(504, "Timeout", "Timeout: request did not complete within requested timeout - "
                                    "context deadline exceeded")


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _NotSent(Exception):
    """The worker was gone before it had the job (it died while idle): another one can take it."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid

    async def call(self, frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(frame)
            await stdin.drain()
            if await stdout.readexactly(1) != _TAKEN:
                raise ConnectionError("not a body worker's answer")
        except (ConnectionError, BrokenPipeError, asyncio.IncompleteReadError) as e:
            raise _NotSent from e
        size = _LEN.unpack(await stdout.readexactly(_LEN.size))[0]
        head: dict[str, Any] = json.loads(await stdout.readexactly(size))
        payloads = [await stdout.readexactly(int(n)) for n in head.get("sizes", [])]
        return head, payloads

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class BodyPool:
    """`module`: the worker program, `WORKER_MODULE` or one that runs `sluice.api.body_worker.main` with more ops
    (the console's, `sluice.console.worker`)."""

    def __init__(self, size: int = 2, backlog: int = 8, time_limit: float = TIME_LIMIT, *,
                 module: str = WORKER_MODULE) -> None:
        self.module = module
        self.size = max(1, size)
        self.backlog = max(0, backlog)
        self.time_limit = time_limit
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._slots: asyncio.Semaphore | None = None  # made on first use, inside the running loop
        self._inflight = 0
        self._closed = False

    @classmethod
    def from_env(cls, module: str = WORKER_MODULE) -> BodyPool:
        """Sizes from SLUICE_BODY_WORKERS / SLUICE_BODY_BACKLOG (tests make the pool small to fill it)."""
        def num(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, "") or default)
            except ValueError:
                return default
        return cls(num("SLUICE_BODY_WORKERS", 2), num("SLUICE_BODY_BACKLOG", 8), module=module)

    def pids(self) -> list[int]:
        return sorted(w.pid for w in self._all)

    async def run(self, head: dict[str, Any], payloads: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """One job in a worker: the answer's head and payloads; a refused job raises its `ApiError`."""
        if self._closed:
            raise ApiError(503, "ServiceUnavailable", "the server is shutting down")
        if self._inflight >= self.size + self.backlog:
            raise too_many_requests()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        frame = pack(head, payloads)
        self._inflight += 1
        try:
            async with self._slots:
                try:
                    out, results = await self._call(frame)
                except _NotSent:
                    out, results = await self._call(frame)  # once more, in a fresh worker
        finally:
            self._inflight -= 1
        if not out.get("ok"):
            raise ApiError(int(out["code"]), str(out["reason"]), str(out["message"]), out.get("details"))
        return out, results

    async def _call(self, frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
        worker = await self._checkout()
        done = False
        try:
            async with asyncio.timeout(self.time_limit):
                out, results = await worker.call(frame)
            done = True
        except TimeoutError:
            log.warning("body worker %d ran past %.0f s: killed", worker.pid, self.time_limit)
            raise timed_out() from None
        except _NotSent:
            raise
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await worker.proc.wait()
            if self._closed:
                raise ApiError(503, "ServiceUnavailable", "the server is shutting down") from None
            log.warning("body worker %d stopped mid-request (%s)", worker.pid, _exit_text(code))
            raise ApiError.internal(f"the process decoding the request body stopped ({_exit_text(code)}); "
                                    "nothing was changed") from None
        finally:
            if done and not out.get("retire"):
                self._idle.append(worker)
            else:  # killed, timed out, cancelled or retiring: it answers nothing more
                await self._discard(worker)
        return out, results

    async def _checkout(self) -> _Worker:
        while self._idle:
            w = self._idle.pop()
            if w.proc.returncode is None:
                return w
            await self._discard(w)  # died while idle: replaced below
        return await self._start()

    async def _start(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=module_env())
        w = _Worker(proc)
        self._all.add(w)
        log.info("body worker %d started", w.pid)
        return w

    async def _discard(self, w: _Worker) -> None:
        w.kill()
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            await w.proc.wait()
        self._all.discard(w)

    async def close(self) -> None:
        """Stop every worker (one in the middle of a job too: its request answers 503) and reap it."""
        self._closed = True
        workers = list(self._all)
        for w in workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            w.kill()
        for w in workers:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                await w.proc.wait()
        self._all.clear()
        self._idle.clear()
