// Kiali-style Find / Hide expressions for the graph (a subset of Kiali's GraphHelpFind syntax):
//   `app = reviews`, `version != v1`, `httpin > 1`, `rt > 1000`, `%httptraffic < 100`, `! healthy`,
//   `trafficshifting`, `name *= rev and node = app`, `node = service or node = unknown`.
// `and` binds tighter than `or`; `!`/`not` negates one predicate. An expression tests either nodes or
// edges, never both. Compiling is pure; matching works on the plain data objects of the elements.
import { edgeNumbers, nodeNumbers } from "./format";
import type { EdgeData, NodeData } from "./types";

export type FindTarget = "node" | "edge";
type Value = string | number | boolean | undefined;

interface AttrDef { target: FindTarget; get: (d: Record<string, unknown>) => Value; unary?: boolean }

const nodeNum = (d: Record<string, unknown>) => nodeNumbers(d as NodeData);
const edgeNum = (d: Record<string, unknown>) => edgeNumbers(d as EdgeData);
const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const health = (d: Record<string, unknown>) => String(d.healthStatus ?? "NA");

const ATTRS: Record<string, AttrDef> = {
  // node attributes
  app: { target: "node", get: (d) => str(d.app) },
  version: { target: "node", get: (d) => str(d.version) },
  workload: { target: "node", get: (d) => str(d.workload) },
  service: { target: "node", get: (d) => str(d.service) },
  namespace: { target: "node", get: (d) => str(d.namespace) },
  ns: { target: "node", get: (d) => str(d.namespace) },
  name: { target: "node", get: (d) => str(d.workload) ?? str(d.service) ?? str(d.app) ?? (d.nodeType === "unknown" ? "unknown" : undefined) },
  node: { target: "node", get: (d) => str(d.nodeType) },
  httpin: { target: "node", get: (d) => nodeNum(d).httpIn },
  httpout: { target: "node", get: (d) => nodeNum(d).httpOut },
  grpcin: { target: "node", get: (d) => nodeNum(d).grpcIn },
  grpcout: { target: "node", get: (d) => nodeNum(d).grpcOut },
  tcpin: { target: "node", get: (d) => nodeNum(d).tcpIn },
  tcpout: { target: "node", get: (d) => nodeNum(d).tcpOut },
  health: { target: "node", get: health },
  healthy: { target: "node", unary: true, get: (d) => d.nodeType !== "box" && health(d) !== "Degraded" && health(d) !== "Failure" },
  degraded: { target: "node", unary: true, get: (d) => health(d) === "Degraded" },
  failure: { target: "node", unary: true, get: (d) => health(d) === "Failure" },
  idle: { target: "node", unary: true, get: (d) => { const n = nodeNum(d); return n.httpIn + n.httpOut + n.grpcIn + n.grpcOut + n.tcpIn + n.tcpOut === 0; } },
  outside: { target: "node", unary: true, get: (d) => !!d.isOutside },
  trafficsource: { target: "node", unary: true, get: (d) => !!d.isRoot },
  root: { target: "node", unary: true, get: (d) => !!d.isRoot },
  virtualservice: { target: "node", unary: true, get: (d) => !!d.hasVS },
  vs: { target: "node", unary: true, get: (d) => !!d.hasVS },
  requestrouting: { target: "node", unary: true, get: (d) => !!d.hasRequestRouting },
  trafficshifting: { target: "node", unary: true, get: (d) => !!d.hasTrafficShifting },
  tcptrafficshifting: { target: "node", unary: true, get: (d) => !!d.hasTCPTrafficShifting },
  faultinjection: { target: "node", unary: true, get: (d) => !!d.hasFaultInjection },
  mirroring: { target: "node", unary: true, get: (d) => !!d.hasMirroring },
  circuitbreaker: { target: "node", unary: true, get: (d) => !!d.hasCB },
  cb: { target: "node", unary: true, get: (d) => !!d.hasCB },
  requesttimeout: { target: "node", unary: true, get: (d) => !!d.hasRequestTimeout },
  // edge attributes
  protocol: { target: "edge", get: (d) => edgeNum(d).protocol },
  http: { target: "edge", get: (d) => (edgeNum(d).protocol === "http" ? edgeNum(d).rate : 0) },
  grpc: { target: "edge", get: (d) => (edgeNum(d).protocol === "grpc" ? edgeNum(d).rate : 0) },
  tcp: { target: "edge", get: (d) => (edgeNum(d).protocol === "tcp" ? edgeNum(d).rate : 0) },
  "%httptraffic": { target: "edge", get: (d) => (edgeNum(d).protocol === "http" ? edgeNum(d).percentReq ?? 0 : 0) },
  "%grpctraffic": { target: "edge", get: (d) => (edgeNum(d).protocol === "grpc" ? edgeNum(d).percentReq ?? 0 : 0) },
  "%httperr": { target: "edge", get: (d) => (edgeNum(d).protocol === "http" ? edgeNum(d).percentErr : 0) },
  "%grpcerr": { target: "edge", get: (d) => (edgeNum(d).protocol === "grpc" ? edgeNum(d).percentErr : 0) },
  responsetime: { target: "edge", get: (d) => edgeNum(d).responseTime ?? 0 },
  rt: { target: "edge", get: (d) => edgeNum(d).responseTime ?? 0 },
  traffic: { target: "edge", unary: true, get: (d) => edgeNum(d).rate > 0 },
};

