"""Container image → local program: what sluice runs instead of pulling an image.

Called by the pod worker (`sluice.runtime.pod`) for every container before it starts. Pure (apart from looking
a program up on the container's PATH, as the curl image's entrypoint script does). Kubernetes' rules for
`command` and `args` apply against each known image's ENTRYPOINT and CMD (the real images'):

* `command` replaces the ENTRYPOINT (and drops the CMD); `args` replace the CMD;
* `args` alone go to the image's ENTRYPOINT, or run as the program for an image without one.

The Bookinfo images run the built-in Python services unless something replaces their CMD, `curlimages/curl`'s
entrypoint script runs curl (or the program named first), `sluice.dev/traffic-generator` is
`python -m sluice.load`, the `istio-proxy` container runs Envoy, and the common base images (busybox, alpine,
ubuntu, debian, python) have no ENTRYPOINT. Istio's other samples (`SAMPLES`: httpbin in both flavours,
fortio, helloworld, tcp-echo) keep their images' ENTRYPOINT and CMD: when the resulting command line starts
with the image's own program (`/usr/bin/fortio`, `/bin/tcp-echo`, gunicorn serving the app, …) the built-in
stands in for it with the same arguments, and `exec_argv` does the same for `kubectl exec`; any other
command line runs as a local program, as written. Any other image runs only with a `command`: sluice cannot
know its ENTRYPOINT, so `args` alone or nothing at all is an `ImageError` that the pod status shows as
`ErrImagePull`, never a guess. Images built on busybox (curlimages/curl, busybox, alpine) get its `nc`
(`sluice/samples/bin`) ahead of the host's PATH, for the tasks that pipe into it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice import mesh
from sluice.runtime.environment import ContainerEnv, expand
from sluice.runtime.program import ImageError, Program

__all__ = ["Program", "ImageError", "resolve", "exec_argv", "BOOKINFO_SERVICES", "SAMPLES", "Sample", "PRELOADED"]

BOOKINFO_SERVICES = ("productpage", "details", "reviews", "ratings")
_LOAD_MODULE = "sluice.load"
# The built-in programs (`python -m MODULE`) the fork server imports once (`sluice.runtime.zygote`): the ones
# every demo starts. Istio's other samples start as their own processes.
PRELOADED: tuple[str, ...] = (*(f"sluice.samples.bookinfo.{s}" for s in BOOKINFO_SERVICES), _LOAD_MODULE)
_BOOKINFO = re.compile(r"(?:^|/)examples-bookinfo-(productpage|details|reviews|ratings)-v(\d+)(?::[\w.\-]+)?"
                       r"(?:@sha256:[0-9a-f]{64})?$")
_CURL = re.compile(r"^(?:docker\.io/)?curlimages/curl(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?$")
_PROXY = re.compile(r"(?:^|/)proxyv2(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?$")
_REVIEWS = {1: ("false", ""), 2: ("true", "black"), 3: ("true", "red")}
_TRAFFIC = re.compile(r"^sluice\.dev/traffic-generator(?::[\w.\-]+)?$")


_TAG = r"(?::[\w.\-]+)?(?:@sha256:[0-9a-f]{64})?$"


@dataclass(frozen=True)
class Sample:
    """One of Istio's sample images and the built-in program that stands in for its binary."""

    name: str  # the builtin's name, also in the image id
    pattern: re.Pattern[str]
    entrypoint: tuple[str, ...]  # the real image's ENTRYPOINT and CMD (its Dockerfile)
    cmd: tuple[str, ...]
    binaries: tuple[str, ...]  # argv[0] values that are the image's program
    module: str  # python -m MODULE …
    lead: tuple[str, ...] = ()  # arguments the module takes before the image's own
    app: str = ""  # gunicorn images: the WSGI app that must be named for the built-in to stand in

    def builtin_argv(self, argv: list[str]) -> list[str] | None:
        """The built-in's command line for the image's command line `argv`, or None if it is not the program."""
        if not argv:
            return None
        if self.app:
            if Path(argv[0]).name != "gunicorn" or self.app not in argv[1:]:
                return None
            return [sys.executable, "-m", self.module, *self.lead, *argv]
        if argv[0] in self.binaries or Path(argv[0]).name in {Path(b).name for b in self.binaries}:
            return [sys.executable, "-m", self.module, *self.lead, *argv[1:]]
        return None


