"""A fork server for container shims: `python -m sluice.runtime.zygote RUNTIME_DIR`.

Every container runs under a shim, and Sluice's built-in images are Python programs; started fresh, each
shim and each app pays for a new interpreter and its imports (aiohttp alone is ≈ 0.2 s of CPU), which on a
2-core machine is most of `sluice demo`'s start. The kubelet starts this process once: it imports the shim and
the built-in programs' modules, then forks a shim per container on request, and the shim runs a preloaded
built-in program in its forked child instead of exec'ing a new interpreter (the preloaded pages are shared,
copy-on-write, so memory per pod drops too). Any other program is exec'ed as before.

Protocol, over a socketpair the kubelet made: a request is one JSON line `{"argv", "env", "stderr"}` (the
shim's arguments, its environment, the file its stderr goes to); the answer is one line with the shim's pid
(or `error: …`). The shim starts in its own session and is not this process's concern afterwards (SIGCHLD is
ignored, so the kernel reaps it; the kubelet watches it by pidfd as it does any adopted shim). When the
kubelet's end closes (the daemon stopped or died), this process exits; running shims are unaffected.

RUNTIME_DIR is only there so that every process forked from here shows which Sluice home it belongs to.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys

from sluice.runtime import shim
from sluice.runtime.images import PRELOADED

__all__ = ["Zygote", "main", "serve_forever"]

log = logging.getLogger("sluice.runtime")

MAX_REQUEST = 4 * 1024 * 1024
READY_TIMEOUT = 20.0


def _preload() -> frozenset[str]:
    done = set()
    for name in PRELOADED:  # `sluice.runtime.images` names them: imported once here
        try:
            module = importlib.import_module(name)
            if hasattr(module, "__path__"):  # a package: `-m` runs its __main__
                importlib.import_module(name + ".__main__")
        except Exception as e:  # noqa: BLE001 - a module that cannot load here is exec'ed as before
            sys.stderr.write(f"zygote: not preloading {name}: {e}\n")
            continue
        done.add(name)
    return frozenset(done)


def _child(request: dict[str, object], conn: socket.socket) -> None:
    """In the forked child: become the shim (never returns)."""
    code = 1
    try:
        conn.close()
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(str(request["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.closerange(3, 65536)
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        argv = request["argv"]
        assert isinstance(argv, list)
        sys.argv = [shim.__file__ or "shim", *map(str, argv)]
        code = shim.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - the child must never return into the server loop
        try:
            os.write(2, f"zygote: shim failed: {e!r}\n".encode())
        except OSError:
            pass
    os._exit(code)


def serve_forever(conn: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # shims are reaped by the kernel
    reader = conn.makefile("rb")
    while True:
        line = reader.readline(MAX_REQUEST)
        if not line:
            return
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("argv"), list) \
                    or not isinstance(request.get("env"), dict) or not isinstance(request.get("stderr"), str):
                raise ValueError("want {argv: [...], env: {...}, stderr: path}")
        except ValueError as e:
            conn.sendall(f"error: bad request: {e}\n".encode())
            continue
        try:
            pid = os.fork()
        except OSError as e:
            conn.sendall(f"error: fork: {e.strerror or e}\n".encode())
            continue
        if pid == 0:
            reader.close()
            _child(request, conn)
        conn.sendall(f"{pid}\n".encode())


def main(argv: list[str]) -> int:
    fd = int(os.environ.pop("SLUICE_ZYGOTE_FD", "-1"))
    if fd < 0:
        sys.stderr.write("usage: SLUICE_ZYGOTE_FD=N python -m sluice.runtime.zygote RUNTIME_DIR\n")
        return 2
    conn = socket.socket(fileno=fd)
    shim.PRELOADED = _preload()
    conn.sendall(b"ready\n")
    serve_forever(conn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class Zygote:
    """The kubelet's side: starts the fork server and asks it for shims. Any failure makes `spawn` answer
    None, and the kubelet starts that shim the ordinary way."""

    def __init__(self, runtime_dir: str) -> None:
        self.runtime_dir = runtime_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ready = False
        self._broken = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            with open(os.path.join(self.runtime_dir, "zygote.err"), "ab") as err:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "sluice.runtime.zygote", self.runtime_dir],
                    env={**os.environ, "SLUICE_ZYGOTE_FD": str(theirs.fileno())}, pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        except OSError:
            ours.close()
            self._broken = True
            return
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_REQUEST)

    async def spawn(self, argv: list[str], env: dict[str, str], stderr: str) -> int | None:
        if self._broken or self._reader is None or self._writer is None:
            return None
        async with self._lock:
            try:
                if not self._ready:
                    # Its imports take a moment: the first shims wait for them rather than start cold.
                    line = await asyncio.wait_for(self._reader.readline(), READY_TIMEOUT)
                    if line.strip() != b"ready":
                        raise ConnectionError(f"fork server said {line[:100]!r}")
                    self._ready = True
                self._writer.write(json.dumps({"argv": argv, "env": env, "stderr": stderr}).encode() + b"\n")
                await self._writer.drain()
                answer = (await asyncio.wait_for(self._reader.readline(), READY_TIMEOUT)).decode().strip()
            except (OSError, ConnectionError, TimeoutError, UnicodeDecodeError) as e:
                log.warning("shim fork server unusable, starting shims directly: %s", e)
                self._broken = True
                return None
        if not answer.isdigit():
            log.warning("shim fork server: %s", answer)
            return None
        return int(answer)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        proc = self._proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 2.0)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)
