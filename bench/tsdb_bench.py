"""Embedded TSDB benchmarks: ingestion rate per core, memory per series, bytes per sample in memory and on
disk, select and restart times, for Istio-shaped series (24 labels, histograms). Prints a Markdown section."""

from __future__ import annotations

import asyncio
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.conftest import TOOLS, free_port  # noqa: E402

from sluice.metrics.promql.format import format_float  # noqa: E402
from sluice.metrics.series import Labels, Matcher, labels_of  # noqa: E402
from sluice.metrics.tsdb import TSDB  # noqa: E402

SCRAPE_MS = 5_000
HOUR_SCRAPES = 3600_000 // SCRAPE_MS
SIDE_BY_SIDE_SERIES = 536  # two of the eight edges
BUCKETS = ["0.5", "1.0", "5.0", "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0",
           "10000.0", "30000.0", "60000.0", "300000.0", "600000.0", "1.8e+06", "3.6e+06", "+Inf"]
EDGES = [("productpage", "v1", "details", "v1"), ("productpage", "v1", "reviews", "v1"),
         ("productpage", "v1", "reviews", "v2"), ("productpage", "v1", "reviews", "v3"),
         ("reviews", "v2", "ratings", "v1"), ("reviews", "v3", "ratings", "v1"),
         ("istio-ingressgateway", "", "productpage", "v1"), ("sleep", "v1", "productpage", "v1")]


def istio_series() -> list[Labels]:
    """Istio's standard metrics for Bookinfo-like edges, both reporters, two response codes."""
    out = []
    for src, sv, dst, dv in EDGES:
        for reporter in ("source", "destination"):
            for code in ("200", "503"):
                base = {
                    "reporter": reporter, "source_workload": f"{src}-{sv}" if sv else src,
                    "source_workload_namespace": "tutorial", "source_principal": f"spiffe://cluster.local/ns/tutorial/sa/{src}",
                    "source_app": src, "source_version": sv, "source_canonical_service": src,
                    "source_canonical_revision": sv or "latest", "source_cluster": "Kubernetes",
                    "destination_workload": f"{dst}-{dv}", "destination_workload_namespace": "tutorial",
                    "destination_principal": f"spiffe://cluster.local/ns/tutorial/sa/{dst}", "destination_app": dst,
                    "destination_version": dv, "destination_service": f"{dst}.tutorial.svc.cluster.local",
                    "destination_service_name": dst, "destination_service_namespace": "tutorial",
                    "destination_canonical_service": dst, "destination_canonical_revision": dv,
                    "destination_cluster": "Kubernetes", "request_protocol": "http", "response_code": code,
                    "grpc_response_status": "", "response_flags": "-", "connection_security_policy":
                        "mutual_tls" if reporter == "destination" else "unknown",
                }
                out.append(labels_of({"__name__": "istio_requests_total", **base}))
                for h in ("istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"):
                    for le in BUCKETS:
                        out.append(labels_of({"__name__": f"{h}_bucket", **base, "le": le}))
                    out.append(labels_of({"__name__": f"{h}_sum", **base}))
                    out.append(labels_of({"__name__": f"{h}_count", **base}))
    return out


