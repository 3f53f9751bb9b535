"""The user story's Kiali steps, walked in a real browser (Debian's Chromium) against a live mesh.

The tests run in file order on one page, as the story does: read the 90/10 split off the graph; edit the
VirtualService to 80 + 10 and see the error toast (and nothing changes); fix it to 80/20 and see the graph
follow; shift with the wizard; read reviews-v2's istio-proxy logs. Every check is on what the page shows,
cross-checked against the API and the sidecars' own config. The browser logs in as a user does: it opens the
address `sluice console` prints (a one-time login token that becomes a session cookie); the test's own API
reads use the kubeconfig's bearer token, as a script would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.browser.conftest import shot
from tests.conftest import TOOLS, Daemon, stop_daemon, wait_for
from tests.e2e.mesh import SAMPLES, api_client, pod, pod_ips, route_weights, start_story_mesh
from tests.story import STORY_VS

pytestmark = pytest.mark.browser

NS = "tutorial"
WEIGHT_ERROR = "total destination weight 90 != 100"
# More requests than the demo's 5 rps, so a one-minute window holds enough to read a split from.
GENERATOR = (SAMPLES / "traffic-generator.yaml").read_text().replace('"--rate", "5"', '"--rate", "12"')


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    d = start_story_mesh(tmp_path_factory.mktemp("console"), config="scrape_interval: 1\n",
                         extra=[STORY_VS, GENERATOR])
    try:
        run = json.loads((d.home / "daemon.json").read_text())
        yield d, f"http://127.0.0.1:{run['console_port']}"
    finally:
        stop_daemon(d)


def login_url(d: Daemon, page: str = "graph") -> str:
    """What `sluice console` prints: the console's address with a one-time login token."""
    cp = subprocess.run([sys.executable, "-m", "sluice.cli", "console", NS, "--page", page], env=d.env,
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    url = cp.stdout.strip()
    assert "token=" in url, url
    return url


def log_in(p: Any, d: Daemon, page: str = "graph") -> None:
    """Open the tokened address; the console sets its session cookie and drops the token from the address."""
    p.goto(login_url(d, page))
    p.wait_for_url(re.compile(rf"/{page}\?namespace={NS}$"))
    p.wait_for_selector("nav.sidebar")


@pytest.fixture(scope="module")
def page(browser: Any, mesh: tuple[Daemon, str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    log_in(p, mesh[0])
    yield p
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def api_get(mesh: tuple[Daemon, str], path: str) -> Any:
    d, base = mesh
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {d.token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def vs_weights(mesh: tuple[Daemon, str]) -> dict[str, int]:
    vs = api_get(mesh, f"/api/namespaces/{NS}/istio/VirtualService/reviews")["object"]
    return {d["destination"]["subset"]: int(d.get("weight", 0)) for d in vs["spec"]["http"][0]["route"]}


def graph_split(page: Any) -> dict[str, float]:
    """The share of traffic the drawn edges into reviews v2 and v3 carry, read from their labels."""
    g = page.evaluate("window.sluiceGraph ? window.sluiceGraph() : null")
    if not g:
        return {}
    nodes = {n["id"]: n for n in g["nodes"]}
    out: dict[str, float] = {}
    for e in g["edges"]:
        target = nodes.get(e["target"], {})
        if target.get("app") == "reviews" and target.get("version") in ("v2", "v3"):
            m = re.search(r"(\d+(?:\.\d+)?)%", e.get("label") or "")
            out[target["version"]] = float(m.group(1)) if m else 100.0
    return out


def open_graph(page: Any, base: str) -> None:
    page.goto(f"{base}/graph?namespace={NS}&graphType=versionedApp&duration=60&refresh=10000")
    page.wait_for_selector("[data-testid=graph]")


def wait_split(page: Any, ok: Any, timeout: float) -> dict[str, float]:
    seen: dict[str, float] = {}

    def check() -> bool:
        nonlocal seen
        seen = graph_split(page)
        return bool(ok(seen))

    try:
        wait_for(check, timeout=timeout, interval=1)
    except Exception:
        raise AssertionError(f"the graph's split never matched; last read {seen}") from None
    return seen


def editor_text(page: Any) -> str:
    return str(page.locator("[data-testid=yaml-editor] .cm-content").inner_text())


def replace_editor_text(page: Any, text: str) -> None:
    page.locator("[data-testid=yaml-editor] .cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def open_reviews_in_editor(page: Any, base: str) -> str:
    page.goto(f"{base}/istio?namespace={NS}")
    page.locator("[data-testid=row-reviews]").get_by_role("link", name="reviews").click()
    page.wait_for_url(re.compile(r"/namespaces/tutorial/istio/VirtualService/reviews"))
    page.wait_for_selector("[data-testid=yaml-editor] .cm-content")
    wait_for(lambda: "weight:" in editor_text(page), timeout=15)
    return editor_text(page)


def reviews_requests(d: Daemon) -> float:
    """How many requests reviews has answered (the story's own PromQL, through the metrics API)."""
    run = json.loads((d.home / "daemon.json").read_text())
    q = urllib.parse.quote('sum(istio_requests_total{reporter="destination",destination_service_name="reviews"})')
    with urllib.request.urlopen(f"http://127.0.0.1:{run['metrics_port']}/api/v1/query?query={q}", timeout=10) as r:
        result = json.loads(r.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_graph_shows_the_90_10_split(mesh: tuple[Daemon, str], page: Any) -> None:
    d, base = mesh
    # A split read off a handful of requests says little: let most of a one-minute window fill first.
    wait_for(lambda: reviews_requests(d) >= 500, timeout=120, interval=1)
    open_graph(page, base)
    split = wait_split(page, lambda s: s.keys() == {"v2", "v3"} and s["v2"] + s["v3"] > 99, timeout=60)
    assert 80 <= split["v2"] <= 97 and 3 <= split["v3"] <= 20, split
    shot(page, "graph-90-10")
    g = page.evaluate("window.sluiceGraph()")
    service = next(n for n in g["nodes"] if n["nodeType"] == "service" and n.get("service") == "reviews")
    assert {"vs", "trafficShifting"} <= set(service["badges"]), service


def test_graph_labels_rate_and_response_time(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh
    page.goto(f"{base}/graph?namespace={NS}&duration=60&edges=trafficRate,responseTime,rt95")
    page.wait_for_selector("[data-testid=graph]")

    def labelled() -> list[str]:
        g = page.evaluate("window.sluiceGraph ? window.sluiceGraph() : null") or {"edges": []}
        return [e["label"] for e in g["edges"]]

    wait_for(lambda: any(re.search(r"\d(rps)", lb) for lb in labelled()), timeout=30)
    labels = labelled()
    # Every edge carries its rate (2 significant digits); edges into workloads also their p95.
    assert all(re.match(r"^\d+(\.\d+)?rps", lb) for lb in labels), labels
    assert any(re.search(r"\n\d+(\.\d+)?(ms|s)$", lb) for lb in labels), labels
    assert not any("%" in lb for lb in labels), labels  # no errors, and distribution is off


def test_workload_app_and_service_graphs(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh

    def nodes() -> list[dict[str, Any]]:
        g = page.evaluate("window.sluiceGraph ? window.sluiceGraph() : null") or {"nodes": []}
        return [n for n in g["nodes"] if n["nodeType"] != "box"]

    page.goto(f"{base}/graph?namespace={NS}&graphType=workload&duration=60")
    wait_for(lambda: {"reviews-v2", "reviews-v3"} <= {n.get("workload") for n in nodes()
                                                     if n["nodeType"] == "workload"}, timeout=30)
    page.goto(f"{base}/graph?namespace={NS}&graphType=app&duration=60")
    wait_for(lambda: any(n["nodeType"] == "app" and n.get("app") == "reviews" for n in nodes()), timeout=30)
    assert not any(n.get("version") for n in nodes() if n["nodeType"] == "app")  # one node per app
    page.goto(f"{base}/graph?namespace={NS}&graphType=service&duration=60")
    wait_for(lambda: any(n.get("service") == "reviews" for n in nodes()), timeout=30)
    assert {n["nodeType"] for n in nodes()} <= {"service", "unknown", "workload"}
    assert not any(n["nodeType"] == "workload" and n.get("workload", "").startswith("reviews") for n in nodes())


def test_rejected_edit_shows_the_servers_error_and_changes_nothing(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh
    before = api_get(mesh, f"/api/namespaces/{NS}/istio/VirtualService/reviews")
    text = open_reviews_in_editor(page, base)
    assert "weight: 90" in text and "weight: 10" in text
    replace_editor_text(page, text.replace("weight: 90", "weight: 80"))
    page.locator("[data-testid=save]").click()
    toast = page.locator("[data-testid=toast][data-kind=danger]")
    toast.first.wait_for()
    assert WEIGHT_ERROR in toast.first.inner_text()
    box = toast.first.bounding_box()
    assert box is not None and box["x"] > 1400 / 2 and box["y"] < 900 / 4, box  # top right
    inline = page.locator("[data-testid=editor-error]")
    inline.wait_for()
    assert WEIGHT_ERROR in inline.inner_text()
    assert "weight: 80" in editor_text(page)  # the user's edit is kept for fixing
    shot(page, "editor-rejected-80-10")
    after = api_get(mesh, f"/api/namespaces/{NS}/istio/VirtualService/reviews")
    assert after["resourceVersion"] == before["resourceVersion"]
    assert vs_weights(mesh) == {"v2": 90, "v3": 10}


def test_valid_edit_saves_and_the_graph_follows(mesh: tuple[Daemon, str], page: Any) -> None:
    d, base = mesh
    text = editor_text(page)
    replace_editor_text(page, text.replace("weight: 10", "weight: 20"))
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=toast][data-kind=success]").first.wait_for()
    assert vs_weights(mesh) == {"v2": 80, "v3": 20}
    core = client.CoreV1Api(api_client(d))
    sleep_ip = pod_ips(core, NS, "app=sleep")[0]
    wait_for(lambda: route_weights(pod(d, sleep_ip)) == {"v2": 80, "v3": 20}, timeout=30)
    open_graph(page, base)
    # The window is one minute: the split moves from 90:10 towards 80:20 as the window fills.
    split = wait_split(page, lambda s: s.get("v3", 0) >= 16, timeout=150)
    assert 70 <= split["v2"] <= 85, split
    shot(page, "graph-80-20")


def test_wizard_shifts_traffic(mesh: tuple[Daemon, str], page: Any) -> None:
    d, base = mesh
    page.goto(f"{base}/namespaces/{NS}/services/reviews?namespace={NS}")
    page.get_by_role("button", name=re.compile("Actions")).click()
    page.get_by_text("Traffic Shifting", exact=True).click()
    wizard = page.locator("[data-testid=wizard]")
    wizard.wait_for()
    wizard.locator("[data-testid=weight-reviews-v3]").wait_for()  # the rows come with the current weights
    for name in ("reviews-v1", "reviews-v2", "reviews-v3"):
        assert wizard.locator(f"[data-testid=weight-{name}]").count() == 1
    # The sliders start from the current split.
    assert wizard.locator("[data-testid=weight-input-reviews-v2]").input_value() == "80"
    assert wizard.locator("[data-testid=weight-input-reviews-v3]").input_value() == "20"
    wizard.locator("[data-testid=lock-reviews-v1]").click()  # v1 stays at 0
    v2 = wizard.locator("[data-testid=weight-input-reviews-v2]")
    v2.fill("30")
    v2.press("Tab")
    wait_for(lambda: wizard.locator("[data-testid=weight-input-reviews-v3]").input_value() == "70", timeout=5)
    assert wizard.locator("[data-testid=weight-input-reviews-v1]").input_value() == "0"
    shot(page, "wizard-30-70")
    wizard.locator("[data-testid=wizard-submit]").click()
    page.locator("[data-testid=toast][data-kind=success]").first.wait_for()
    vs = api_get(mesh, f"/api/namespaces/{NS}/istio/VirtualService/reviews")["object"]
    assert vs["metadata"]["labels"]["kiali_wizard"] == "traffic_shifting"
    assert vs_weights(mesh) == {"v2": 30, "v3": 70}
    dr = api_get(mesh, f"/api/namespaces/{NS}/istio/DestinationRule/reviews")["object"]
    assert dr["metadata"]["labels"]["kiali_wizard"] == "traffic_shifting"
    assert {s["name"]: s["labels"] for s in dr["spec"]["subsets"]} == {
        v: {"version": v} for v in ("v1", "v2", "v3")}
    core = client.CoreV1Api(api_client(d))
    sleep_ip = pod_ips(core, NS, "app=sleep")[0]
    wait_for(lambda: route_weights(pod(d, sleep_ip)) == {"v2": 30, "v3": 70}, timeout=30)


def test_istio_proxy_logs_of_reviews_v2(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh
    page.goto(f"{base}/namespaces/{NS}/workloads/reviews-v2?namespace={NS}&tab=logs")
    logs = page.locator("[data-testid=logs]")
    logs.wait_for()
    proxy = logs.locator("[data-testid=log-line][data-proxy=true]")
    wait_for(lambda: proxy.count() > 0, timeout=30)
    proxy_text = proxy.all_inner_texts()
    assert any('"GET /reviews/0 HTTP/1.1" 200' in t and "inbound|9080||" in t for t in proxy_text), proxy_text[:3]
    app_lines = logs.locator("[data-testid=log-line]:not([data-proxy=true])")
    assert app_lines.count() > 0  # the app's own lines are there too, unmarked
    # Follow mode appends the lines that arrive (the mesh has steady traffic).
    before = logs.locator("[data-testid=log-line]").count()
    page.locator("[data-testid=logs-follow]").check()
    wait_for(lambda: logs.locator("[data-testid=log-line]").count() > before, timeout=30)
    page.locator("[data-testid=logs-follow]").uncheck()
    page.locator("[data-testid=logs-filter]").fill("inbound|9080")
    wait_for(lambda: all("inbound|9080" in t for t in logs.locator("[data-testid=log-line]").all_inner_texts())
             and logs.locator("[data-testid=log-line]").count() > 0, timeout=10)
    shot(page, "logs-reviews-v2")


def test_create_and_delete_config(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh
    page.goto(f"{base}/istio/new?namespace={NS}")
    page.locator("[data-testid=create-kind]").select_option("Gateway")
    wait_for(lambda: "kind: Gateway" in editor_text(page), timeout=10)
    replace_editor_text(page, editor_text(page).replace("name: my-gateway", "name: console-gw"))
    page.locator("[data-testid=save]").click()
    page.locator("[data-testid=toast][data-kind=success]").first.wait_for()
    gw = api_get(mesh, f"/api/namespaces/{NS}/istio/Gateway/console-gw")["object"]
    assert gw["spec"]["servers"][0]["port"]["number"] == 80
    page.goto(f"{base}/namespaces/{NS}/istio/Gateway/console-gw?namespace={NS}")
    page.locator("[data-testid=delete]").click()
    page.locator("[data-testid=confirm]").click()
    page.wait_for_url(re.compile(r"/istio\?"))
    items = api_get(mesh, f"/api/istio/config?namespace={NS}&kinds=Gateway")["items"]
    assert "console-gw" not in {i["name"] for i in items}


def test_overview_lists_and_charts(mesh: tuple[Daemon, str], page: Any) -> None:
    _, base = mesh
    page.goto(f"{base}/overview?namespace={NS}")
    card = page.locator(f"[data-testid=ns-card-{NS}]")
    card.wait_for()
    wait_for(lambda: card.locator("svg polyline, svg path").count() > 0, timeout=30)  # the traffic sparkline
    assert "workloads" in card.inner_text()
    for path, name in (("/applications", "reviews"), ("/workloads", "reviews-v3"), ("/services", "reviews")):
        page.goto(f"{base}{path}?namespace={NS}")
        row = page.locator(f"[data-testid=row-{name}]")
        row.wait_for()
        wait_for(lambda row=row: row.locator("[data-health=Healthy]").count() > 0, timeout=30)
    # The workload's own page lists its pods as the API server has them.
    page.goto(f"{base}/namespaces/{NS}/workloads/reviews-v3?namespace={NS}")
    pods = page.locator("[data-testid=pods] tbody tr")
    pods.first.wait_for()
    core = client.CoreV1Api(api_client(mesh[0]))
    names = {p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=reviews,version=v3").items}
    rows = pods.all_inner_texts()
    assert len(rows) == len(names) and all(any(n in t for t in rows) for n in names), (rows, names)
    assert all("Running" in t and "istio-proxy" in t for t in pods.all_inner_texts()), pods.all_inner_texts()
    page.goto(f"{base}/namespaces/{NS}/workloads/reviews-v3?namespace={NS}&tab=in_metrics")
    for chart in ("request_count", "request_duration", "request_size", "response_size"):
        page.locator(f"[data-testid=chart-{chart}] canvas").first.wait_for()
    data = api_get(mesh, f"/api/namespaces/{NS}/workloads/reviews-v3/metrics?direction=inbound&duration=5m")
    volume = next(c for c in data["charts"] if c["name"] == "request_count")
    assert any(v > 0 for _, v in volume["series"][0]["values"])
    shot(page, "workload-metrics")


FAULT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      abort:
        percentage:
          value: 50
        httpStatus: 500
    route:
    - destination:
        host: ratings
        subset: v1
"""


def test_errors_colour_the_graph(mesh: tuple[Daemon, str], page: Any) -> None:
    d, base = mesh
    kube = [str(TOOLS / "kubectl-1.35"), "-n", NS]
    subprocess.run([*kube, "apply", "-f", "-"], input=FAULT, env=d.env, check=True, capture_output=True, text=True)
    try:
        page.goto(f"{base}/graph?namespace={NS}&duration=60&edges=trafficRate&refresh=10000")
        page.wait_for_selector("[data-testid=graph]")

        def into_ratings() -> list[dict[str, Any]]:
            g = page.evaluate("window.sluiceGraph ? window.sluiceGraph() : null") or {"nodes": [], "edges": []}
            ratings = {n["id"] for n in g["nodes"] if n["nodeType"] == "service" and n.get("service") == "ratings"}
            return [e for e in g["edges"] if e["target"] in ratings]

        # The aborted calls never reach a ratings pod, so only the caller's proxy reports them, with an unknown
        # destination workload and namespace: as in Kiali they go to their own ratings service node, every one
        # an error, which is a Failure (5xx >= 10 %); the label shows the error share under the rate.
        wait_for(lambda: any(e["health"] == "Failure" for e in into_ratings()), timeout=90, interval=1)
        failing = [e for e in into_ratings() if e["health"] == "Failure"]
        assert all(re.match(r"^\d+(\.\d+)?rps\n\d+(\.\d+)?%$", e["label"]) for e in failing), failing

        def callers() -> list[dict[str, Any]]:
            return [n for n in page.evaluate("window.sluiceGraph()")["nodes"]
                    if n.get("app") == "reviews" and n.get("version") in ("v2", "v3")]

        # The callers' outbound error share climbs past 10 % as the window fills.
        wait_for(lambda: bool(callers()) and all(n["health"] == "Failure" for n in callers()), timeout=60)
        g = page.evaluate("window.sluiceGraph()")
        assert any("faultInjection" in n["badges"] for n in g["nodes"]
                   if n["nodeType"] == "service" and n.get("service") == "ratings")
        shot(page, "graph-fault")
    finally:
        subprocess.run([*kube, "delete", "virtualservice", "ratings"], env=d.env, capture_output=True)


def test_every_page_loads_nothing_from_outside(mesh: tuple[Daemon, str], browser: Any) -> None:
    d, base = mesh
    context = browser.new_context()
    outside: list[str] = []
    context.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
               else outside.append(r.url))
    p = context.new_page()
    log_in(p, d)
    for path in ("/overview", "/graph", "/applications", "/workloads", "/services", "/istio",
                 f"/namespaces/{NS}/workloads/reviews-v3", f"/namespaces/{NS}/services/reviews",
                 f"/namespaces/{NS}/istio/DestinationRule/reviews"):
        p.goto(f"{base}{path}?namespace={NS}")
        p.wait_for_load_state("networkidle")
    context.close()
    assert outside == []


def test_login_page_and_an_ended_session(mesh: tuple[Daemon, str], browser: Any) -> None:
    """Without a session the console shows only its login page; pasting what `sluice console` printed logs in.
    When the session ends under an open page, the next API answer (401) brings up the login dialog over it."""
    d, base = mesh
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        p = context.new_page()
        resp = p.goto(f"{base}/overview?namespace={NS}")
        assert resp is not None and resp.status == 401
        assert p.locator("nav.sidebar").count() == 0  # never the app
        p.fill("[data-testid=login-token]", "not-a-token")
        p.click("[data-testid=login-submit]")
        p.wait_for_selector("#message:has-text('not valid')")
        p.fill("[data-testid=login-token]", login_url(d, "overview"))  # the whole printed address works
        p.click("[data-testid=login-submit]")
        p.wait_for_selector("nav.sidebar")
        assert p.url == f"{base}/overview?namespace={NS}"
        cookie, = [c for c in context.cookies() if c["name"].startswith("sluice-console-")]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert p.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        shot(p, "login-done")

        context.clear_cookies()  # the session ends (expired, or the key was replaced)
        p.locator("nav.sidebar").get_by_role("link", name="Istio Config").click()
        dialog = p.locator("[data-testid=login-dialog]")
        dialog.wait_for()
        shot(p, "login-dialog")
        token = login_url(d).split("token=", 1)[1]
        dialog.locator("[data-testid=login-token]").fill(token)
        dialog.locator("[data-testid=login-submit]").click()
        dialog.wait_for(state="detached")
        p.locator("[data-testid=row-reviews]").wait_for()  # the list reloaded once logged in
    finally:
        context.close()
