"""The story's PromQL in netns mode: requests an app in the sleep pod sends (captured by its sidecar, no proxy
settings) are counted exactly by the story's queries, from both reporters, with Istio's labels.

The requests start inside the sleep pod's network namespace (`tests.e2e.mesh.via` with a `Pod`), as the app's
own would; counts come from the responses (reviews v2 answers black stars, v3 red).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conftest import Daemon, stop_daemon, wait_for
from tests.e2e.mesh import (
    api_client,
    healthy_endpoints,
    pod,
    pod_ips,
    reviews_version,
    route_weights,
    start_story_mesh,
    via,
)
from tests.e2e.test_story_metrics import NS, Q_ALL, Q_SUM, Q_V2, Q_V3, _base, prom_query, scalar_of
from tests.story import STORY_VS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_story_mesh(tmp_path_factory.mktemp("metrics-netns"), config="scrape_interval: 1\n",
                         extra=[STORY_VS], network="netns")
    try:
        yield d
    finally:
        stop_daemon(d)


def test_story_queries_count_exactly_in_netns_mode(mesh: Daemon) -> None:
    core = client.CoreV1Api(api_client(mesh))
    sleep = pod(mesh, pod_ips(core, NS, "app=sleep")[0], core)
    assert sleep.netns is not None
    wait_for(lambda: route_weights(sleep) == {"v2": 90, "v3": 10}, timeout=30)
    # …and the subsets' endpoints with it (EDS may follow the route by a push): every request below must land.
    subsets = [f"outbound|9080|{v}|reviews.{NS}.svc.cluster.local" for v in ("v2", "v3")]
    wait_for(lambda: all(healthy_endpoints(sleep, c) > 0 for c in subsets), timeout=30)
    answered: Counter[str] = Counter()
    for _ in range(300):
        code, body = via(sleep, "http://reviews:9080/reviews/0")
        assert code == 200
        answered[reviews_version(body)] += 1
    base = _base(mesh)
    wait_for(lambda: scalar_of(prom_query(base, Q_SUM)) == 300.0, timeout=30, interval=0.5)
    assert scalar_of(prom_query(base, Q_V2)) == answered["v2"]
    assert scalar_of(prom_query(base, Q_V3)) == answered["v3"]
    source = Q_SUM.replace('reporter="destination"', 'reporter="source"')
    wait_for(lambda: scalar_of(prom_query(base, source)) == 300.0, timeout=30, interval=0.5)
    labels = prom_query(base, Q_ALL)["result"][0]["metric"]
    assert labels["source_workload"] == "sleep" and labels["destination_app"] == "reviews"
    assert labels["destination_service"] == "reviews.tutorial.svc.cluster.local"
    assert labels["request_protocol"] == "http" and labels["response_code"] == "200"
