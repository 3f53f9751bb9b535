"""The rollouts controller's loop: AnalysisRuns then Rollouts, every time one of the watched kinds changes and
whenever a pause, an analysis interval or a scale-down deadline falls due (at the latest every `resync` s).

It is a plain thread over the Kubernetes API and the Prometheus HTTP API, so the daemon runs it next to its
own API server (`start_in_thread`) and `sluice rollouts controller` runs it against any cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sluice.client.errors import ApiError, ClientError
from sluice.rollouts import analysis
from sluice.rollouts.canary import RolloutPass
from sluice.rollouts.istio import HASH_LABEL, MANAGED_BY
from sluice.rollouts.kube import KINDS, Conflict, Kube, prom_query_factory
from sluice.rollouts.metrics import ControllerMetrics, families
from sluice.rollouts.replicasets import by_owner
from sluice.rollouts.status import merge_diff

if TYPE_CHECKING:
    from sluice.metrics.exposition import FamilyLike

__all__ = ["Controller"]

log = logging.getLogger("sluice.rollouts")
Obj = dict[str, Any]
WATCHED = ("Rollout", "AnalysisRun", "ReplicaSet", "Deployment")  # Deployment: a workloadRef's template
MIN_PASS_GAP_S = 0.2  # our own writes wake us too: never loop faster than this
MEASURE_WORKERS = 4
RELEASE_EVERY_S = 300.0  # besides after a Rollout's deletion
TEMPLATES_EVERY_S = 10.0  # AnalysisTemplates are read for the metrics only: not at every pass


def release_orphans(kube: Kube, rollouts: list[Obj]) -> None:
    """Argo's Istio controller: a DestinationRule whose Rollout is gone gets its subsets' hash labels and the
    managed-by annotation removed, so the subsets select the user's pods again."""
    alive = {(ro["metadata"].get("namespace"), ro["metadata"]["name"]) for ro in rollouts}
    for dr in kube.list("DestinationRule"):
        meta = dr["metadata"]
        owner = (meta.get("annotations") or {}).get(MANAGED_BY)
        if not owner or (meta.get("namespace"), owner) in alive:
            continue
        for subset in (dr.get("spec") or {}).get("subsets") or []:
            if isinstance(subset, dict) and isinstance(subset.get("labels"), dict):
                subset["labels"].pop(HASH_LABEL, None)
        meta["annotations"].pop(MANAGED_BY, None)
        try:
            kube.update("DestinationRule", dr)
        except (Conflict, ApiError, ClientError) as e:
            log.debug("DestinationRule %s/%s not released: %s", meta.get("namespace"), meta["name"], e)


