"""Istio's Bookinfo traffic-management tasks as the docs write them, on a netns-mode daemon.

Each test follows one task page (istio.io/latest/docs/tasks/traffic-management/…): the docs' manifests
(`samples/bookinfo/networking/*.yaml` as Istio ships them, or the page's inline YAML) applied with the real
kubectl, then the page's check — the product page a user sees in the browser, fetched from inside the sleep
pod (as the app in that pod would), signed in as `jason` when the page says so (productpage's login cookie).
The tests run in order on one Bookinfo, as the tasks follow each other.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from sluice.samples.bookinfo.session import COOKIE_NAME, encode_session
from tests.conftest import TOOLS, Daemon, stop_daemon, wait_for
from tests.e2e.mesh import SAMPLES, STORY_NS, Pod, api_client, pod, pod_ips, start_story_mesh, via

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

NETWORKING = Path(__file__).resolve().parents[1] / "data" / "istio" / "bookinfo-networking"
PRODUCTPAGE = "http://productpage:9080/productpage"
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"


class Bookinfo:
    def __init__(self, d: Daemon, tmp: Path) -> None:
        self.d = d
        self.tmp = tmp
        self.core = client.CoreV1Api(api_client(d))

    def kubectl(self, *args: str, input: str | None = None) -> str:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={self.tmp}/kc", "-n", STORY_NS, *args],
                            input=input, env=self.d.env, capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0 and not cp.stderr, f"kubectl {args}: {cp.stdout}\n{cp.stderr}"
        return cp.stdout

    def apply(self, manifest: str) -> None:
        """`kubectl apply -f @samples/bookinfo/networking/<file>@`, or `kubectl apply -f - <<EOF`."""
        if manifest.endswith(".yaml"):
            path = NETWORKING / manifest if (NETWORKING / manifest).exists() else SAMPLES / manifest
            self.kubectl("apply", "-f", str(path))
        else:
            self.kubectl("apply", "-f", "-", input=manifest)

    @property
    def sleep(self) -> Pod:
        return pod(self.d, pod_ips(self.core, STORY_NS, "app=sleep")[0], self.core)

    def page(self, user: str | None = None) -> str:
        """The product page as the browser shows it, signed in as `user` (productpage's session cookie)."""
        headers = {"Cookie": f"{COOKIE_NAME}={encode_session(user)}"} if user else {}
        code, body = via(self.sleep, PRODUCTPAGE, headers, timeout=30)
        assert code == 200, body[:300]
        return body.decode()


def stars(page: str) -> str:
    """What the reviews show: `none` (reviews v1), `black` (v2), `red` (v3), or `error`."""
    if REVIEWS_UNAVAILABLE in page:
        return "error"
    colors = set(re.findall(r'class="stars" data-color="(\w*)"', page))
    if not colors:
        return "none"
    assert len(colors) == 1, colors
    return colors.pop()


def settled(pred: object, n: int = 5, timeout: float = 30) -> None:
    """Until `pred()` holds `n` times in a row (a rule reaches every sidecar shortly after it is applied)."""
    assert callable(pred)
    wait_for(lambda: all(pred() for _ in range(n)), timeout=timeout, interval=0.2)


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bookinfo]:
    tmp = tmp_path_factory.mktemp("bookinfo-tasks")
    d = start_story_mesh(tmp, network="netns")
    try:
        yield Bookinfo(d, tmp)
    finally:
        stop_daemon(d)


@pytest.mark.istio_task("traffic-management/request-routing", "Request Routing")
@pytest.mark.istio_sample("bookinfo", "Bookinfo")
def test_request_routing(bookinfo: Bookinfo) -> None:
    bookinfo.apply("destination-rule-all.yaml")
    bookinfo.apply("virtual-service-all-v1.yaml")
    # "no matter how many times you refresh, the review part of the page displays without rating stars"
    settled(lambda: stars(bookinfo.page()) == "none")
    bookinfo.apply("virtual-service-reviews-test-v2.yaml")
    # signed in as jason: black stars (v2); anyone else, or nobody: no stars
    settled(lambda: stars(bookinfo.page("jason")) == "black")
    for _ in range(10):
        assert stars(bookinfo.page("jason")) == "black"
        assert stars(bookinfo.page()) == "none"
        assert stars(bookinfo.page("bob")) == "none"


