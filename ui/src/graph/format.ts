// Pure text formatting for the traffic graph: node and edge labels exactly as Cytoscape draws them,
// plus the number formats the side panel reuses. Kiali's rules (GraphStyles / GraphSettings):
// - traffic rate: requests per second rounded to 2 significant digits ("4.9rps"), the error
//   percentage on the line below when non-zero ("1.2rps\n5.0%"); TCP in bps / kps;
// - traffic distribution: the edge's share of its source's outbound requests, shown only when < 100%
//   ("90.0%");
// - response time: ms below one second ("12ms", "4.8ms" under 10 ms), else seconds ("1.25s");
// - several modes are stacked one per line in that order (rate, response time, distribution).
import type { EdgeData, NodeData } from "./types";

export type EdgeLabelMode = "trafficRate" | "trafficDistribution" | "responseTime";
export const EDGE_LABEL_MODES: EdgeLabelMode[] = ["trafficRate", "trafficDistribution", "responseTime"];

/** `v` rounded to 2 significant digits, without exponent notation ("4.9", "5.0", "0.35", "120"). */
export function sig2(v: number): string {
  if (!Number.isFinite(v) || v === 0) return "0";
  const s = v.toPrecision(2);
  return s.includes("e") ? String(Number(s)) : s;
}

function trimZeros(fixed: string): string {
  return fixed.includes(".") ? fixed.replace(/0+$/, "").replace(/\.$/, "") : fixed;
}

export function formatRate(rps: number, unit = "rps"): string {
  return `${sig2(rps)}${unit}`;
}

/** Bytes per second as Kiali writes TCP rates: "512bps", "1.5kps". */
export function formatByteRate(bps: number): string {
  return bps < 1024 ? `${sig2(bps)}bps` : `${sig2(bps / 1024)}kps`;
}

/** A percentage with one decimal: "90.0%", "5.0%". */
export function formatPercent(p: number): string {
  return `${p.toFixed(1)}%`;
}

/** Milliseconds: "0.9ms", "12ms", "1.25s", "2s". */
export function formatResponseTime(ms: number): string {
  if (Math.round(ms) < 1000) return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
  return `${trimZeros((ms / 1000).toFixed(2))}s`;
}

export interface EdgeNumbers {
  protocol: string;
  rate: number;
  percentReq?: number;
  percentErr: number;
  rate5xx: number;
  rate4xx: number;
  responseTime?: number;
}

export function edgeNumbers(e: EdgeData): EdgeNumbers {
  const protocol = e.traffic?.protocol ?? "http";
  const rates = e.traffic?.rates ?? {};
  return {
    protocol,
    rate: rates[protocol] ?? 0,
    percentReq: rates[`${protocol}PercentReq`],
    percentErr: rates[`${protocol}PercentErr`] ?? 0,
    rate5xx: rates[`${protocol}5xx`] ?? 0,
    rate4xx: rates[`${protocol}4xx`] ?? 0,
    responseTime: typeof e.responseTime === "number" ? e.responseTime : undefined,
  };
}

/** The text drawn on an edge for the chosen label modes ("" when none applies). */
export function edgeLabel(e: EdgeData, modes: readonly EdgeLabelMode[]): string {
  const n = edgeNumbers(e);
  const parts: string[] = [];
  if (modes.includes("trafficRate") && n.rate > 0) {
    if (n.protocol === "tcp") parts.push(formatByteRate(n.rate));
    else parts.push(formatRate(n.rate) + (n.percentErr > 0 ? `\n${formatPercent(n.percentErr)}` : ""));
  }
  if (modes.includes("responseTime") && n.responseTime !== undefined && n.responseTime > 0) {
    parts.push(formatResponseTime(n.responseTime));
  }
  if (modes.includes("trafficDistribution") && n.protocol !== "tcp" && n.percentReq !== undefined
      && n.percentReq > 0 && n.percentReq < 100) {
    parts.push(formatPercent(n.percentReq));
  }
  return parts.join("\n");
}