class Controller:
    def __init__(self, connect: Callable[[], Kube], prometheus_url: str, resync: float = 30.0) -> None:
        self.connect = connect
        self.query_for = prom_query_factory(prometheus_url)
        self.resync = resync
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.rollout_deleted = threading.Event()  # set by the watch: look for DestinationRules to release
        self._released_at = 0.0
        self.passes = 0
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=MEASURE_WORKERS, thread_name_prefix="rollouts-measure")
        self._watchers: list[Kube] = []  # closed by shutdown(), which ends their streams at once
        self.metrics = ControllerMetrics()
        # the objects last read, for the metrics: (Rollouts, AnalysisRuns, Analysis/ClusterAnalysisTemplates)
        self._seen: tuple[list[Obj], list[Obj], list[Obj]] = ([], [], [])
        self._templates_at = 0.0

    def metric_families(self) -> list[FamilyLike]:
        """Argo's controller metrics over the objects of the last pass (`sluice.rollouts.metrics`)."""
        return list(families(self.metrics, *self._seen))

    def _connected(self) -> Kube:
        kube = self.connect()
        kube.metrics = self.metrics
        return kube

    @classmethod
    def for_daemon(cls, kubeconfig: str | None, prometheus_url: str, context: str | None = None) -> Controller:
        """A controller that reaches the API server through `kubeconfig` (its server and token)."""
        return cls(lambda: Kube.from_kubeconfig(kubeconfig, context), prometheus_url)

    # ----------------------------------------------------------------------------- watches
    def _watch(self, kind: str) -> None:
        kube: Kube | None = None
        while not self.stop.is_set():
            try:
                if kube is None:
                    kube = self._connected()
                    self._watchers.append(kube)
                self.metrics.request(KINDS[kind].plural, "", "", "Watch", 200)
                for event in kube.api.watch(KINDS[kind], None, timeout_seconds=60):
                    if kind == "Rollout" and event.type == "DELETED":
                        self.rollout_deleted.set()
                    self.wake.set()
                    if self.stop.is_set():
                        return
            except (ApiError, ClientError, OSError) as e:
                log.debug("watch of %s ended: %s", kind, e)
                if kube is not None:
                    self._watchers.remove(kube)
                    kube.close()
                kube = None
                self.stop.wait(1.0)

    # ----------------------------------------------------------------------------- passes
    def run_once(self, kube: Kube) -> float:
        """One pass over every AnalysisRun and Rollout; the seconds until the next one is due."""
        self.passes += 1
        due = self.resync
        runs = kube.list("AnalysisRun")
        # measurements of different runs go in parallel: one slow Prometheus does not hold up the others
        for nxt in self._pool.map(lambda run: self._reconciled("AnalysisRun", run, lambda: self.sync_run(kube, run)),
                                  runs):
            if nxt is not None:
                due = min(due, nxt)
        rollouts = kube.list("Rollout")
        templates = self._seen[2]
        if time.monotonic() - self._templates_at > TEMPLATES_EVERY_S:
            self._templates_at = time.monotonic()
            templates = kube.list("AnalysisTemplate") + kube.list("ClusterAnalysisTemplate")
        self._seen = (rollouts, runs, templates)
        if self.rollout_deleted.is_set() or time.monotonic() - self._released_at > RELEASE_EVERY_S:
            self.rollout_deleted.clear()
            self._released_at = time.monotonic()
            release_orphans(kube, rollouts)

        # One list of ReplicaSets for the whole pass, not one per Rollout: with N Rollouts in a namespace that
        # was N lists of all their ReplicaSets, N² objects read and decoded per pass.
        owned = by_owner(kube.list("ReplicaSet")) if rollouts else {}

        def rollout_pass(ro: Obj) -> Callable[[], float | None]:
            rss = owned.get(str(ro["metadata"].get("uid")), [])
            return lambda: RolloutPass(kube, ro, self.query_for, replicasets=rss).run()

        for ro in rollouts:
            nxt = self._reconciled("Rollout", ro, rollout_pass(ro))
            if nxt == 0.0:
                # It wants another pass at once (an analysis aborted it: traffic goes back to stable next; a write
                # conflicted). Argo requeues such a Rollout at once; one more pass here, on the Rollout as it
                # is now, instead of after the gap that keeps our own writes from looping us.
                nxt = self._again(kube, ro)
            if nxt is not None:
                due = min(due, nxt)
        return due

    def _again(self, kube: Kube, ro: Obj) -> float | None:
        meta = ro["metadata"]

        def once() -> float | None:
            fresh = kube.get("Rollout", meta.get("namespace"), meta["name"])
            return None if fresh is None else RolloutPass(kube, fresh, self.query_for).run()

        return self._reconciled("Rollout", ro, once)

    def _reconciled(self, kind: str, obj: Obj, reconcile: Callable[[], float | None]) -> float | None:
        """One object's pass, timed and counted for the metrics; after a failure, when to look again: at once
        after a Conflict, in 5 s after an API error, in 30 s after anything else (which must not stop the
        other objects)."""
        ns, name = str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"])
        started, failed = time.monotonic(), True
        nxt: float | None
        try:
            nxt = reconcile()
            failed = False
        except Conflict:
            nxt, failed = 0.0, False
        except (ApiError, ClientError) as e:
            log.warning("%s %s/%s: %s", kind, ns, name, e)
            nxt = 5.0
        except Exception:
            log.exception("%s %s/%s", kind, ns, name)
            nxt = 30.0
        self.metrics.reconciled(kind, ns, name, time.monotonic() - started, error=failed)
        return nxt

    def sync_run(self, kube: Kube, run: Obj) -> float | None:
        if (run.get("status") or {}).get("phase") in analysis.COMPLETED or run["metadata"].get("deletionTimestamp"):
            return None
        result = analysis.step(run, time.time(), self.query_for)
        patch = merge_diff(run.get("status") or {}, result.status)
        if patch:
            kube.patch("AnalysisRun", run["metadata"].get("namespace"), run["metadata"]["name"],
                       {"metadata": {"resourceVersion": run["metadata"].get("resourceVersion")}, "status": patch})
            for type_, reason, message in result.events:
                kube.event(run, type_, reason, message)
            return 0.0  # the owning Rollout reads the new phase on the next pass
        return result.next_s

    def run(self) -> None:
        """Loop until `stop` is set; survives an unreachable API server (retries every second)."""
        for kind in WATCHED:
            t = threading.Thread(target=self._watch, args=(kind,), name=f"rollouts-watch-{kind}", daemon=True)
            t.start()
            self._threads.append(t)
        kube: Kube | None = None
        while not self.stop.is_set():
            self.wake.clear()
            started = time.monotonic()
            try:
                kube = kube or self._connected()
                due = self.run_once(kube)
            except (ApiError, ClientError, OSError) as e:
                log.warning("rollouts controller pass failed: %s", e)
                kube = None
                due = 1.0
            except Exception:  # a bug in one pass must not end the controller
                log.exception("rollouts controller pass failed")
                due = 5.0
            self.stop.wait(max(0.0, MIN_PASS_GAP_S - (time.monotonic() - started)))
            self.wake.wait(max(0.0, due))
        self._pool.shutdown(wait=False, cancel_futures=True)
        if kube is not None:
            kube.close()

    def start_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="rollouts-controller", daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def shutdown(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.wake.set()
        for kube in list(self._watchers):
            kube.close()
        for t in self._threads:
            if t.name == "rollouts-controller":
                t.join(timeout)
