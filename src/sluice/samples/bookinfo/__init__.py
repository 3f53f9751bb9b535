"""Python implementations of Istio's Bookinfo services (productpage, details, reviews, ratings).

Each service is an aiohttp application runnable as `python -m sluice.samples.bookinfo.<service>`; the
runtime starts them for the Bookinfo images (`*/examples-bookinfo-<service>-<version>:<tag>`). They behave
like the originals in istio/istio `samples/bookinfo/src/` as seen from outside: the same paths, status
codes, JSON bodies (byte for byte where the originals build them by hand), propagated headers and
timeouts. Environment contract, shared by all four:

* `SLUICE_BIND` (default `127.0.0.1`) and `SLUICE_PORT` (default `9080`): where to listen;
* `HOSTNAME`: the pod name (reviews reports it as `podname`);
* `SERVICE_VERSION`: the version (ratings' test variants `v-faulty`, `v-delayed`, … are honoured);
* `HTTP_PROXY` / `http_proxy`: when set, every outgoing call is an absolute-form request to that proxy
  (the pod's sidecar), otherwise the app connects directly;
* `SERVICES_DOMAIN`, `DETAILS_HOSTNAME`, `RATINGS_HOSTNAME`, `REVIEWS_HOSTNAME`, `*_SERVICE_PORT`:
  upstream names, as in the originals;
* reviews only: `ENABLE_RATINGS` (`true`/`false`), `STAR_COLOR` (`black`/`red`), `CLUSTER_NAME`.
"""

from __future__ import annotations

__all__ = ["SERVICES"]

SERVICES = ("productpage", "details", "reviews", "ratings")
