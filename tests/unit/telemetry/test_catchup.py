"""Durable telemetry over hand-built ALS entries and access-log files laid out as the runtime writes them: each
request counted once whichever way it arrives, with the labels ALS gives it, and across a restart."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.telemetry.test_als import (
    DESTINATION_REVIEWS,
    GATEWAY,
    HTTP_200,
    OUTSIDER,
    PP_TARGET,
    PRODUCTPAGE,
    REVIEWS,
    RV_TARGET,
    SOURCE_PRODUCTPAGE,
    _service,
    inbound,
    node_of,
    one,
    outbound,
    series,
    stream,
)

from sluice import mesh
from sluice.runtime.logs import format_ts
from sluice.store.sqlite import Store
from sluice.telemetry import Collector
from sluice.telemetry.istio import _FLAG_ORDER
from sluice.telemetry.textlog import entry_key, line_key, parse_line, to_entry
from sluice.xds.bootstrap import proxy_bootstrap

ENVOY_LINE = (
    '[2026-12-03T09:13:40.795Z] "GET /reviews/0 HTTP/1.1" 200 - via_upstream - "-" 0 295 3 2 "-" '
    '"Python-urllib/3.11" "a8574861-2b6a-43d8-afca-be62f07a78be" "reviews:9080" "127.1.0.95:9080" '
    'outbound|9080|v2|reviews.tutorial.svc.cluster.local 127.1.0.104:40000 127.1.0.104:15001 '
    '127.0.0.1:38298 - default')
START = "2026-12-03T09:00:00.123Z"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The pods and Services of `test_als`, as the controllers would write them."""
    s = Store(tmp_path / "store.db")
    for p in (PRODUCTPAGE, REVIEWS, OUTSIDER, GATEWAY):
        s.create("pods", p)
    s.create("services", _service("reviews", "http"))
    s.create("services", _service("productpage"))
    yield s
    s.close()


def test_a_line_and_its_als_entry_share_one_key() -> None:
    line = parse_line(ENVOY_LINE)
    assert line is not None
    assert (line.code, line.request_id, line.authority, line.upstream_host, line.downstream_local, line.duration_ms) == (
        200, "a8574861-2b6a-43d8-afca-be62f07a78be", "reviews:9080", "127.1.0.95:9080", "127.1.0.104:15001", 3)
    assert entry_key(to_entry(line)) == line_key(line)
    # A user agent with quotes and spaces cannot shift the fields after it.
    tricky = ENVOY_LINE.replace('"Python-urllib/3.11"', '"a \\"b\\" "c" d"')
    assert parse_line(tricky) == line
    assert parse_line("[2026-12-03 09:00:00.000][12][warning][config] something") is None
    # a TCP connection's line (Istio's TEXT format from a TCP proxy) is not a request
    tcp = ('[2026-12-03T14:40:01.123Z] "- - -" 0 - - - "-" 29 33 1002 - "-" "-" "-" "-" "10.244.0.7:9000" '
           'outbound|9000|v1|tcp-echo.default.svc.cluster.local 10.244.0.5:41234 10.96.0.30:9000 10.244.0.5:41230 - -')
    assert parse_line(tcp) is None
    flagged = parse_line(ENVOY_LINE.replace(" 200 - via_upstream", " 503 UF,URX upstream_reset"))
    assert flagged is not None
    flags = to_entry(flagged).common_properties.response_flags
    assert flags.upstream_connection_failure and flags.upstream_retry_limit_exceeded


def _text(e: dict[str, Any], cluster: str | None = None) -> str:
    """The TEXT line Envoy writes for the same request as ALS entry `e` (ISTIO_TEXT_FORMAT); `cluster` where the
    line names a cluster that ALS does not (a request that got no upstream host)."""
    cp = e["common_properties"]

    def addr(a: dict[str, Any] | None) -> str:
        return f"{a['socket_address']['address']}:{a['socket_address']['port_value']}" if a else "-"

    flags = ",".join(short for name, short in _FLAG_ORDER if (cp.get("response_flags") or {}).get(name)) or "-"
    return (f'[{cp["start_time"]}] "GET /reviews/0 HTTP/1.1" {e["response"]["response_code"]} {flags} via_upstream - "-" '
            f'0 250 3 2 "-" "curl/8" "{e["request"]["request_id"]}" "{e["request"]["authority"]}" '
            f'"{addr(cp.get("upstream_remote_address"))}" {cluster or cp.get("upstream_cluster") or "-"} - '
            f'{addr(cp["downstream_local_address"])} {addr(cp["downstream_remote_address"])} - default')