# Facts from the images' Dockerfiles: kennethreitz/httpbin (CMD gunicorn -b 0.0.0.0:80 httpbin:app -k gevent),
# mccutchen/go-httpbin v2 (CMD /bin/go-httpbin), fortio (ENTRYPOINT /usr/bin/fortio, CMD server -config-dir
# /etc/fortio), istio/istio samples/helloworld/src (CMD gunicorn -b [::]:5000 app:app -k gevent) and
# samples/tcp-echo/src (ENTRYPOINT /bin/tcp-echo, CMD 9000 hello).
SAMPLES = (
    Sample("httpbin", re.compile(r"(?:^|/)kennethreitz/httpbin" + _TAG), (),
           ("gunicorn", "-b", "0.0.0.0:80", "httpbin:app", "-k", "gevent"), ("gunicorn",),
           "sluice.samples.httpbin", ("kennethreitz",), app="httpbin:app"),
    Sample("go-httpbin", re.compile(r"(?:^|/)mccutchen/go-httpbin" + _TAG), (), ("/bin/go-httpbin",),
           ("/bin/go-httpbin",), "sluice.samples.httpbin", ("go",)),
    Sample("fortio", re.compile(r"(?:^|/)fortio/fortio" + _TAG), ("/usr/bin/fortio",),
           ("server", "-config-dir", "/etc/fortio"), ("/usr/bin/fortio",), "sluice.samples.fortio"),
    Sample("helloworld", re.compile(r"(?:^|/)examples-helloworld-(v\d+)" + _TAG), (),
           ("gunicorn", "-b", "[::]:5000", "app:app", "-k", "gevent"), ("gunicorn",), "sluice.samples.helloworld",
           app="app:app"),
    Sample("tcp-echo", re.compile(r"(?:^|/)tcp-echo-server" + _TAG), ("/bin/tcp-echo",), ("9000", "hello"),
           ("/bin/tcp-echo",), "sluice.samples.tcpecho"),
)


def _sample(image: str) -> tuple[Sample, re.Match[str]] | None:
    for sample in SAMPLES:
        m = sample.pattern.search(image)
        if m:
            return sample, m
    return None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


# Images whose ENTRYPOINT is empty: `args` alone are the whole command line (their default CMD otherwise).
_BASE = re.compile(r"^(?:docker\.io/)?(?:library/)?(busybox|alpine|ubuntu|debian|python)(?::[\w.\-]+)?"
                   r"(?:@sha256:[0-9a-f]{64})?$")
_BASE_CMD = {"busybox": ["sh"], "alpine": ["/bin/sh"], "ubuntu": ["/bin/bash"], "debian": ["bash"],
             "python": ["python3"]}
# The real Bookinfo images' CMD (istio/istio samples/bookinfo/src/*/Dockerfile); none sets an ENTRYPOINT that
# matters here (reviews' open-liberty script runs its arguments).
BOOKINFO_CMD = {
    "productpage": ["gunicorn", "-b", "[::]:9080", "productpage:app", "-w", "8", "--keep-alive", "2", "-k", "gevent"],
    "details": ["ruby", "details.rb", "9080"],
    "ratings": ["node", "/opt/microservices/ratings.js", "9080"],
    "reviews": ["/opt/ol/wlp/bin/server", "run", "defaultServer"],
}

Which = Callable[[str], str | None]


def _which_in(env: Mapping[str, str] | None) -> Which:
    path = env.get("PATH") if env is not None else None
    return lambda program: shutil.which(program, path=path)


# Tools busybox images carry that the host may lack (`nc`): put ahead of the host's PATH in their containers.
BUSYBOX_TOOLS = Path(__file__).resolve().parents[1] / "samples" / "bin"