/**
 * The text drawn under a node: app and version on their own lines for a versioned app, the workload
 * or service name otherwise, the app name on a box; nodes outside the graphed namespace get their
 * namespace on an extra line.
 */
export function nodeLabel(n: NodeData, graphNamespace?: string): string {
  let label: string;
  switch (n.nodeType) {
    case "box":
      label = n.app ?? n.id;
      break;
    case "app":
      label = (n.app ?? "unknown") + (n.version ? `\n${n.version}` : "");
      break;
    case "workload":
      label = n.workload ?? n.app ?? "unknown";
      break;
    case "service":
      label = n.service ?? "unknown";
      break;
    default:
      label = n.workload || n.service || n.app || "unknown";
  }
  if (n.nodeType !== "box" && graphNamespace && n.namespace && n.namespace !== graphNamespace && n.namespace !== "unknown") {
    label += `\n(${n.namespace})`;
  }
  return label;
}

export type BadgeKind = "root" | "vs" | "trafficShifting" | "faultInjection" | "mirroring" | "cb" | "timeout" | "rollout";

export const BADGE_TITLES: Record<BadgeKind, string> = {
  root: "Traffic source",
  vs: "Virtual service / request routing",
  trafficShifting: "Traffic shifting",
  faultInjection: "Fault injection",
  mirroring: "Mirroring",
  cb: "Circuit breaker",
  timeout: "Request timeout",
  rollout: "Under a rollout (Argo Rollouts)",
};

/** The badges a node shows, in drawing order; `showVS` off keeps only the traffic-source mark. */
export function nodeBadges(n: NodeData, showVS: boolean): BadgeKind[] {
  const out: BadgeKind[] = [];
  if (n.isRoot && n.nodeType !== "box") out.push("root");
  if (!showVS || n.nodeType === "box") return out;
  if (n.hasVS || n.hasRequestRouting) out.push("vs");
  if (n.hasTrafficShifting || n.hasTCPTrafficShifting) out.push("trafficShifting");
  if (n.hasFaultInjection) out.push("faultInjection");
  if (n.hasMirroring) out.push("mirroring");
  if (n.hasCB) out.push("cb");
  if (n.hasRequestTimeout) out.push("timeout");
  if (n.hasRollout?.length) out.push("rollout");
  return out;
}

export interface NodeNumbers { httpIn: number; httpOut: number; errIn: number; errOut: number; grpcIn: number; grpcOut: number; tcpIn: number; tcpOut: number }

/** Inbound / outbound request rates of a node and its error rates (4xx+5xx), in rps. */
export function nodeNumbers(n: NodeData): NodeNumbers {
  const out: NodeNumbers = { httpIn: 0, httpOut: 0, errIn: 0, errOut: 0, grpcIn: 0, grpcOut: 0, tcpIn: 0, tcpOut: 0 };
  for (const t of n.traffic ?? []) {
    const r = t.rates ?? {};
    if (t.protocol === "http") {
      out.httpIn += r.httpIn ?? 0;
      out.httpOut += r.httpOut ?? 0;
      out.errIn += (r.httpIn5xx ?? 0) + (r.httpIn4xx ?? 0);
      out.errOut += (r.httpOut5xx ?? 0) + (r.httpOut4xx ?? 0);
    } else if (t.protocol === "grpc") {
      out.grpcIn += r.grpcIn ?? 0;
      out.grpcOut += r.grpcOut ?? 0;
      out.errIn += r.grpcInErr ?? 0;
      out.errOut += r.grpcOutErr ?? 0;
    } else if (t.protocol === "tcp") {
      out.tcpIn += r.tcpIn ?? 0;
      out.tcpOut += r.tcpOut ?? 0;
    }
  }
  return out;
}

/** Delay between two animation dots on an edge: inversely proportional to the rate, 40 ms .. 5 s. */
export function dotDelayMs(rps: number): number {
  if (!(rps > 0)) return 5000;
  return Math.min(5000, Math.max(40, 1000 / rps));
}
