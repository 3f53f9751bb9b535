// The graph page's settings, kept in the URL query so every view is bookmarkable. Parameter names follow
// Kiali's where it has one (graphType, edges, duration, refresh, injectServiceNodes, idleEdges, find, hide).
import { EDGE_LABEL_MODES, type EdgeLabelMode } from "./format";
import type { GraphType } from "./types";

export type ResponseTimeChoice = "avg" | "rt50" | "rt95" | "rt99";

export interface GraphOptions {
  graphType: GraphType;
  edgeLabels: EdgeLabelMode[];
  responseTime: ResponseTimeChoice;
  duration: number; // seconds
  refresh: number; // milliseconds, 0 = paused
  animation: boolean;
  serviceNodes: boolean;
  vsBadges: boolean;
  idleEdges: boolean;
  find: string;
  hide: string;
}

export const GRAPH_TYPES: [GraphType, string][] = [
  ["versionedApp", "Versioned app graph"],
  ["workload", "Workload graph"],
  ["app", "App graph"],
  ["service", "Service graph"],
];

export const RESPONSE_TIMES: [ResponseTimeChoice, string][] = [
  ["avg", "Average"],
  ["rt50", "Median"],
  ["rt95", "95th Percentile"],
  ["rt99", "99th Percentile"],
];

export const DURATIONS: [number, string][] = [
  [60, "Last 1m"], [300, "Last 5m"], [600, "Last 10m"], [1800, "Last 30m"], [3600, "Last 1h"],
];

export const REFRESH_INTERVALS: [number, string][] = [
  [0, "Pause"], [10000, "Every 10s"], [15000, "Every 15s"], [30000, "Every 30s"], [60000, "Every 1m"],
];

export const DEFAULT_OPTIONS: GraphOptions = {
  graphType: "versionedApp",
  edgeLabels: ["trafficDistribution"],
  responseTime: "rt95",
  duration: 60,
  refresh: 15000,
  animation: false,
  serviceNodes: true,
  vsBadges: true,
  idleEdges: false,
  find: "",
  hide: "",
};

const RT_VALUES = RESPONSE_TIMES.map(([v]) => v);

function parseBool(v: string | null, dflt: boolean): boolean {
  if (v === null) return dflt;
  return v === "true" || v === "1" || v === "on";
}

/** "60", "60s", "5m", "1h" → seconds; NaN when unreadable. */
export function parseSeconds(v: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
}

export function parseGraphOptions(p: URLSearchParams): GraphOptions {
  const o: GraphOptions = { ...DEFAULT_OPTIONS, edgeLabels: [...DEFAULT_OPTIONS.edgeLabels] };
  const gt = p.get("graphType");
  if (gt && GRAPH_TYPES.some(([v]) => v === gt)) o.graphType = gt as GraphType;
  const edges = p.get("edges");
  if (edges !== null) {
    const parts = edges.split(",").map((s) => s.trim()).filter(Boolean);
    o.edgeLabels = EDGE_LABEL_MODES.filter((m) => parts.includes(m));
    const rt = parts.find((s) => (RT_VALUES as string[]).includes(s));
    if (rt) {
      o.responseTime = rt as ResponseTimeChoice;
      if (!o.edgeLabels.includes("responseTime")) o.edgeLabels = EDGE_LABEL_MODES.filter((m) => m === "responseTime" || o.edgeLabels.includes(m));
    }
  }
  const d = p.get("duration");
  if (d !== null) {
    const s = parseSeconds(d);
    if (DURATIONS.some(([v]) => v === s)) o.duration = s;
  }
  const r = p.get("refresh");
  if (r !== null) {
    const ms = Number(r);
    if (REFRESH_INTERVALS.some(([v]) => v === ms)) o.refresh = ms;
  }
  o.animation = parseBool(p.get("animation"), o.animation);
  o.serviceNodes = parseBool(p.get("injectServiceNodes"), o.serviceNodes);
  o.vsBadges = parseBool(p.get("badgeVS"), o.vsBadges);
  o.idleEdges = parseBool(p.get("idleEdges"), o.idleEdges);
  o.find = p.get("find") ?? "";
  o.hide = p.get("hide") ?? "";
  return o;
}

/** The URL query for `o` (other parameters of `base`, e.g. `namespace`, are kept). */
export function writeGraphOptions(o: GraphOptions, base?: URLSearchParams): URLSearchParams {
  const p = new URLSearchParams(base);
  p.set("graphType", o.graphType);
  const edges: string[] = EDGE_LABEL_MODES.filter((m) => o.edgeLabels.includes(m));
  if (edges.includes("responseTime")) edges.push(o.responseTime);
  p.set("edges", edges.join(","));
  p.set("duration", String(o.duration));
  p.set("refresh", String(o.refresh));
  p.set("animation", String(o.animation));
  p.set("injectServiceNodes", String(o.serviceNodes));
  p.set("badgeVS", String(o.vsBadges));
  p.set("idleEdges", String(o.idleEdges));
  if (o.find) p.set("find", o.find); else p.delete("find");
  if (o.hide) p.set("hide", o.hide); else p.delete("hide");
  return p;
}

/** The API call for a namespace graph with these options. */
export function graphApiPath(namespace: string, o: GraphOptions): string {
  const rt = o.responseTime === "avg" ? "avg" : o.responseTime.slice(2);
  const q = new URLSearchParams({
    graphType: o.graphType,
    duration: `${o.duration}s`,
    responseTime: rt,
    injectServiceNodes: String(o.serviceNodes),
    idleEdges: String(o.idleEdges),
  });
  return `/api/namespaces/${encodeURIComponent(namespace)}/graph?${q.toString()}`;
}

export function durationLabel(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