def _busybox_env() -> dict[str, str]:
    return {"PATH": f"{BUSYBOX_TOOLS}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}


def _curl_entrypoint(params: list[str], which: Which) -> list[str]:
    """curlimages/curl's /entrypoint.sh: prepend `curl` when the first word is an option or not a program."""
    first = params[0] if params else ""
    if not first or first.startswith("-") or which(first) is None:
        return ["curl", *params]
    return params


def resolve(container: dict[str, Any], env: Mapping[str, str] | None = None) -> Program:
    """The program for one container of a pod spec (raises `ImageError` if sluice cannot run it).

    With `env` (the container's environment), `$(VAR)` references in `command` and `args` are expanded first,
    as the kubelet does (against the variables the kubelet made, for a `ContainerEnv`), and programs are looked
    up on its PATH."""

    image = str(container.get("image") or "")
    name = str(container.get("name") or "")
    command = _strings(container.get("command"))
    args = _strings(container.get("args"))
    if _PROXY.search(image) or (name == mesh.SIDECAR_CONTAINER and args[:1] == ["proxy"]):
        mode = args[1] if len(args) > 1 and args[0] == "proxy" else "sidecar"
        if mode not in ("sidecar", "router"):
            raise ImageError("CreateContainerConfigError",
                             f'istio-proxy mode "{mode}" is not supported: sluice runs "sidecar" and "router"')
        return Program([], f"sluice://builtin/envoy-{mode}", builtin="proxy", proxy_mode=mode)
    if env is not None:
        variables = env.kubelet if isinstance(env, ContainerEnv) else dict(env)
        command = [expand(a, variables) for a in command]
        args = [expand(a, variables) for a in args]
    which = _which_in(env)
    m = _BOOKINFO.search(image)
    if m:
        svc, version = m.group(1), int(m.group(2))
        image_env = {"SERVICE_VERSION": f"v{version}"}
        if svc == "reviews":
            enable, colour = _REVIEWS.get(version, ("true", "red"))
            image_env["ENABLE_RATINGS"] = enable
            if colour:
                image_env["STAR_COLOR"] = colour
        ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and p.get("containerPort")]
        image_env["SLUICE_PORT"] = str(ports[0]["containerPort"]) if ports else "9080"
        image_id = f"sluice://builtin/bookinfo-{svc}-v{version}"
        argv = command + args if command else args  # no ENTRYPOINT: args alone are the command line
        if argv and argv != BOOKINFO_CMD[svc]:
            # The image's own files are not here: an overridden CMD runs as a local program, as written.
            return Program(argv, image_id, image_env)
        return Program([sys.executable, "-m", f"sluice.samples.bookinfo.{svc}"], image_id, image_env,
                       builtin="bookinfo")
    if _TRAFFIC.match(image):
        # sluice's own load generator: ENTRYPOINT `python -m sluice.load`, no CMD (the URLs are the args).
        argv = command + args if command else [sys.executable, "-m", _LOAD_MODULE, *args]
        return Program(argv, "sluice://builtin/traffic-generator", builtin="traffic-generator")
    if _CURL.match(image):
        # ENTRYPOINT ["/entrypoint.sh"], CMD ["curl"]: with no args that is a bare `curl`, which exits 2.
        argv = command + args if command else _curl_entrypoint(args or ["curl"], which)
        return Program(argv, "sluice://builtin/curl", _busybox_env(), builtin="curl")
    found = _sample(image)
    if found is not None:
        sample, m = found
        # Kubernetes' rules against the image's own ENTRYPOINT and CMD.
        argv = command + args if command else list(sample.entrypoint) + (args or list(sample.cmd))
        image_env = {"SERVICE_VERSION": m.group(1)} if sample.name == "helloworld" else {}
        builtin = sample.builtin_argv(argv)
        image_id = f"sluice://builtin/{sample.name}"
        if builtin is None:
            return Program(argv, image_id, image_env)  # another program of the image: run it as written
        return Program(builtin, image_id, image_env, builtin=sample.name)
    base = _BASE.match(image)
    if base:
        argv = command + args if command else args or list(_BASE_CMD[base.group(1)])
        env = _busybox_env() if base.group(1) in ("busybox", "alpine") else {}
        return Program(argv, f"sluice://local/{argv[0]}", env)
    if command:
        return Program(command + args, f"sluice://local/{command[0]}")
    if args:
        raise ImageError(
            "ErrImagePull",
            f'sluice cannot pull image "{image}" to find its ENTRYPOINT, so the container\'s args alone '
            f"({' '.join(args)}) cannot run: set command (the program to run) as well")
    raise ImageError(
        "ErrImagePull",
        f'sluice cannot pull image "{image}": it runs no container images, only the Bookinfo images '
        "(*/examples-bookinfo-{productpage,details,reviews,ratings}-v<N>), Istio's other samples "
        "(kennethreitz/httpbin, mccutchen/go-httpbin, fortio/fortio, */examples-helloworld-v<N>, "
        "*/tcp-echo-server), curlimages/curl, istio/proxyv2, sluice.dev/traffic-generator and the base images "
        "busybox, alpine, ubuntu, debian and python as built-in programs, and any container that sets command "
        "as a local process")


def exec_argv(container: dict[str, Any], command: list[str]) -> list[str]:
    """The command `kubectl exec` runs in `container`: the image's own program (`/usr/bin/fortio load …` in a
    fortio container, `pilot-agent request …` in istio-proxy) is the built-in that stands in for it; anything
    else is run as given."""
    image = str(container.get("image") or "")
    if command and Path(command[0]).name == "pilot-agent" and (
            _PROXY.search(image) or container.get("name") == mesh.SIDECAR_CONTAINER):
        return [sys.executable, "-m", "sluice.runtime.pilot_agent", *command[1:]]  # the sidecar's admin reader
    found = _sample(image)
    if found is None or not command:
        return command
    sample = found[0]
    if sample.app:
        return command  # gunicorn images: the server is the container's main process, not an exec tool
    return sample.builtin_argv(command) or command