const OPS: Record<string, string> = {
  "=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=",
  "^=": "startswith", startswith: "startswith", "!^=": "!startswith", "!startswith": "!startswith",
  "$=": "endswith", endswith: "endswith", "!$=": "!endswith", "!endswith": "!endswith",
  "*=": "contains", contains: "contains", "!*=": "!contains", "!contains": "!contains",
};

const PREDICATE = /^(?:(!|not\s)\s*)?(%?[a-z][a-z0-9_.:/-]*)\s*(?:(!=|>=|<=|!\^=|!\$=|!\*=|\^=|\$=|\*=|=|>|<|!startswith\b|!endswith\b|!contains\b|startswith\b|endswith\b|contains\b)\s*(.+?))?\s*$/i;

type Test = (d: Record<string, unknown>) => boolean;

export interface Compiled { target: FindTarget; test: Test }

function compare(v: Value, op: string, raw: string): boolean {
  if (typeof v === "number") {
    const n = Number(raw);
    if (Number.isNaN(n)) return false;
    switch (op) {
      case "=": return v === n;
      case "!=": return v !== n;
      case ">": return v > n;
      case ">=": return v >= n;
      case "<": return v < n;
      case "<=": return v <= n;
      default: return false;
    }
  }
  const s = v === undefined ? "" : String(v).toLowerCase();
  const r = raw.toLowerCase();
  switch (op) {
    case "=": return s === r;
    case "!=": return s !== r;
    case "startswith": return s.startsWith(r);
    case "!startswith": return !s.startsWith(r);
    case "endswith": return s.endsWith(r);
    case "!endswith": return !s.endsWith(r);
    case "contains": return s.includes(r);
    case "!contains": return !s.includes(r);
    default: return false; // ordering on a text attribute
  }
}

function compilePredicate(text: string): { target: FindTarget; test: Test } {
  const m = PREDICATE.exec(text.trim());
  if (!m) throw new Error(`cannot read "${text.trim()}" (write attribute, operator, value: app = reviews)`);
  const negate = !!m[1];
  const name = m[2].toLowerCase();
  const def = ATTRS[name];
  if (!def) throw new Error(`unknown attribute "${m[2]}"`);
  let test: Test;
  if (m[3] === undefined) {
    if (!def.unary) throw new Error(`"${m[2]}" needs an operator and a value (e.g. ${m[2]} = ...)`);
    test = (d) => def.get(d) === true;
  } else {
    if (def.unary) throw new Error(`"${m[2]}" takes no operator or value`);
    const op = OPS[m[3].toLowerCase()];
    let value = m[4].trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    if (!value) throw new Error(`missing value after "${m[3]}"`);
    test = (d) => compare(def.get(d), op, value);
  }
  return { target: def.target, test: negate ? (d) => !test(d) : test };
}

/** Compile an expression; throws an Error with a readable message when it is not valid. */
export function compileFind(expr: string): Compiled | null {
  const text = expr.trim();
  if (!text) return null;
  let target: FindTarget | undefined;
  const ors = text.split(/\s+(?:or|\|\|)\s+/i).map((alt) =>
    alt.split(/\s+(?:and|&&)\s+/i).map((p) => {
      const c = compilePredicate(p);
      if (target && target !== c.target) throw new Error("an expression tests nodes or edges, not both");
      target = c.target;
      return c.test;
    }));
  return { target: target ?? "node", test: (d) => ors.some((ands) => ands.every((t) => t(d))) };
}

export const FIND_HELP = [
  "Nodes: app, version, workload, service, name, namespace, node (app|workload|service|unknown), httpin, httpout (rps), health",
  "Node flags: healthy, degraded, failure, idle, outside, trafficsource, virtualservice, trafficshifting, faultinjection, mirroring, circuitbreaker, requesttimeout",
  "Edges: http, grpc, tcp (rates), %httptraffic, %httperr, rt (ms), protocol; flag: traffic",
  "Operators: = != > >= < <= ^= (starts with) $= (ends with) *= (contains); combine with and / or; negate with !",
];