def _with_id(e: dict[str, Any], rid: str, start: str = START) -> dict[str, Any]:
    e["request"]["request_id"] = rid
    e["common_properties"]["start_time"] = start
    return e


def _pod_dir(pods: Path, pod: dict[str, Any], uid: str) -> Path:
    d = pods / uid
    (d / "containers" / mesh.SIDECAR_CONTAINER).mkdir(parents=True)
    ip = pod["status"]["podIP"]
    (d / "pod.json").write_text(json.dumps({"pod": {"metadata": pod["metadata"], "spec": pod["spec"]}, "ip": ip}))
    meta = pod["metadata"]
    boot = proxy_bootstrap(node_id=mesh.sidecar_node_id(ip, meta["name"], meta["namespace"]), pod=pod, pod_ip=ip,
                           xds_address=("127.0.0.1", 15010), admin_address=(ip, 15000), cluster="x")
    (d / "envoy.json").write_text(json.dumps(boot))
    return d / "containers" / mesh.SIDECAR_CONTAINER / "0.log"


def _append(log: Path, *entries: dict[str, Any], at: float | None = None, cluster: str | None = None) -> None:
    """CRI records as the shim writes them, stamped `at` (default: a minute ago, past any grace period)."""
    ts = format_ts(int(((time.time() - 60) if at is None else at) * 1e9))
    with log.open("a") as f:
        f.write(f"{ts} stderr F [warning] envoy says something\n")
        for e in entries:
            f.write(f"{ts} stdout F {_text(e, cluster)}\n")


def _collector(store: Store, home: Path) -> Collector:
    return Collector(store, state_dir=home / "telemetry", pods_dir=home / "pods")


@contextlib.asynccontextmanager
async def _running(store: Store, home: Path) -> AsyncIterator[Collector]:
    """A started collector over `home`, stopped on the way out (its final scan and checkpoint written)."""
    c = _collector(store, home)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def _requests(c: Collector, **match: str) -> float:
    return one(c, "istio_requests_total", **match)[1]


