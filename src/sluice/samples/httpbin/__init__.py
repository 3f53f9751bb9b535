"""httpbin as Istio's samples run it: `docker.io/kennethreitz/httpbin` (port 80) and
`docker.io/mccutchen/go-httpbin` (port 8080), one aiohttp application with two flavours.

The flavours differ where the originals differ, and each answers with its original's JSON shapes:

* ``go`` (go-httpbin v2.15, what `samples/httpbin/httpbin.yaml` runs): header and query values are lists,
  canonical Go header names, `origin` is the peer's `ip:port` (or the first X-Forwarded-For entry), `/get`
  carries `method`, `/delay/N` above 10 s is a 400, JSON is indented by two spaces in field order;
* ``kennethreitz`` (httpbin 0.9 on gunicorn, what the mirroring task runs): single values are plain strings,
  `origin` is the X-Forwarded-For header or the peer's IP, `/delay/N` is capped at 10 s, JSON is Flask's
  pretty print (sorted keys, `", "` separators).

`shapes` holds the pure parts (header names, origin, URL, JSON rendering), `app` the routes, `__main__` the
command lines of both images (go-httpbin's flags, gunicorn's `-b` and `--access-logfile`).
"""

from __future__ import annotations

__all__ = ["FLAVOURS"]

FLAVOURS = ("go", "kennethreitz")
