"""fortio (`fortio/fortio` images) as a built-in program: `python -m sluice.samples.fortio COMMAND …`.

The image's ENTRYPOINT is `/usr/bin/fortio` and its CMD `server -config-dir /etc/fortio`; the runtime maps both
(and `kubectl exec … -- /usr/bin/fortio load …`) here. What Istio's tasks use behaves as fortio 1.75 does:

* `server`: the HTTP echo server on 8080 (`?status=`, `?delay=`, `?size=`, `?header=`, `?close=` with
  fortio's probability lists, `/debug`), the gRPC ping and health services on 8079, the TCP echo on 8078;
  the UI (`/fortio/`) answers a 404 that says it is not served here;
* `load`: `-c`, `-qps`, `-n`, `-t`, `-H`, `-p`, `-loglevel`, `-payload`, … with fortio's report on stderr (the
  lines the circuit-breaking task reads: `Code 503 : 3 (15.0 %)`, the latency histogram and percentiles);
* `curl`: one fetch, the response's headers on stderr and its body on stdout; `version`.

`gofmt` formats numbers and durations the way Go does, `stats` is fortio's histogram, `client` the HTTP/1.1
client, `echo` and `grpcping` the servers, `load` the runner, `cli` the command line.
"""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "1.75.2"
