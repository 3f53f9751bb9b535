import { useEffect, useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { api, enc } from "../api";
import HealthIcon from "../components/HealthIcon";
import { badgeSvg, svgDataUri } from "./badges";
import {
  BADGE_TITLES, edgeNumbers, formatByteRate, formatPercent, formatRate, formatResponseTime, nodeBadges,
  nodeLabel, nodeNumbers,
} from "./format";
import type { Selection } from "./controller";
import { RESPONSE_TIMES, durationLabel, type ResponseTimeChoice } from "./options";
import type { EdgeData, GraphResponse, NodeData } from "./types";

// The summary panel of the selected node or edge (Kiali's "side panel"): health, rates, response time,
// traffic share, response codes, and links to the detail pages.

interface WorkloadRef { name: string; app?: string; version?: string; labels?: Record<string, string> }
const workloadCache = new Map<string, { at: number; list: Promise<WorkloadRef[]> }>();

function workloadsOf(ns: string): Promise<WorkloadRef[]> {
  const hit = workloadCache.get(ns);
  if (hit && Date.now() - hit.at < 30000) return hit.list;
  const list = api.get<{ workloads: WorkloadRef[] }>(`/api/namespaces/${enc(ns)}/workloads`)
    .then((d) => d.workloads ?? [])
    .catch(() => [] as WorkloadRef[]);
  workloadCache.set(ns, { at: Date.now(), list });
  return list;
}

const TYPE_NAMES: Record<string, string> = {
  app: "App", workload: "Workload", service: "Service", box: "Application", unknown: "Unknown",
};

function oneLine(label: string): string {
  return label.replace(/\n/g, " ");
}

function workloadLink(ns: string, name: string) {
  return <Link to={`/namespaces/${enc(ns)}/workloads/${enc(name)}`}>{name}</Link>;
}

function serviceLink(ns: string, name: string) {
  return <Link to={`/namespaces/${enc(ns)}/services/${enc(name)}`}>{name}</Link>;
}

function Badges({ node, showVS }: { node: NodeData; showVS: boolean }) {
  const badges = nodeBadges(node, showVS);
  if (!badges.length) return null;
  return (
    <div className="sp-badges">
      {badges.map((b) => (
        <span key={b} className="sp-badge" title={BADGE_TITLES[b]}>
          <img src={svgDataUri(badgeSvg(b, 16))} alt="" width={16} height={16} /> {BADGE_TITLES[b]}
          {b === "rollout" && (node.hasRollout ?? []).map((r) => (
            <Link key={r} className="sp-rollout" data-testid={`sp-rollout-${r}`}
                  to={`/namespaces/${enc(node.namespace ?? "")}/rollouts/${enc(r)}?namespace=${enc(node.namespace ?? "")}`}> {r}</Link>
          ))}
        </span>
      ))}
    </div>
  );
}

function NodeLinks({ node, ns }: { node: NodeData; ns: string }) {
  const nodeNs = node.namespace || ns;
  const [workloads, setWorkloads] = useState<string[] | null>(node.workload ? [node.workload] : null);
  useEffect(() => {
    if (node.workload || !node.app || node.nodeType === "service" || node.nodeType === "unknown") {
      setWorkloads(node.workload ? [node.workload] : null);
      return;
    }
    let cancelled = false;
    workloadsOf(nodeNs).then((list) => {
      if (cancelled) return;
      const matches = list.filter((w) => {
        const app = w.app ?? w.labels?.app;
        const version = w.version ?? w.labels?.version;
        return app === node.app && (!node.version || node.nodeType === "box" || version === node.version);
      });
      setWorkloads(matches.map((w) => w.name));
    });
    return () => {
      cancelled = true;
    };
  }, [node.id, node.workload, node.app, node.version, node.nodeType, nodeNs]);
  const services = new Set<string>();
  if (node.service) services.add(node.service);
  for (const s of node.destServices ?? []) if (s.namespace === nodeNs) services.add(s.name);
  return (
    <dl className="sp-dl">
      {node.nodeType !== "service" && node.nodeType !== "unknown" && (
        <>
          <dt>Workload{workloads && workloads.length === 1 ? "" : "s"}</dt>
          <dd data-testid="sp-workloads">
            {workloads === null ? <span className="muted">…</span>
              : workloads.length === 0 ? <span className="muted">none found</span>
              : workloads.map((w, i) => <span key={w}>{i > 0 && ", "}{workloadLink(nodeNs, w)}</span>)}
          </dd>
        </>
      )}
      {services.size > 0 && (
        <>
          <dt>Service{services.size === 1 ? "" : "s"}</dt>
          <dd>{[...services].map((s, i) => <span key={s}>{i > 0 && ", "}{serviceLink(nodeNs, s)}</span>)}</dd>
        </>
      )}
      {node.app && node.nodeType !== "service" && (
        <>
          <dt>App</dt>
          <dd><Link to={`/workloads?namespace=${enc(nodeNs)}&app=${enc(node.app)}`}>{node.app}</Link></dd>
        </>
      )}
    </dl>
  );
}

function EdgeRow({ e, other, onSelect }: { e: EdgeData; other: string; onSelect: (s: Selection) => void }) {
  const n = edgeNumbers(e);
  return (
    <tr>
      <td><button type="button" className="linklike" onClick={() => onSelect({ kind: "edge", id: e.id })}>{other}</button></td>
      <td className="num">{n.protocol === "tcp" ? formatByteRate(n.rate) : formatRate(n.rate)}</td>
      <td className="num">{n.percentReq !== undefined ? formatPercent(n.percentReq) : "—"}</td>
      <td className="num">{formatPercent(n.percentErr)}</td>
    </tr>
  );
}

function NodePanel({ node, graph, nodes, showVS, onSelect }: {
  node: NodeData; graph: GraphResponse; nodes: Map<string, NodeData>; showVS: boolean; onSelect: (s: Selection) => void;
}) {
  const n = nodeNumbers(node);
  const inEdges = graph.elements.edges.map((e) => e.data).filter((e) => e.target === node.id);
  const outEdges = graph.elements.edges.map((e) => e.data).filter((e) => e.source === node.id);
  const members = node.nodeType === "box" ? graph.elements.nodes.map((x) => x.data).filter((x) => x.parent === node.id) : [];
  const name = (id: string) => { const x = nodes.get(id); return x ? oneLine(nodeLabel(x, graph.namespace)) : id; };
  const inTotal = n.httpIn + n.grpcIn;
  const outTotal = n.httpOut + n.grpcOut;
  return (
    <>
      <div className="sp-head">
        <span className={`sp-type sp-type-${node.nodeType}`}>{TYPE_NAMES[node.nodeType] ?? node.nodeType}</span>
        <h2 data-testid="sp-title">{oneLine(nodeLabel(node, graph.namespace))}</h2>
        <div className="muted">namespace {node.namespace}{node.isRoot ? " · traffic source" : ""}{node.isOutside ? " · outside the graphed namespace" : ""}</div>
      </div>
      <section>
        <h3>Health</h3>
        <div data-testid="sp-health"><HealthIcon status={node.healthStatus ?? "NA"} label /></div>
        {node.health && (node.health.inbound || node.health.outbound) && (
          <div className="muted small">
            {node.health.inbound && node.health.inbound.status !== "NA" && <>inbound errors {formatPercent(node.health.inbound.errorRatio)} </>}
            {node.health.outbound && node.health.outbound.status !== "NA" && <>· outbound errors {formatPercent(node.health.outbound.errorRatio)}</>}
          </div>
        )}
        <Badges node={node} showVS={showVS} />
      </section>
      {node.nodeType !== "box" && (
        <section>
          <h3>Traffic <span className="muted small">(last {durationLabel(graph.duration)})</span></h3>
          <table className="sp-table">
            <thead><tr><th /><th className="num">Total</th><th className="num">Errors</th><th className="num">% Error</th></tr></thead>
            <tbody>
              <tr><td>Inbound</td><td className="num" data-testid="sp-rate-in">{formatRate(inTotal)}</td><td className="num">{formatRate(n.errIn)}</td>
                <td className="num">{inTotal > 0 ? formatPercent((100 * n.errIn) / inTotal) : "—"}</td></tr>
              <tr><td>Outbound</td><td className="num" data-testid="sp-rate-out">{formatRate(outTotal)}</td><td className="num">{formatRate(n.errOut)}</td>
                <td className="num">{outTotal > 0 ? formatPercent((100 * n.errOut) / outTotal) : "—"}</td></tr>
              {(n.tcpIn > 0 || n.tcpOut > 0) && (
                <tr><td>TCP</td><td className="num" colSpan={3}>in {formatByteRate(n.tcpIn)} · out {formatByteRate(n.tcpOut)}</td></tr>
              )}
            </tbody>
          </table>
        </section>
      )}
      {members.length > 0 && (
        <section>
          <h3>Versions</h3>
          <ul className="sp-list">
            {members.map((m) => (
              <li key={m.id}>
                <HealthIcon status={m.healthStatus ?? "NA"} />
                <button type="button" className="linklike" onClick={() => onSelect({ kind: "node", id: m.id })}>{m.version ?? m.id}</button>
              </li>
            ))}
          </ul>
        </section>
      )}
      {(inEdges.length > 0 || outEdges.length > 0) && (
        <section>
          <h3>Edges</h3>
          <table className="sp-table">
            <thead><tr><th /><th className="num">Rate</th><th className="num">% Req</th><th className="num">% Err</th></tr></thead>
            <tbody>
              {inEdges.map((e) => <EdgeRow key={e.id} e={e} other={`← ${name(e.source)}`} onSelect={onSelect} />)}
              {outEdges.map((e) => <EdgeRow key={e.id} e={e} other={`→ ${name(e.target)}`} onSelect={onSelect} />)}
            </tbody>
          </table>
        </section>
      )}
      <section>
        <h3>Details</h3>
        <NodeLinks node={node} ns={graph.namespace} />
      </section>
    </>
  );
}

/** A link to the detail page of a node: its service, its workload, or the workloads of an app version. */
function NodeDetailLink({ node, ns }: { node: NodeData | undefined; ns: string }) {
  const nodeNs = node?.namespace || ns;
  const [workloads, setWorkloads] = useState<string[] | null>(null);
  const needLookup = !!node && node.nodeType === "app" && !!node.app && !node.workload;
  useEffect(() => {
    if (!needLookup || !node) return;
    let cancelled = false;
    workloadsOf(nodeNs).then((list) => {
      if (!cancelled) {
        setWorkloads(list.filter((w) => (w.app ?? w.labels?.app) === node.app
          && (!node.version || (w.version ?? w.labels?.version) === node.version)).map((w) => w.name));
      }
    });
    return () => {
      cancelled = true;
    };
  }, [needLookup, node, nodeNs]);
  if (!node) return null;
  const text = oneLine(nodeLabel(node, ns));
  if (node.nodeType === "service" && node.service) return serviceLink(nodeNs, node.service);
  if (node.workload) return workloadLink(nodeNs, node.workload);
  if (needLookup && workloads && workloads.length) {
    return <>{text} ({workloads.map((w, i) => <span key={w}>{i > 0 && ", "}{workloadLink(nodeNs, w)}</span>)})</>;
  }
  return <>{text}</>;
}

function EdgePanel({ edge, graph, nodes, responseTime, onSelect }: {
  edge: EdgeData; graph: GraphResponse; nodes: Map<string, NodeData>; responseTime: ResponseTimeChoice;
  onSelect: (s: Selection) => void;
}) {
  const n = edgeNumbers(edge);
  const src = nodes.get(edge.source);
  const dst = nodes.get(edge.target);
  const rtName = RESPONSE_TIMES.find(([v]) => v === responseTime)?.[1] ?? responseTime;
  const responses = Object.entries(edge.traffic?.responses ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const hosts = new Map<string, number>();
  for (const [, r] of responses) for (const [h, p] of Object.entries(r.hosts ?? {})) hosts.set(h, (hosts.get(h) ?? 0) + p);
  const end = (id: string, node?: NodeData) => (
    <button type="button" className="linklike" onClick={() => onSelect({ kind: "node", id })}>
      {node ? oneLine(nodeLabel(node, graph.namespace)) : id}
    </button>
  );
  return (
    <>
      <div className="sp-head">
        <span className="sp-type sp-type-edge">Edge</span>
        <h2 data-testid="sp-title">{end(edge.source, src)} <span className="muted">→</span> {end(edge.target, dst)}</h2>
        <div className="muted">{n.protocol.toUpperCase()} · last {durationLabel(graph.duration)}</div>
      </div>
      <section>
        <h3>Health</h3>
        <div data-testid="sp-health"><HealthIcon status={edge.healthStatus ?? "NA"} label /></div>
      </section>
      <section>
        <h3>Traffic</h3>
        <dl className="sp-dl">
          <dt>Rate</dt><dd data-testid="sp-rate">{n.protocol === "tcp" ? formatByteRate(n.rate) : formatRate(n.rate)}</dd>
          {n.percentReq !== undefined && <><dt>% of source's requests</dt><dd data-testid="sp-percent">{formatPercent(n.percentReq)}</dd></>}
          {n.protocol !== "tcp" && <><dt>% Error</dt><dd data-testid="sp-error">{formatPercent(n.percentErr)}</dd></>}
          {n.rate5xx > 0 && <><dt>5xx</dt><dd>{formatRate(n.rate5xx)}</dd></>}
          {n.rate4xx > 0 && <><dt>4xx</dt><dd>{formatRate(n.rate4xx)}</dd></>}
          <dt>Response time ({rtName})</dt>
          <dd data-testid="sp-response-time">
            {n.responseTime !== undefined && n.responseTime > 0 ? formatResponseTime(n.responseTime)
              : <span className="muted">{dst?.nodeType === "service" ? "n/a (edge into a service node)" : "no data"}</span>}
          </dd>
        </dl>
      </section>
      {responses.length > 0 && (
        <section>
          <h3>Responses</h3>
          <table className="sp-table">
            <thead><tr><th>Code</th><th>Flags</th><th className="num">% Req</th></tr></thead>
            <tbody>
              {responses.flatMap(([code, r]) => Object.entries(r.flags ?? {}).map(([flag, p]) => (
                <tr key={`${code}-${flag}`} className={/^[45]/.test(code) || flag !== "-" ? "sp-err" : undefined}>
                  <td>{code}</td><td>{flag}</td><td className="num">{formatPercent(p)}</td>
                </tr>
              )))}
            </tbody>
          </table>
          {hosts.size > 0 && (
            <div className="muted small sp-hosts">Hosts: {[...hosts.keys()].join(", ")}</div>
          )}
        </section>
      )}
      <section>
        <h3>Details</h3>
        <dl className="sp-dl">
          <dt>Source</dt><dd data-testid="sp-source">{src ? <NodeDetailLink node={src} ns={graph.namespace} /> : edge.source}</dd>
          <dt>Destination</dt><dd data-testid="sp-destination">{dst ? <NodeDetailLink node={dst} ns={graph.namespace} /> : edge.target}</dd>
        </dl>
      </section>
    </>
  );
}

export default function SidePanel({ selection, graph, showVS, responseTime, onSelect, onClose }: {
  selection: Selection; graph: GraphResponse | null; showVS: boolean; responseTime: ResponseTimeChoice;
  onSelect: (s: Selection) => void; onClose: () => void;
}) {
  const nodes = useMemo(() => new Map((graph?.elements.nodes ?? []).map((n) => [n.data.id, n.data])), [graph]);
  const edge = selection.kind === "edge" ? graph?.elements.edges.find((e) => e.data.id === selection.id)?.data : undefined;
  const node = selection.kind === "node" ? nodes.get(selection.id) : undefined;
  return (
    <aside className="graph-side-panel" data-testid="graph-side-panel" aria-label="Selection details">
      <button type="button" className="sp-close" aria-label="Close" onClick={onClose}>×</button>
      {graph && node && <NodePanel node={node} graph={graph} nodes={nodes} showVS={showVS} onSelect={onSelect} />}
      {graph && edge && <EdgePanel edge={edge} graph={graph} nodes={nodes} responseTime={responseTime} onSelect={onSelect} />}
      {(!graph || (!node && !edge)) && <div className="empty">This {selection.kind} is no longer in the graph.</div>}
    </aside>
  );
}
