import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { api, ApiError, enc } from "../api";
import Dropdown from "../components/Dropdown";
import NamespaceSelect from "../components/NamespaceSelect";
import { useToast } from "../components/Toast";
import { GraphController, type GraphSnapshot, type Selection } from "../graph/controller";
import { FIND_HELP } from "../graph/find";
import Legend from "../graph/Legend";
import {
  DURATIONS, GRAPH_TYPES, REFRESH_INTERVALS, RESPONSE_TIMES, durationLabel, graphApiPath, parseGraphOptions,
  writeGraphOptions, type GraphOptions,
} from "../graph/options";
import SidePanel from "../graph/SidePanel";
import type { EdgeLabelMode } from "../graph/format";
import type { GraphResponse } from "../graph/types";
import { useNamespace } from "../namespace";
import "../graph/graph.css";

declare global {
  interface Window {
    /** Test hook (docs/console-api.md): the drawn elements with their exact labels. */
    sluiceGraph?: () => GraphSnapshot;
  }
}

// The traffic graph page (Kiali's Graph): Cytoscape + dagre, refreshed in place, settings in the URL.

const SIDE_PANEL_WIDTH = 360; // .graph-side-panel in graph.css

function EmptyGraph({ ns, duration, onLonger, onRefresh }: {
  ns: string; duration: number; onLonger?: () => void; onRefresh: () => void;
}) {
  const [diag, setDiag] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    api.get<{ workloads: { name: string; istioSidecar?: boolean }[] }>(`/api/namespaces/${enc(ns)}/workloads`)
      .then((d) => {
        if (cancelled) return;
        const all = d.workloads ?? [];
        const missing = all.filter((w) => !w.istioSidecar);
        if (!all.length) setDiag(`Namespace ${ns} has no workloads.`);
        else if (missing.length === all.length) setDiag(`None of the ${all.length} workloads in ${ns} has an Istio sidecar, so none of them reports telemetry.`);
        else if (missing.length) setDiag(`${missing.length} of ${all.length} workloads in ${ns} have no Istio sidecar: ${missing.map((w) => w.name).join(", ")}.`);
        else setDiag(`All ${all.length} workloads in ${ns} have an Istio sidecar: they have not received requests in this time window.`);
      })
      .catch(() => setDiag(null));
    return () => {
      cancelled = true;
    };
  }, [ns, duration]);
  return (
    <div className="graph-empty" data-testid="graph-empty">
      <h2>Empty graph</h2>
      <p>There is no traffic to show for namespace <strong>{ns}</strong> in the last {durationLabel(duration)}.
        Either the mesh has not seen requests between its workloads yet, or their telemetry is not collected.</p>
      {diag && <p className="graph-empty-diag">{diag}</p>}
      <ul>
        <li>No requests in the time window: send some traffic, or choose a longer Duration.</li>
        <li>Workloads without an Istio sidecar report no telemetry (enable sidecar injection and restart them).</li>
        <li>Metrics not scraped yet: rates need at least two samples inside the window.</li>
        <li>Very low rates (below 0.01 requests per minute) are left out.</li>
      </ul>
      <div className="graph-empty-actions">
        {onLonger && <button type="button" onClick={onLonger}>Show the last 10m</button>}
        <button type="button" onClick={onRefresh}>Refresh</button>
      </div>
    </div>
  );
}

function FindInput({ label, value, error, onApply, testId }: {
  label: string; value: string; error?: string; onApply: (v: string) => void; testId: string;
}) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  return (
    <label className={error ? "find-input invalid" : "find-input"} title={error ?? FIND_HELP.join("\n")}>
      {label}
      <input type="search" data-testid={testId} value={text} placeholder={label === "Find" ? "e.g. version = v3" : "e.g. node = unknown"}
             onChange={(e) => setText(e.target.value)}
             onKeyDown={(e) => { if (e.key === "Enter") onApply(text.trim()); }}
             onBlur={() => { if (text.trim() !== value) onApply(text.trim()); }} />
      {error && <span className="find-error" role="status">{error}</span>}
    </label>
  );
}