def scrape_values(n: int, rounds: int) -> list[list[float]]:
    """Counter values that move the way request counters and buckets do (many stay flat for a while)."""
    rng = random.Random(7)
    vals = [0.0] * n
    rates = [rng.choice((0, 0, 0.2, 1, 5, 20)) for _ in range(n)]
    out = []
    for _ in range(rounds):
        vals = [v + (rng.random() * 2 * r if r else 0.0) // 1 for v, r in zip(vals, rates, strict=True)]
        out.append(vals)
    return out


def openmetrics(data: list[tuple[tuple[tuple[str, str], ...], list[float]]], times: list[int], path: Path) -> None:
    with path.open("w") as f:
        names = sorted({dict(lbl)["__name__"] for lbl, _ in data})
        for name in names:
            f.write(f"# TYPE {name} gauge\n")  # samples are written as they were scraped; types don't matter
            for labels, vals in data:
                if dict(labels)["__name__"] != name:
                    continue
                lbl = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
                for t, v in zip(times, vals, strict=True):
                    f.write(f"{name}{{{lbl}}} {format_float(v)} {t / 1000:.3f}\n")
        f.write("# EOF\n")


def _dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(f.stat().st_size for f in path.rglob(pattern) if f.is_file())


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return bool(r.status == 200 and b'"result":[{' in r.read())
    except OSError:
        return False


def side_by_side(series: list[Labels], values: list[list[float]], t0: int, home: Path) -> dict[str, float]:
    """The same samples in sluice's TSDB (compacted to its snapshot) and in Debian's Prometheus (blocks written
    by promtool's backfill, the storage Prometheus queries): bytes on disk per sample, and the time from starting
    each on that data to answering a query over it. A subset of the series (the OpenMetrics text of every one
    of them would be 2 GB); bytes per sample depend on how many samples a series has, not on how many series."""
    n = len(series)
    rounds = len(values)
    samples = n * rounds
    out: dict[str, float] = {"series": n, "samples": samples}
    db = TSDB(home / "ours")
    for k in range(rounds):
        db.append(t0 + k * SCRAPE_MS, zip(series, values[k][:n], strict=True), scrape_target="collector")
    db.compact()
    out["ours_bytes"] = db.stats().disk_bytes / samples
    db.close()
    story = [Matcher("__name__", "=", "istio_requests_total"), Matcher("reporter", "=", "destination")]
    end = t0 + (rounds - 1) * SCRAPE_MS
    c = time.perf_counter()
    again = TSDB(home / "ours")
    got = list(again.select(story, end - 3600_000, end))
    out["ours_ready_ms"] = (time.perf_counter() - c) * 1000
    assert got
    again.close()

    om = home / "data.om"
    openmetrics([(labels, [values[k][i] for k in range(rounds)]) for i, labels in enumerate(series)],
                [t0 + k * SCRAPE_MS for k in range(rounds)], om)
    cpu = _children_cpu()
    subprocess.run([str(TOOLS / "promtool"), "tsdb", "create-blocks-from", "openmetrics", str(om), str(home / "prom")],
                   check=True, capture_output=True)
    out["prom_backfill_cpu_s"] = _children_cpu() - cpu
    om.unlink()
    out["prom_bytes"] = _dir_bytes(home / "prom") / samples
    out["prom_chunk_bytes"] = _dir_bytes(home / "prom", "chunks/*") / samples
    port = free_port()
    url = (f"http://127.0.0.1:{port}/api/v1/query?query=istio_requests_total%7Breporter%3D%22destination%22%7D"
           f"&time={end / 1000:.3f}")
    c = time.perf_counter()
    prom = subprocess.Popen([str(TOOLS / "prometheus"), f"--storage.tsdb.path={home / 'prom'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--config.file=/dev/null", "--log.level=error",
                             "--storage.tsdb.retention.time=100y"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not _get_ok(url):
            if prom.poll() is not None or time.perf_counter() - c > 60:
                raise RuntimeError("Prometheus did not answer over the backfilled blocks")
            time.sleep(0.01)
        out["prom_ready_ms"] = (time.perf_counter() - c) * 1000
    finally:
        prom.terminate()
        prom.wait()
    return out


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    series = istio_series()
    n = len(series)
    hours = 2
    rounds = HOUR_SCRAPES * hours
    values = scrape_values(n, rounds)
    home = Path(tempfile.mkdtemp(prefix="sluice-tsdb-bench-"))
    try:
        t0 = 1_700_000_000_000
        rss0 = rss_kib()
        db = TSDB(home / "tsdb")
        cpu0 = time.process_time()
        for k in range(rounds):
            db.append(t0 + k * SCRAPE_MS, zip(series, values[k], strict=True), scrape_target="collector")
        ingest_cpu = time.process_time() - cpu0
        rss1 = rss_kib()
        st = db.stats()
        samples = n * rounds
        wal_bytes = st.disk_bytes

        # Memory, traced separately (tracemalloc slows ingestion): the series alone, then with samples.
        tracemalloc.start()
        mem = TSDB(None)
        mem.append(t0, zip(series, values[0], strict=True), scrape_target="collector")
        per_series, _ = tracemalloc.get_traced_memory()
        for k in range(1, rounds):
            mem.append(t0 + k * SCRAPE_MS, zip(series, values[k], strict=True), scrape_target="collector")
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del mem

        story = [Matcher("__name__", "=", "istio_requests_total"), Matcher("reporter", "=", "destination"),
                 Matcher("destination_service_name", "=", "reviews"), Matcher("destination_version", "=", "v2"),
                 Matcher("destination_service_namespace", "=", "tutorial")]
        end = t0 + (rounds - 1) * SCRAPE_MS

        def timed_select(matchers: list[Matcher], start: int) -> tuple[float, int]:
            c = time.perf_counter()
            got = sum(len(s.timestamps) for s in db.select(matchers, start, end))
            return (time.perf_counter() - c) * 1000, got

        sel_story_ms, sel_story_n = timed_select(story, end - 3600_000)
        story_series = len(list(db.select(story, end - 3600_000, end)))
        sel_all_ms, sel_all_n = timed_select([Matcher("__name__", "=~", "istio_request_duration.*_bucket")],
                                             end - 3600_000)
        c = time.perf_counter()
        db.compact()
        compact_ms = (time.perf_counter() - c) * 1000
        snap_bytes = db.stats().disk_bytes
        # A burst after the snapshot, then a restart: snapshot load + WAL replay.
        for k in range(rounds, rounds + 60):
            db.append(t0 + k * SCRAPE_MS, zip(series, values[k - rounds], strict=True), scrape_target="collector")
        db.close()
        c = time.perf_counter()
        db2 = TSDB(home / "tsdb")
        reopen_ms = (time.perf_counter() - c) * 1000
        asyncio.run(db2.maintain())
        db2.close()
        sbs = side_by_side(series[:SIDE_BY_SIDE_SERIES], values, t0, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    per_day = 86_400_000 // SCRAPE_MS
    mem_per_sample = (traced - per_series) / samples
    print("## Embedded TSDB (`bench/tsdb_bench.py`)\n")
    print(f"{n:,} Istio-shaped series (24 labels each; `istio_requests_total` plus three histograms with "
          f"Envoy's 20 buckets, for 8 Bookinfo edges × 2 reporters × 2 response codes), scraped every "
          f"{SCRAPE_MS // 1000} s for {hours} h = {samples:,} samples, one `append` per scrape, one thread. "
          f"Pure Python (stdlib `array` + `zlib`).\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| ingestion, samples/s per core (CPU time, WAL on) | {samples / ingest_cpu:,.0f} |")
    print(f"| memory per series (index + interned labels + scrape cache + a 1-sample head), tracemalloc | {per_series / n:,.0f} B |")
    print(f"| memory per sample (sealed chunks + heads), tracemalloc | {mem_per_sample:.2f} B |")
    print(f"| sealed chunk size per sample | {st.chunk_bytes / max(1, st.chunk_samples):.2f} B |")
    print(f"| process RSS growth for {n:,} series × {rounds} samples | {(rss1 - rss0) / 1024:,.1f} MiB |")
    print(f"| disk per sample, WAL before compaction | {wal_bytes / samples:.2f} B |")
    print(f"| disk per sample, snapshot after compaction | {snap_bytes / samples:.2f} B |")
    print(f"| projected memory at 24 h retention | "
          f"{(per_series + mem_per_sample * n * per_day) / 2**20:,.0f} MiB |")
    print(f"| select the story's selector ({story_series} series, 1 h) | {sel_story_ms:.2f} ms "
          f"({sel_story_n} samples) |")
    print(f"| select all duration buckets (1 h) | {sel_all_ms:,.0f} ms ({sel_all_n:,} samples, "
          f"{sel_all_n / sel_all_ms * 1000:,.0f} samples/s) |")
    print(f"| compaction (snapshot of everything) | {compact_ms:,.0f} ms |")
    print(f"| restart (snapshot load + {60 * n:,}-sample WAL replay) | {reopen_ms:,.0f} ms |")
    print(f"\nCPU: {os.cpu_count()} cores; numbers from one run.")
    print(f"\n**Side by side with Debian's Prometheus** ({_prom_version()}), the same {sbs['series']:,.0f} series "
          f"(two of the edges) × {rounds} samples = {sbs['samples']:,.0f} samples: sluice's TSDB appended and "
          "compacted to its snapshot; Prometheus's blocks written by `promtool tsdb create-blocks-from openmetrics` "
          "(its backfill, from the same values as OpenMetrics text).\n")
    print("| measure | sluice | Prometheus | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| disk per sample, compacted (Prometheus: chunks {sbs['prom_chunk_bytes']:.2f} B + index) | "
          f"{sbs['ours_bytes']:.2f} B | {sbs['prom_bytes']:.2f} B | {sbs['ours_bytes'] / sbs['prom_bytes']:.2f}× |")
    print(f"\nOpening that data and answering over it: sluice {sbs['ours_ready_ms']:,.0f} ms (`TSDB(path)` and the "
          f"selection `istio_requests_total{{reporter=\"destination\"}}` over the last hour, in this process), "
          f"Prometheus {sbs['prom_ready_ms']:,.0f} ms (from starting the server to the same selection's answer as "
          "an instant query over HTTP); not a ratio, since only Prometheus's figure includes starting a process. "
          f"promtool's backfill took {sbs['prom_backfill_cpu_s']:.1f} s of CPU for the {sbs['samples']:,.0f} samples, "
          "most of it parsing the text; it is not Prometheus's scrape path, so it is not compared with the ingestion "
          "rate above.")


def _prom_version() -> str:
    try:
        cp = subprocess.run([str(TOOLS / "prometheus"), "--version"], capture_output=True, text=True, timeout=10)
        return " ".join((cp.stdout or cp.stderr).split()[:3])
    except OSError:
        return "version unknown"


if __name__ == "__main__":
    main()