async def test_request_counted_once_whether_als_or_the_file_comes_first(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        first, second = _with_id(outbound(), "r1"), _with_id(outbound(), "r2", "2026-12-03T09:00:01.5Z")
        await stream(c, node_of(PRODUCTPAGE), [first])  # ALS first, then its line
        _append(pp_log, first, second)
        assert c.ledger is not None and c.ledger.scan() == 1  # the line without an ALS entry
        await stream(c, node_of(PRODUCTPAGE), [second])  # the file first, then a late ALS entry: refused
        assert _requests(c, reporter="source") == 2
        assert c.ledger.recovered == 1 and c.ledger.refused == 1
        assert c.ledger.scan(final=True) == 0
        assert _requests(c, reporter="source") == 2


async def test_requests_sharing_a_key_are_each_counted_once(store: Store, tmp_path: Path) -> None:
    """A client may send one x-request-id on concurrent requests: same id, same millisecond, same code."""
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        twin = _with_id(outbound(), "same")
        await stream(c, node_of(PRODUCTPAGE), [twin, twin])
        _append(pp_log, twin, twin, twin)  # the third one's ALS entry was lost
        assert c.ledger is not None and c.ledger.scan() == 1
        assert _requests(c, reporter="source") == 3
        await stream(c, node_of(PRODUCTPAGE), [twin, twin])  # one late entry (refused), then a new request
        assert _requests(c, reporter="source") == 4


async def test_a_request_without_an_upstream_host_matches_its_line(store: Store, tmp_path: Path) -> None:
    """503 UH: ALS names no cluster, the line does (%UPSTREAM_CLUSTER_RAW%); still one request."""
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        uh = _with_id(outbound(cluster="", upstream=None, code=503, flags={"no_healthy_upstream": True}), "uh")
        await stream(c, node_of(PRODUCTPAGE), [uh])
        _append(pp_log, uh, cluster=mesh.outbound_cluster(9080, "v2", mesh.fqdn("reviews", "tutorial")))
        assert c.ledger is not None and c.ledger.scan(final=True) == 0
        assert _requests(c, reporter="source") == 1
        # Lost from ALS, the same request from its line lands in the same series.
        _append(pp_log, _with_id(uh, "uh2"), cluster=mesh.outbound_cluster(9080, "v2", mesh.fqdn("reviews", "tutorial")))
        assert c.ledger.scan() == 1 and _requests(c, reporter="source") == 2


async def test_lines_get_the_labels_als_would_give(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    rv_log = _pod_dir(tmp_path / "pods", REVIEWS, "uid-rv")
    _append(pp_log, _with_id(outbound(), "r1"))
    _append(rv_log, _with_id(inbound(), "r1", "2026-12-03T09:00:00.124Z"))
    c = _collector(store, tmp_path)
    await c.start()  # counts what is on disk before anything is served
    try:
        labels, value = one(c, "istio_requests_total", reporter="source")
        assert value == 1 and labels == {"__name__": "istio_requests_total", **PP_TARGET, "reporter": "source",
                                         **SOURCE_PRODUCTPAGE, **DESTINATION_REVIEWS, **HTTP_200,
                                         "connection_security_policy": "unknown"}
        labels, value = one(c, "istio_requests_total", reporter="destination")
        assert value == 1 and labels["source_workload"] == "productpage-v1" and labels["pod"] == RV_TARGET["pod"]
        assert labels["destination_service_name"] == "reviews"
        # The body bytes the line carries (the line has no wire bytes); one observation per reporter.
        counts = [v for lbl, v in series(c, "istio_response_bytes_count")]
        assert counts == [1.0, 1.0]
        assert c.stats.http_entries == 0  # none of it came over ALS
    finally:
        await c.stop()


async def test_fresh_lines_wait_for_their_als_entries(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None
        e = _with_id(outbound(), "r1")
        _append(pp_log, e, at=time.time())
        assert c.ledger.scan() == 0  # within the grace period: its ALS entry may still come
        await stream(c, node_of(PRODUCTPAGE), [e])
        c.ledger.grace = 0
        assert c.ledger.scan() == 0 and _requests(c, reporter="source") == 1


async def test_restart_restores_counts_and_counts_what_was_served_meanwhile(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    c = _collector(store, tmp_path)
    await c.start()
    served = [_with_id(outbound(), f"r{i}", f"2026-12-03T09:00:0{i}.000Z") for i in range(3)]
    await stream(c, node_of(PRODUCTPAGE), served)
    _append(pp_log, *served)
    state = c.capture()  # what the metrics service does before each sample; then the process dies (no stop())
    assert state is not None
    await c.write_checkpoint(state)
    await stream(c, node_of(PRODUCTPAGE), [_with_id(outbound(), "lost", "2026-12-03T09:00:05.000Z")])
    _append(pp_log, _with_id(outbound(), "lost", "2026-12-03T09:00:05.000Z"),
            _with_id(outbound(), "down", "2026-12-03T09:00:06.000Z"))
    c.servicer.admit = None  # the dead process counts nothing more
    await c._pods.stop()
    await c._services.stop()

    again = _collector(store, tmp_path)
    await again.start()
    try:
        assert _requests(again, reporter="source") == 5  # 3 restored + the one lost in flight + the one served while down
        assert one(again, "istio_request_duration_milliseconds_count", reporter="source")[1] == 5
        assert again.ledger is not None and again.ledger.recovered == 2
    finally:
        await again.stop()
    # A clean stop writes the checkpoint too: the next start has the same values and nothing to catch up.
    third = _collector(store, tmp_path)
    await third.start()
    try:
        assert _requests(third, reporter="source") == 5
    finally:
        await third.stop()


async def test_a_checkpoint_captured_earlier_never_replaces_a_later_one(store: Store, tmp_path: Path) -> None:
    """A periodic checkpoint still being written when the daemon stops must not land after the final one."""
    c = _collector(store, tmp_path)
    await c.start()
    await stream(c, node_of(PRODUCTPAGE), [_with_id(outbound(), "r1")])
    early = c.capture()
    assert early is not None
    await stream(c, node_of(PRODUCTPAGE), [_with_id(outbound(), "r2")])
    await c.stop()  # the final checkpoint: both requests
    await c.write_checkpoint(early)  # the periodic one finishing late: one request
    again = _collector(store, tmp_path)
    await again.start()
    try:
        assert _requests(again, reporter="source") == 2
    finally:
        await again.stop()


async def test_a_damaged_checkpoint_starts_from_the_files(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    _append(pp_log, _with_id(outbound(), "r1"))
    (tmp_path / "telemetry").mkdir()
    (tmp_path / "telemetry" / "checkpoint.json").write_text('{"version": 1, "registry": {"istio_requests_total": ')
    async with _running(store, tmp_path) as c:
        assert _requests(c, reporter="source") == 1



async def test_a_rotated_log_is_read_to_its_end_before_the_new_one(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None
        _append(pp_log, _with_id(outbound(), "r1"))
        assert c.ledger.scan() == 1
        _append(pp_log, _with_id(outbound(), "r2"))  # written, not read yet, when the log rotates
        pp_log.rename(pp_log.with_name("0.log.20261203-090000"))
        _append(pp_log, _with_id(outbound(), "r3"))
        assert c.ledger.scan() == 2
        assert _requests(c, reporter="source") == 3


async def test_a_log_read_to_its_end_is_read_again_once_it_changes(store: Store, tmp_path: Path) -> None:
    """A scan passes over a log it has read to the end without opening it; whatever is written to it, or a new
    file put in its place (the same size, even), is read."""
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None
        _append(pp_log, _with_id(outbound(), "r1"))
        assert c.ledger.scan() == 1
        assert c.ledger.scan() == 0
        _append(pp_log, _with_id(outbound(), "r2"))
        assert c.ledger.scan() == 1
        size = pp_log.stat().st_size
        other = pp_log.with_name("new")
        later = time.time() - 50
        _append(other, _with_id(outbound(), "r3"), at=later)
        _append(other, _with_id(outbound(), "r4"), at=later)
        assert other.stat().st_size == size
        other.replace(pp_log)
        assert c.ledger.scan() == 2
        assert c.ledger.scan() == 0
        assert _requests(c, reporter="source") == 4


async def test_a_restarted_proxy_is_followed_into_its_next_log(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None
        _append(pp_log, _with_id(outbound(), "r1"))
        (pp_log.parent / "0.exit").write_text("0 15 1\n")
        _append(pp_log.with_name("1.log"), _with_id(outbound(), "r2"))
        assert c.ledger.scan() == 2
        assert _requests(c, reporter="source") == 2


async def test_a_long_catch_up_runs_in_budgets(store: Store, tmp_path: Path) -> None:
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    _append(pp_log, *(_with_id(outbound(), f"r{i}") for i in range(25)))
    c = _collector(store, tmp_path)
    assert c.ledger is not None
    assert c.ledger.scan(final=True, budget=10) == 10 and c.ledger.behind
    assert c.ledger.scan(final=True, budget=10) == 10 and c.ledger.behind
    assert c.ledger.scan(final=True, budget=10) == 5 and not c.ledger.behind
    assert _requests(c, reporter="source") == 25


async def test_rotated_and_compressed_logs_are_read_once(store: Store, tmp_path: Path) -> None:
    """Behind by two rotations (the kubelet's scheme: `0.log.<stamp>`, older ones gzipped): every line once."""
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None
        old = time.time() - 120
        _append(pp_log, _with_id(outbound(), "r1"), at=old)
        assert c.ledger.scan() == 1
        _append(pp_log, *(_with_id(outbound(), f"r{i}") for i in (2, 3)), at=old + 1)  # unread, then rotated
        first = pp_log.with_name("0.log.20261203-090000")
        pp_log.rename(first)
        with gzip.open(first.with_name(first.name + ".gz"), "wb") as z:
            z.write(first.read_bytes())
        first.unlink()
        _append(pp_log, _with_id(outbound(), "r4"), at=old + 2)
        pp_log.rename(pp_log.with_name("0.log.20261203-090100"))
        _append(pp_log, _with_id(outbound(), "r5"), at=old + 3)
        assert c.ledger.scan() == 4
        assert _requests(c, reporter="source") == 5
        _append(pp_log, _with_id(outbound(), "r6"), at=old + 4)
        assert c.ledger.scan() == 1 and _requests(c, reporter="source") == 6


async def test_without_istios_text_log_nothing_waits_for_lines(store: Store, tmp_path: Path) -> None:
    """The mesh config turned the access log off (or to another format): ALS entries are counted and not
    remembered, and lines still in the file (written before the switch) are passed over, never counted twice."""
    pp_log = _pod_dir(tmp_path / "pods", PRODUCTPAGE, "uid-pp")
    async with _running(store, tmp_path) as c:
        assert c.ledger is not None and c.servicer.admit is not None
        c.set_file_log(False)
        assert c.servicer.admit is None
        first = _with_id(outbound(), "r1")
        await stream(c, node_of(PRODUCTPAGE), [first])
        _append(pp_log, first)  # its line, written before the sidecar got the new config
        assert c.ledger.scan(final=True) == 0 and _requests(c, reporter="source") == 1
        assert all(not sc.pending for sc in c.ledger.sidecars.values())
        c.set_file_log(True)  # back on: entries are remembered until their lines come
        second = _with_id(outbound(), "r2", "2026-12-03T09:00:01.5Z")
        await stream(c, node_of(PRODUCTPAGE), [second])
        _append(pp_log, second)
        assert c.ledger.scan(final=True) == 0 and _requests(c, reporter="source") == 2
