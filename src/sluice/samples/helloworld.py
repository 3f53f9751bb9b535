"""Istio's helloworld sample (`*/examples-helloworld-v1|v2`): `GET /hello` answers
`Hello version: <SERVICE_VERSION>, instance: <HOSTNAME>` on port 5000, `GET /health` `Helloworld is healthy`.

Run as `python -m sluice.samples.helloworld [gunicorn args]`: the image's CMD is
`gunicorn -b [::]:5000 app:app -k gevent`, so a `-b`/`--bind` in an overridden command line is honoured.
`SLUICE_BIND`, when set, is the listen address (the pod's contract).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping

from aiohttp import web

from sluice.samples.bookinfo.env import Listen
from sluice.samples.bookinfo.serving import serve

__all__ = ["create_app", "hello_text", "main"]

DEFAULT_PORT = 5000


def hello_text(env: Mapping[str, str]) -> str:
    # The original formats os.environ.get(...) with %s, so a missing variable prints as None.
    return f"Hello version: {env.get('SERVICE_VERSION')}, instance: {env.get('HOSTNAME')}\n"


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    env = os.environ if env is None else env

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text=hello_text(env), content_type="text/html")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="Helloworld is healthy", content_type="text/html")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/health", health)
    return app


def _bind(args: list[str]) -> tuple[str, int]:
    host, port = "::", DEFAULT_PORT
    for i, arg in enumerate(args):
        value = None
        if arg in ("-b", "--bind") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--bind="):
            value = arg.split("=", 1)[1]
        if value:
            h, sep, p = value.rpartition(":")
            if sep and p.isdigit():
                host, port = h.strip("[]") or "0.0.0.0", int(p)
    return host, port


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["gunicorn"]:
        args = args[1:]
    host, port = _bind(args)
    listen = Listen(host=os.environ.get("SLUICE_BIND") or host, port=port)

    def ready() -> None:
        print(f"[INFO] Listening at: http://{listen.host}:{listen.port}", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve(create_app(), listen, ready))
    except OSError as e:
        print(f"error: cannot listen on {listen.host}:{listen.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