export default function GraphPage() {
  const [ns] = useNamespace();
  const [params, setParams] = useSearchParams();
  const opts = useMemo(() => parseGraphOptions(params), [params]);
  const toast = useToast();
  const containerRef = useRef<HTMLDivElement>(null);
  const overlayRef = useRef<HTMLCanvasElement>(null);
  const ctrl = useRef<GraphController | null>(null);
  const failure = useRef<string | null>(null);
  const [graph, setGraph] = useState<GraphResponse | null>(null);
  const [loading, setLoading] = useState(true);
  const [updatedAt, setUpdatedAt] = useState<Date | null>(null);
  const [selected, setSelected] = useState<Selection | null>(null);
  const [legend, setLegend] = useState(false);
  const [reload, setReload] = useState(0);
  const [findErrors, setFindErrors] = useState<{ find?: string; hide?: string }>({});
  const [stale, setStale] = useState<string | null>(null);

  // Every setting is in the URL: write the defaults there too, so the address is always the full view.
  useEffect(() => {
    const want = writeGraphOptions(opts, params);
    if (!want.get("namespace")) want.set("namespace", ns);
    if (want.toString() !== params.toString()) setParams(want, { replace: true });
  }, [params, opts, ns, setParams]);

  const setOpts = useCallback((patch: Partial<GraphOptions>) => {
    setParams((p) => writeGraphOptions({ ...parseGraphOptions(p), ...patch }, p), { replace: true });
  }, [setParams]);

  // One Cytoscape instance per visit of the page.
  useEffect(() => {
    const c = new GraphController(containerRef.current!, overlayRef.current!,
      { edgeLabels: opts.edgeLabels, vsBadges: opts.vsBadges }, setSelected);
    ctrl.current = c;
    window.sluiceGraph = () => c.snapshot();
    const ro = new ResizeObserver(() => c.cy.resize());
    ro.observe(containerRef.current!);
    return () => {
      ro.disconnect();
      c.destroy();
      ctrl.current = null;
      delete window.sluiceGraph;
    };
    // the controller lives as long as the page; option changes are applied by the effects below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // Another namespace or graph type: start from an empty graph.
  const view = `${ns}|${opts.graphType}`;
  useEffect(() => {
    ctrl.current?.clear();
    setGraph(null);
    setStale(null);
    setLoading(true);
    setSelected(null);
    failure.current = null;
  }, [view]);

  const path = graphApiPath(ns, opts);
  useEffect(() => {
    let cancelled = false;
    let inflight = false;
    const load = async () => {
      if (inflight) return;
      inflight = true;
      try {
        const g = await api.get<GraphResponse>(path);
        if (cancelled || !ctrl.current) return;
        ctrl.current.update(g);
        setGraph(g);
        setUpdatedAt(new Date());
        setStale(null);
        failure.current = null;
      } catch (e) {
        if (cancelled) return;
        const msg = e instanceof ApiError ? e.message : String(e);
        setStale(msg);
        // one toast per run of identical failures (the page keeps refreshing and keeps the last graph)
        if (failure.current !== msg) {
          failure.current = msg;
          toast("danger", "Could not refresh the graph", msg);
        }
      } finally {
        inflight = false;
        if (!cancelled) setLoading(false);
      }
    };
    void load();
    const timer = opts.refresh > 0 ? window.setInterval(load, opts.refresh) : 0;
    return () => {
      cancelled = true;
      if (timer) window.clearInterval(timer);
    };
  }, [path, opts.refresh, reload, toast]);

  const renderKey = `${opts.edgeLabels.join(",")}|${opts.vsBadges}`;
  useEffect(() => {
    ctrl.current?.setRenderOptions({ edgeLabels: opts.edgeLabels, vsBadges: opts.vsBadges });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [renderKey]);

  useEffect(() => {
    ctrl.current?.setAnimation(opts.animation);
  }, [opts.animation]);

  useEffect(() => {
    if (ctrl.current) setFindErrors(ctrl.current.setFindHide(opts.find, opts.hide));
  }, [opts.find, opts.hide]);

  useEffect(() => {
    ctrl.current?.select(selected);
    if (selected) ctrl.current?.reveal(selected.id, SIDE_PANEL_WIDTH);
  }, [selected]);

  const refreshNow = () => {
    failure.current = null;
    setReload((r) => r + 1);
  };

  const toggleEdgeLabel = (m: EdgeLabelMode, on: boolean) => {
    const set = new Set(opts.edgeLabels);
    if (on) set.add(m); else set.delete(m);
    setOpts({ edgeLabels: [...set] });
  };

  const empty = graph !== null && graph.elements.nodes.length === 0;
  const edgeLabelCount = opts.edgeLabels.length;

  return (
    <div className="graph-page">
      <div className="graph-header">
        <h1>Traffic Graph</h1>
        <div className="graph-header-controls">
          <select data-testid="duration-select" aria-label="Duration" title="Time window of the rates" value={opts.duration}
                  onChange={(e) => setOpts({ duration: Number(e.target.value) })}>
            {DURATIONS.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
          </select>
          <select data-testid="refresh-select" aria-label="Refresh interval" title="Refresh interval" value={opts.refresh}
                  onChange={(e) => setOpts({ refresh: Number(e.target.value) })}>
            {REFRESH_INTERVALS.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
          </select>
          <button type="button" className="icon-button" data-testid="refresh-button" title="Refresh now" aria-label="Refresh now" onClick={refreshNow}>
            <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true"><path d="M13.5 8a5.5 5.5 0 1 1-1.6-3.9M12 1.5v3h-3" fill="none" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" strokeLinejoin="round" /></svg>
          </button>
          {updatedAt && <span className="muted small" data-testid="graph-updated-at">Last updated {updatedAt.toLocaleTimeString()}</span>}
          {stale && <span className="graph-stale small" title={stale} data-testid="graph-stale">refresh failed: showing the last graph</span>}
        </div>
      </div>
      <div className="toolbar graph-toolbar">
        <NamespaceSelect />
        <label>
          Graph
          <select data-testid="graph-type-select" value={opts.graphType}
                  onChange={(e) => setOpts({ graphType: e.target.value as GraphOptions["graphType"] })}>
            {GRAPH_TYPES.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
          </select>
        </label>
        <Dropdown testId="edge-labels-toggle" label={<>Edge Labels{edgeLabelCount ? <span className="count-pill">{edgeLabelCount}</span> : null}</>}>
          <label className="menu-item">
            <input type="checkbox" data-testid="edge-label-trafficRate" checked={opts.edgeLabels.includes("trafficRate")}
                   onChange={(e) => toggleEdgeLabel("trafficRate", e.target.checked)} />
            Traffic rate <span className="muted small">(rps, error %)</span>
          </label>
          <label className="menu-item">
            <input type="checkbox" data-testid="edge-label-trafficDistribution" checked={opts.edgeLabels.includes("trafficDistribution")}
                   onChange={(e) => toggleEdgeLabel("trafficDistribution", e.target.checked)} />
            Traffic distribution <span className="muted small">(% of requests)</span>
          </label>
          <label className="menu-item">
            <input type="checkbox" data-testid="edge-label-responseTime" checked={opts.edgeLabels.includes("responseTime")}
                   onChange={(e) => toggleEdgeLabel("responseTime", e.target.checked)} />
            Response time
          </label>
          <div className="menu-sub">
            {RESPONSE_TIMES.map(([v, l]) => (
              <label key={v} className="menu-item">
                <input type="radio" name="rt" data-testid={`response-time-${v}`} checked={opts.responseTime === v}
                       onChange={() => setOpts({ responseTime: v, edgeLabels: [...new Set([...opts.edgeLabels, "responseTime" as const])] })} />
                {l}
              </label>
            ))}
          </div>
        </Dropdown>
        <Dropdown testId="display-toggle" label="Display">
          <label className="menu-item">
            <input type="checkbox" data-testid="display-animation" checked={opts.animation}
                   onChange={(e) => setOpts({ animation: e.target.checked })} />
            Traffic animation
          </label>
          <label className="menu-item">
            <input type="checkbox" data-testid="display-service-nodes" checked={opts.serviceNodes}
                   disabled={opts.graphType === "service"}
                   onChange={(e) => setOpts({ serviceNodes: e.target.checked })} />
            Service nodes
          </label>
          <label className="menu-item">
            <input type="checkbox" data-testid="display-vs-badges" checked={opts.vsBadges}
                   onChange={(e) => setOpts({ vsBadges: e.target.checked })} />
            Virtual service badges
          </label>
          <label className="menu-item">
            <input type="checkbox" data-testid="display-idle-edges" checked={opts.idleEdges}
                   onChange={(e) => setOpts({ idleEdges: e.target.checked })} />
            Idle edges
          </label>
        </Dropdown>
        <FindInput label="Find" testId="graph-find" value={opts.find} error={findErrors.find} onApply={(v) => setOpts({ find: v })} />
        <FindInput label="Hide" testId="graph-hide" value={opts.hide} error={findErrors.hide} onApply={(v) => setOpts({ hide: v })} />
      </div>
      <div className="graph-body">
        <div className="graph-canvas-wrap">
          <div className="graph-canvas" data-testid="graph" ref={containerRef} />
          <canvas className="graph-animation" ref={overlayRef} aria-hidden="true" style={{ display: "none" }} />
          {loading && !graph && <div className="graph-loading">Loading the graph of {ns}…</div>}
          {empty && (
            <EmptyGraph ns={ns} duration={opts.duration} onRefresh={refreshNow}
                        onLonger={opts.duration < 600 ? () => setOpts({ duration: 600 }) : undefined} />
          )}
          <div className="graph-controls" role="toolbar" aria-label="Graph view">
            <button type="button" title="Zoom in" aria-label="Zoom in" onClick={() => ctrl.current?.zoomBy(1.25)}>+</button>
            <button type="button" title="Zoom out" aria-label="Zoom out" onClick={() => ctrl.current?.zoomBy(0.8)}>−</button>
            <button type="button" title="Fit to screen" aria-label="Fit to screen" onClick={() => ctrl.current?.fit()}>⤢</button>
            <button type="button" title="Lay out again" aria-label="Lay out again" onClick={() => ctrl.current?.layout()}>⟲</button>
            <button type="button" className={legend ? "active" : undefined} data-testid="legend-toggle" onClick={() => setLegend((l) => !l)}>Legend</button>
          </div>
          {legend && <Legend onClose={() => setLegend(false)} />}
          {selected && (
            <SidePanel selection={selected} graph={graph} showVS={opts.vsBadges} responseTime={opts.responseTime}
                       onSelect={setSelected} onClose={() => setSelected(null)} />
          )}
        </div>
      </div>
    </div>
  );
}
