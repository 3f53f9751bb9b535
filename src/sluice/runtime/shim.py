"""The per-container shim: `python -m sluice.runtime.shim DIR ATTEMPT CWD [MAX_SIZE MAX_FILES] -- PROGRAM ARGS...`.

Started by the kubelet (`sluice.runtime.supervisor`) in its own session, one shim per container run, so
containers outlive the daemon. The shim starts the program in its own process group, writes its stdout and
stderr to `DIR/ATTEMPT.log` as CRI log lines (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`), records
`DIR/ATTEMPT.pid` (child pid, its /proc start time, start time in ns) and, once the child is reaped and its
output drained, `DIR/ATTEMPT.exit` (exit code, signal, finish time in ns). SIGTERM and SIGINT are forwarded
to the child (held from the shim's start until it can forward them, so none is lost and none orphans it); SIGKILL is the kubelet's job (it signals the child's process group directly). The log is rotated
as the kubelet rotates it (`sluice.runtime.logfiles`: MAX_SIZE bytes × MAX_FILES files, 10Mi × 5 when not
given). A log that cannot be written (a full disk) loses those lines, never the container.

Only built-in modules are imported: one shim runs per container, so its start-up time and memory matter.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from sluice.runtime import enter, logfiles

MAX_LINE = 16 * 1024  # like containerd: longer lines are split into partial (P) records
# Modules a fork server (`sluice.runtime.zygote`) imported before forking this shim: `python -m` one of them
# runs in the forked child instead of a new interpreter.
PRELOADED: frozenset[str] = frozenset()


def _stamp(ns: int, cache: list[object]) -> bytes:
    sec, frac = divmod(ns, 1_000_000_000)
    if cache[0] != sec:
        cache[0] = sec
        cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
    head = cache[1]
    assert isinstance(head, bytes)
    return head + b".%09dZ" % frac


_FORWARDED = {signal.SIGTERM, signal.SIGINT}  # to the container, from the moment the shim starts


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _run_preloaded(module: str, args: list[str]) -> None:
    """`python -m MODULE ARGS` in this (forked) process, its imports already done; never returns."""
    import atexit
    import runpy
    import traceback

    code = 0
    try:
        sys.argv = [module, *args]  # runpy puts the module's file name first, as `-m` does
        # `-m` runs the module as __main__ only; its preloaded copy stays out (runpy warns otherwise).
        for name in (module, module + ".__main__"):
            sys.modules.pop(name, None)
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            sys.stderr.write(f"{e.code}\n")
    except BaseException:  # noqa: BLE001 - as the interpreter does: print it, exit 1
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str]) -> int:
    # Held until the handler that forwards them is installed: a SIGTERM that killed the shim between its fork
    # and that moment would orphan the container, unrecorded (no N.pid), so nothing would ever stop it.
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    policy = logfiles.LogRotation()
    if len(argv) >= 7 and argv[5] == "--" and argv[3].lstrip("-").isdigit() and argv[4].isdigit():
        policy = logfiles.LogRotation(int(argv[3]), int(argv[4]))
        argv = [*argv[:3], *argv[5:]]
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: python -m sluice.runtime.shim DIR ATTEMPT CWD [MAX_SIZE MAX_FILES] -- PROGRAM "
                         "[ARGS...]\n")
        return 2
    directory, attempt, cwd, program = argv[0], argv[1], argv[2], argv[4:]
    # A program wrapped in `python -m sluice.runtime.enter OPTIONS -- ...` (the pod's sandbox): enter it here,
    # in the forked child, instead of starting a second interpreter per container.
    sandbox = None
    if program[1:3] == ["-m", "sluice.runtime.enter"]:
        try:
            sandbox, program = enter.parse(program[3:])
        except ValueError as e:
            sys.stderr.write(f"sluice enter: {e}\n")
            return 2
    base = os.path.join(directory, attempt)
    log_path = base + ".log"
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    log_size = os.fstat(log).st_size
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.time_ns()
    pid = os.fork()
    if pid == 0:  # the container process
        try:
            os.setpgid(0, 0)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w, log):
                os.close(fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)  # the mask survives exec
            if cwd:
                os.chdir(cwd)
            if sandbox is not None:
                try:
                    enter.apply(sandbox)
                except OSError as e:
                    os.write(2, f"sluice enter: cannot enter the pod's sandbox: {e}\n".encode())
                    os._exit(126)
            if len(program) >= 3 and program[0] == sys.executable and program[1] == "-m" \
                    and program[2] in PRELOADED:
                _run_preloaded(program[2], program[3:])
            os.execvp(program[0], program)
        except OSError as e:
            os.write(2, f'exec: "{program[0]}": {e.strerror}\n'.encode())
        os._exit(127)
    try:
        os.setpgid(pid, pid)  # also here, so the group exists before anyone signals it
    except OSError:
        pass
    os.close(out_w)
    os.close(err_w)
    _write_atomic(base + ".pid", f"{pid} {_start_time(pid)} {started}\n")

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)  # one that came meanwhile is forwarded now

    names = {out_r: b"stdout", err_r: b"stderr"}
    partial = {out_r: b"", err_r: b""}
    cache: list[object] = [None, b""]
    retry_at = [0.0]  # after a failed rotation, the next try waits

    def emit(fd: int, data: bytes, final: bool) -> None:
        buf = partial[fd] + data
        records: list[bytes] = []
        ts = _stamp(time.time_ns(), cache)
        stream = names[fd]
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1:]
            while len(line) > MAX_LINE:
                records.append(b"%s %s P %s\n" % (ts, stream, line[:MAX_LINE]))
                line = line[MAX_LINE:]
            records.append(b"%s %s F %s\n" % (ts, stream, line))
        while len(buf) > MAX_LINE:
            records.append(b"%s %s P %s\n" % (ts, stream, buf[:MAX_LINE]))
            buf = buf[MAX_LINE:]
        if final and buf:
            records.append(b"%s %s F %s\n" % (ts, stream, buf))
            buf = b""
        partial[fd] = buf
        if records:
            write_log(b"".join(records))

    def write_log(data: bytes) -> None:
        nonlocal log, log_size
        try:
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += os.write(log, view[done:])
        except OSError:
            # A full disk: these lines are lost (never half of one), the container goes on.
            try:
                os.ftruncate(log, log_size)
            except OSError:
                pass
            return
        log_size += len(data)
        if 0 < policy.max_size <= log_size and time.monotonic() >= retry_at[0]:
            try:
                fresh = logfiles.rotate(log_path, policy)
            except OSError as e:
                sys.stderr.write(f"rotating {log_path}: {e}\n")
                retry_at[0] = time.monotonic() + 10  # kubelet's pace: its log manager looks every 10 s
                return
            if fresh is not None:
                os.close(log)
                log, log_size = fresh, 0

    open_fds = [out_r, err_r]
    status: int | None = None
    drain_until = 0.0
    while open_fds:
        # Once the child is gone, a grandchild may still hold the pipes: drain briefly, then stop.
        timeout = 0.25 if status is None else max(0.0, drain_until - time.monotonic())
        ready, _, _ = select.select(open_fds, [], [], timeout)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                emit(fd, data, False)
            else:
                emit(fd, b"", True)
                open_fds.remove(fd)
        if status is None:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status = st
                drain_until = time.monotonic() + 0.2
        elif not ready and time.monotonic() >= drain_until:
            break
    for fd in open_fds:
        emit(fd, b"", True)
    if status is None:
        _, status = os.waitpid(pid, 0)
    finished = time.time_ns()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        code = 128 + sig
    else:
        sig = 0
        code = os.WEXITSTATUS(status)
    os.close(log)
    _write_atomic(base + ".exit", f"{code} {sig} {finished}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
