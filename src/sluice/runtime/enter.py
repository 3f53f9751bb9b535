"""Run a program inside a pod's sandbox: `python -m sluice.runtime.enter [OPTIONS] -- PROGRAM ARGS...`.

The process joins the pod's network namespace, gets a private mount and UTS namespace with the pod's own
`/etc/resolv.conf` and `/etc/hosts` bound over the host's (what the kubelet writes into a container) and the
pod name as hostname, optionally drops to a gid/uid (the sidecar runs with gid 1337, which the capture rules
exempt), changes directory, then execs the program: the pid stays the same, so a supervisor or a stream that
started this wrapper owns the program itself. `apply(spec)` does the same in-process (the container shim
calls it in its forked child). Without `--netns` (loopback mode) only the directory change applies.

Only built-in modules are imported: this runs for every container start and every `kubectl exec`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from sluice.runtime import linux

__all__ = ["EnterSpec", "apply", "argv_for", "main"]


@dataclass(frozen=True)
class EnterSpec:
    netns: str | None = None  # network namespace file (/run/netns/NAME); None: stay in the caller's network
    hostname: str | None = None
    binds: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (source file, target path)
    gid: int | None = None
    uid: int | None = None
    cwd: str | None = None

    def options(self) -> list[str]:
        out: list[str] = []
        if self.netns:
            out += ["--netns", self.netns]
        if self.hostname:
            out += ["--hostname", self.hostname]
        for src, dst in self.binds:
            out += ["--bind", f"{src}:{dst}"]
        if self.gid is not None:
            out += ["--gid", str(self.gid)]
        if self.uid is not None:
            out += ["--uid", str(self.uid)]
        if self.cwd:
            out += ["--cwd", self.cwd]
        return out


def argv_for(spec: EnterSpec, program: list[str]) -> list[str]:
    """The command line that runs `program` inside `spec`'s sandbox."""
    return [sys.executable, "-m", "sluice.runtime.enter", *spec.options(), "--", *program]


def apply(spec: EnterSpec) -> None:
    """Enter the sandbox in this process (call in a child, right before exec). Raises OSError on failure."""
    if spec.netns:
        linux.enter_netns_file(spec.netns)
        flags = linux.CLONE_NEWUTS | (linux.CLONE_NEWNS if spec.binds else 0)
        linux.unshare(flags)
        if spec.binds:
            # A private copy of the mount tree, so the binds below never reach the host's.
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            for src, dst in spec.binds:
                linux.mount(src, dst, None, linux.MS_BIND)
        if spec.hostname:
            linux.sethostname(spec.hostname)
    if spec.gid is not None:
        os.setgroups([])
        os.setgid(spec.gid)
    if spec.uid is not None:
        os.setuid(spec.uid)
    if spec.cwd:
        os.chdir(spec.cwd)


def parse(argv: list[str]) -> tuple[EnterSpec, list[str]]:
    if "--" not in argv:
        raise ValueError("missing -- before the program")
    cut = argv.index("--")
    opts, program = argv[:cut], argv[cut + 1:]
    if not program:
        raise ValueError("no program")
    values: dict[str, str | None] = {"--netns": None, "--hostname": None, "--gid": None, "--uid": None,
                                     "--cwd": None}
    binds: list[tuple[str, str]] = []
    i = 0
    while i < len(opts):
        key = opts[i]
        if i + 1 >= len(opts):
            raise ValueError(f"{key} needs a value")
        value = opts[i + 1]
        if key == "--bind":
            src, sep, dst = value.partition(":")
            if not sep:
                raise ValueError(f"--bind {value}: want SOURCE:TARGET")
            binds.append((src, dst))
        elif key in values:
            values[key] = value
        else:
            raise ValueError(f"unknown option {key}")
        i += 2
    gid, uid = values["--gid"], values["--uid"]
    return EnterSpec(netns=values["--netns"], hostname=values["--hostname"], binds=tuple(binds),
                     gid=int(gid) if gid is not None else None, uid=int(uid) if uid is not None else None,
                     cwd=values["--cwd"]), program


def main(argv: list[str]) -> int:
    try:
        spec, program = parse(argv)
    except ValueError as e:
        sys.stderr.write(f"sluice enter: {e}\n")
        return 2
    try:
        apply(spec)
    except OSError as e:
        sys.stderr.write(f"sluice enter: cannot enter the pod's sandbox: {e}\n")
        return 126
    try:
        os.execvp(program[0], program)
    except OSError as e:
        sys.stderr.write(f'exec: "{program[0]}": {e.strerror}\n')
        return 127 if isinstance(e, FileNotFoundError) else 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