@pytest.mark.istio_task("traffic-management/fault-injection", "Fault Injection")
def test_fault_injection(bookinfo: Bookinfo) -> None:
    bookinfo.apply("virtual-service-all-v1.yaml")
    bookinfo.apply("virtual-service-reviews-test-v2.yaml")
    # a 7s delay between reviews v2 and ratings for jason: productpage's own 3s timeout (and its one retry)
    # gives up first, so the page shows the reviews error instead of the reviews
    bookinfo.apply("virtual-service-ratings-test-delay.yaml")
    settled(lambda: stars(bookinfo.page("jason")) == "error", n=1, timeout=60)
    assert stars(bookinfo.page()) == "none"
    # an HTTP abort for jason: the reviews show, with "Ratings service is currently unavailable"
    bookinfo.apply("virtual-service-ratings-test-abort.yaml")
    settled(lambda: RATINGS_UNAVAILABLE in bookinfo.page("jason"), n=3, timeout=60)
    page = bookinfo.page()
    assert RATINGS_UNAVAILABLE not in page and stars(page) == "none"


@pytest.mark.istio_task("traffic-management/traffic-shifting", "Traffic Shifting")
def test_traffic_shifting(bookinfo: Bookinfo) -> None:
    bookinfo.apply("virtual-service-all-v1.yaml")
    settled(lambda: stars(bookinfo.page()) == "none")
    bookinfo.apply("virtual-service-reviews-50-v3.yaml")
    wait_for(lambda: stars(bookinfo.page()) == "red", timeout=30, interval=0)
    # "refresh the page a few times: you see the page with red stars about 50% of the time"
    n = 200
    seen = Counter(stars(bookinfo.page()) for _ in range(n))
    assert set(seen) <= {"none", "red"}, seen
    assert abs(seen["red"] - n / 2) <= 4.5 * math.sqrt(n * 0.25), seen  # 4.5 sigma
    bookinfo.apply("virtual-service-reviews-v3.yaml")
    settled(lambda: stars(bookinfo.page()) == "red", n=10)


REVIEWS_V2 = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
"""
RATINGS_DELAY_2S = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      delay:
        percent: 100
        fixedDelay: 2s
    route:
    - destination:
        host: ratings
        subset: v1
"""
REVIEWS_TIMEOUT = """
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
    timeout: 0.5s
"""


@pytest.mark.istio_task("traffic-management/request-timeouts", "Request Timeouts")
def test_request_timeouts(bookinfo: Bookinfo) -> None:
    bookinfo.apply("virtual-service-all-v1.yaml")
    bookinfo.apply(REVIEWS_V2)
    bookinfo.apply(RATINGS_DELAY_2S)
    # "the Bookinfo application working normally (with ratings stars displayed), but … a 2 second delay"
    settled(lambda: stars(bookinfo.page()) == "black", n=2)
    log = bookinfo.kubectl("logs", "-l", "app=reviews,version=v2", "-c", "istio-proxy", "--tail=-1")
    assert any(" DI " in line and "outbound|9080|v1|ratings" in line for line in log.splitlines()), log[-2000:]
    bookinfo.apply(REVIEWS_TIMEOUT)
    # "returns in about 1 second, instead of 2, and the reviews are unavailable"
    settled(lambda: stars(bookinfo.page()) == "error", n=2)
    log = bookinfo.kubectl("logs", "-l", "app=productpage", "-c", "istio-proxy", "--tail=-1")
    assert any(" 504 UT " in line and "outbound|9080|v2|reviews" in line for line in log.splitlines()), log[-2000:]
