// The shapes of `/api/namespaces/{ns}/graph` (see docs/console-api.md and sluice/console/graph.py).
import type { Health } from "../api";

export type GraphType = "versionedApp" | "workload" | "app" | "service";
export type NodeType = "app" | "workload" | "service" | "box" | "unknown";

export interface ProtocolTraffic { protocol: string; rates: Record<string, number> }

export interface NodeData {
  id: string;
  nodeType: NodeType;
  namespace: string;
  app?: string;
  version?: string;
  workload?: string;
  service?: string;
  parent?: string;
  isBox?: string;
  isRoot?: boolean;
  isOutside?: boolean;
  isInjected?: boolean;
  isIdle?: boolean;
  healthStatus?: Health | string;
  health?: { status: string; inbound?: { status: string; errorRatio: number }; outbound?: { status: string; errorRatio: number } };
  traffic?: ProtocolTraffic[];
  destServices?: { namespace: string; name: string }[];
  hasVS?: { hostnames?: string[] } | boolean;
  hasTrafficShifting?: boolean;
  hasTCPTrafficShifting?: boolean;
  hasFaultInjection?: boolean;
  hasMirroring?: boolean;
  hasRequestRouting?: boolean;
  hasRequestTimeout?: boolean;
  hasCB?: boolean;
  hasRollout?: string[];
  hasWizard?: boolean;
  [key: string]: unknown;
}

export interface EdgeResponse { flags?: Record<string, number>; hosts?: Record<string, number> }

export interface EdgeData {
  id: string;
  source: string;
  target: string;
  healthStatus?: Health | string;
  responseTime?: number;
  traffic?: { protocol: string; rates: Record<string, number>; responses?: Record<string, EdgeResponse> };
  [key: string]: unknown;
}

export interface GraphResponse {
  timestamp: number;
  duration: number;
  graphType: GraphType;
  namespace: string;
  elements: { nodes: { data: NodeData }[]; edges: { data: EdgeData }[] };
}
