"""The culprit search: which Istio config objects a failing push fails on, found in a worker process.

When building the push context, or one proxy's resources, fails, each config object is translated alone with
everything that is not Istio config (Istio would have refused it at admission; here it is left out of the
pushes and the rest goes on). That is one translation per stored object: hundreds of them, half a second and
more of pure-Python work. In the pusher's thread it held the GIL against the event loop, which waited for it
at every socket and SQLite call of each request it served (one API probe in ten waited 89–171 ms with 300
VirtualServices stored; docs/benchmarks.md, "Push stalls"). So the search runs in a process of its own, started
on the first search and kept for the next ones, which the pusher's thread waits for without holding the GIL.

`isolate` is the search itself (pure, given a build function); `Isolator` runs it in the worker process,
and in the calling thread when it cannot (a generator or proxy that does not pickle, as tests' fakes, or a
worker that died twice in a row). `python -m sluice.xds.isolation PARENT_PID` is the worker.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from sluice.childproc import die_with_parent, module_env

__all__ = ["isolate", "builder", "error_text", "Isolator", "Found"]

log = logging.getLogger("sluice.xds.isolation")

_LEN = struct.Struct(">Q")
_MAX_ERROR = 1000

# (indices of the config objects that build together with the base objects, [(index, why) of the others]),
# or None when the base objects alone do not build (the failure is not the Istio config's)
Found = tuple[list[int], list[tuple[int, str]]] | None


def error_text(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 3] + "..."


def isolate(base: list[dict[str, Any]], config: list[dict[str, Any]],
            build: Callable[[list[dict[str, Any]]], None]) -> Found:
    """Which of `config` `build` accepts together with `base`: each object is tried alone with the base, then
    the accepted ones together (objects that fail only together are added one by one)."""
    try:
        build(base)
    except Exception:  # noqa: BLE001
        return None
    bad: list[tuple[int, str]] = []
    good: list[int] = []
    for i, obj in enumerate(config):
        try:
            build([*base, obj])
            good.append(i)
        except Exception as e:  # noqa: BLE001
            bad.append((i, error_text(e)))
    try:
        build(base + [config[i] for i in good])
    except Exception:  # noqa: BLE001 - objects that fail only together
        together: list[int] = []
        for i in good:
            try:
                build([*base, *(config[j] for j in together), config[i]])
                together.append(i)
            except Exception as e:  # noqa: BLE001
                bad.append((i, f"{error_text(e)} (together with other config)"))
        good = together
    return good, bad


def builder(generator: Any, proxy: Any, version: str) -> Callable[[list[dict[str, Any]]], None]:
    """The build a search tries: the push context alone (`proxy` None), or that proxy's resources too."""
    def build(objects: list[dict[str, Any]]) -> None:
        push = generator.push_context(objects, version)
        if proxy is not None:
            generator.generate(proxy, push)

    return build


class Isolator:
    """`isolate` in one worker process, for one caller at a time (the pusher's thread)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.searches = 0  # searches done in the worker (tests)
        self._closed = False

    def run(self, generator: Any, proxy: Any, version: str, base: list[dict[str, Any]],
            config: list[dict[str, Any]]) -> Found:
        with self._lock:
            try:
                job = pickle.dumps((generator, proxy, version, base, config), pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - not picklable (a test's generator): search here
                job = None
            for _ in range(2 if job is not None and not self._closed else 0):
                try:
                    ok, found = self._call(job or b"")
                    if not ok:  # the worker cannot load the job (a test's generator): search here
                        break
                    self.searches += 1
                    return found
                except (OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
                    if self._closed:
                        break
                    log.warning("the culprit-search worker failed (%s); starting another", e)
                    self._stop()
            return isolate(base, config, builder(generator, proxy, version))

    def _call(self, job: bytes) -> tuple[bool, Found]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            # Started from the pusher's thread, which lives as long as the pusher: PR_SET_PDEATHSIG (the
            # worker's `die_with_parent`) fires when the thread that started it exits, not only the process.
            proc = self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=module_env())
            log.info("culprit-search worker %d started", proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_LEN.pack(len(job)) + job)
        proc.stdin.flush()
        answer = _read_frame(proc.stdout)
        if answer is None:
            raise EOFError(f"the worker exited ({proc.wait()})")
        ok, found = pickle.loads(answer)
        return bool(ok), found

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()

    def close(self) -> None:
        """Stops the worker (a search running in it is abandoned: its caller gets the in-thread answer)."""
        self._closed = True  # a search running now finishes in its thread, and no worker is started again
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        if self._lock.acquire(timeout=5):
            try:
                self._stop()
            finally:
                self._lock.release()


def _read_frame(f: IO[bytes]) -> bytes | None:
    head = f.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    size = _LEN.unpack(head)[0]
    data = f.read(size)
    return data if len(data) == size else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        die_with_parent(int(args[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the daemon's group is the daemon's to handle
    # Frames go to the daemon on the original stdout; anything printed goes to stderr (the daemon's log).
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import sluice.xds.translate  # noqa: F401 - before the first job, not during it

    stdin = sys.stdin.buffer
    while True:
        job = _read_frame(stdin)
        if job is None:  # the daemon closed the pipe: stop
            return 0
        try:
            generator, proxy, version, base, config = pickle.loads(job)
        except Exception as e:  # noqa: BLE001 - its classes are not importable here
            log.info("cannot load a culprit search: %s", error_text(e))
            answer = pickle.dumps((False, None))
        else:
            found = isolate(base, config, builder(generator, proxy, version))
            answer = pickle.dumps((True, found), pickle.HIGHEST_PROTOCOL)
        del job
        out.write(_LEN.pack(len(answer)) + answer)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
