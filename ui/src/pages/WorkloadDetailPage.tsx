import { useEffect, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, enc, type ApiError } from "../api";
import HealthIcon from "../components/HealthIcon";
import KindBadge from "../components/KindBadge";
import Labels from "../components/Labels";
import PageHeader from "../components/PageHeader";
import { age, detailPath } from "../components/istio";
import MetricsPanel from "../charts/MetricsPanel";
import LogsPanel from "../logs/LogsPanel";
import "../components/details.css";

interface Pod { name: string; phase: string; ready: boolean; containers: string[]; istioSidecar: boolean; restarts: number; labels?: Record<string, string>; createdAt?: string }
interface Workload {
  name: string; namespace: string; type?: string; labels?: Record<string, string>; app?: string; version?: string;
  desiredReplicas?: number; availableReplicas?: number; istioSidecar?: boolean; pods?: Pod[];
  health?: { status: string; pods?: string; traffic?: string };
  services?: string[]; istioConfig?: { kind: string; name: string; namespace: string }[];
}

const TABS = [
  { id: "info", label: "Overview" },
  { id: "logs", label: "Logs" },
  { id: "in_metrics", label: "Inbound Metrics" },
  { id: "out_metrics", label: "Outbound Metrics" },
] as const;
type TabId = (typeof TABS)[number]["id"];
const ALIASES: Record<string, TabId> = { overview: "info", inbound: "in_metrics", outbound: "out_metrics", metrics: "in_metrics" };

function phasePill(p: Pod) {
  const cls = p.phase === "Running" && p.ready ? "pill-ok" : p.phase === "Failed" || p.phase === "Unknown" ? "pill-bad" : "pill-warn";
  return <span className={`pill ${cls}`}>{p.phase}</span>;
}

// Kiali's workload details: Overview (pods, labels, services, Istio config, health), Logs, Inbound/Outbound Metrics.
export default function WorkloadDetailPage() {
  const { ns = "", name = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const raw = params.get("tab") ?? "info";
  const tab: TabId = (TABS.some((t) => t.id === raw) ? raw : ALIASES[raw] ?? "info") as TabId;
  const [wl, setWl] = useState<Workload | null>(null);
  const [error, setError] = useState<{ code: number; message: string } | null>(null);

  useEffect(() => {
    let live = true;
    const load = () => api.get<Workload>(`/api/namespaces/${enc(ns)}/workloads/${enc(name)}`)
      .then((w) => { if (live) { setWl(w); setError(null); } })
      .catch((e: ApiError) => { if (live) setError({ code: e.code, message: e.message }); });
    void load();
    const t = setInterval(load, 15000);
    return () => { live = false; clearInterval(t); };
  }, [ns, name]);

  const selectTab = (id: TabId) => setParams((p) => { const n = new URLSearchParams(p); n.set("tab", id); return n; });
  const containers = [...new Set((wl?.pods ?? []).flatMap((p) => p.containers ?? []))];
  const crumbs = [
    { label: "Workloads", to: `/workloads?namespace=${enc(ns)}` },
    { label: `Namespace: ${ns}`, to: `/workloads?namespace=${enc(ns)}` },
    { label: `Workload: ${name}` },
  ];

  return (
    <div className="workload-detail-page">
      <PageHeader crumbs={crumbs} kind="Workload" title={name}>
        {wl?.health && <HealthIcon status={wl.health.status} label />}
        {wl && wl.istioSidecar === false && <span className="pill pill-warn">Missing sidecar</span>}
      </PageHeader>
      <div className="tabs" role="tablist">
        {TABS.map((t) => (
          <button key={t.id} role="tab" className="tab" aria-selected={tab === t.id} data-testid={`tab-${t.id}`} onClick={() => selectTab(t.id)}>{t.label}</button>
        ))}
      </div>
      {error && !wl && (
        <div className="inline-alert inline-alert-danger" data-testid="load-error">
          {error.code === 404 && !/no console API/.test(error.message) ? `Workload ${name} was not found in namespace ${ns}.` : `Could not load workload ${name}: ${error.message}`}
        </div>
      )}
      {tab === "info" && (wl ? <Overview wl={wl} /> : !error && <div className="empty">Loading…</div>)}
      {tab === "logs" && <LogsPanel namespace={ns} workload={name} containers={containers} />}
      {tab === "in_metrics" && <MetricsPanel namespace={ns} workload={name} direction="inbound" />}
      {tab === "out_metrics" && <MetricsPanel namespace={ns} workload={name} direction="outbound" />}
    </div>
  );
}

function Overview({ wl }: { wl: Workload }) {
  const ns = wl.namespace;
  const pods = wl.pods ?? [];
  return (
    <div className="detail-grid">
      <div className="detail-col">
        <section className="panel">
          <h3>Workload</h3>
          <dl className="props">
            <dt>Name</dt><dd>{wl.name}</dd>
            <dt>Namespace</dt><dd>{wl.namespace}</dd>
            <dt>Type</dt><dd>{wl.type ?? "–"}</dd>
            <dt>Labels</dt><dd><Labels labels={wl.labels} /></dd>
            <dt>App / version</dt><dd>{wl.app ?? "–"}{wl.version ? <> <span className="pill">{wl.version}</span></> : null}</dd>
            <dt>Replicas</dt><dd>{wl.availableReplicas ?? 0} / {wl.desiredReplicas ?? 0} available</dd>
            <dt>Istio sidecar</dt><dd>{wl.istioSidecar ? <span className="pill pill-ok">Present</span> : <span className="pill pill-warn">Missing</span>}</dd>
          </dl>
        </section>
        <section className="panel">
          <h3>Health</h3>
          {wl.health ? (
            <div className="health-summary" data-testid="workload-health">
              <div><HealthIcon status={wl.health.status} label /></div>
              {wl.health.pods && <div className="muted">Pods: <HealthIcon status={wl.health.pods} label /></div>}
              {wl.health.traffic && <div className="muted">Traffic: <HealthIcon status={wl.health.traffic} label /></div>}
            </div>
          ) : <span className="muted">No health information</span>}
        </section>
        <section className="panel">
          <h3>Services</h3>
          {(wl.services ?? []).length ? (
            <ul className="link-list">
              {(wl.services ?? []).map((s) => <li key={s}><KindBadge kind="Service" /><Link to={`/namespaces/${enc(ns)}/services/${enc(s)}`}>{s}</Link></li>)}
            </ul>
          ) : <span className="muted">No services select this workload</span>}
        </section>
        <section className="panel">
          <h3>Istio Config</h3>
          {(wl.istioConfig ?? []).length ? (
            <ul className="link-list">
              {(wl.istioConfig ?? []).map((c) => (
                <li key={`${c.kind}/${c.namespace}/${c.name}`}><KindBadge kind={c.kind} /><Link to={detailPath(c.namespace || ns, c.kind, c.name)}>{c.name}</Link><span className="muted small">{c.kind}</span></li>
              ))}
            </ul>
          ) : <span className="muted">No VirtualService or DestinationRule</span>}
        </section>
      </div>
      <div className="detail-col">
        <section className="panel panel-table">
          <h3>Pods</h3>
          <table className="list" data-testid="pods">
            <thead><tr><th>Name</th><th>Status</th><th>Ready</th><th>Restarts</th><th>Containers</th><th>Sidecar</th><th>Age</th></tr></thead>
            <tbody>
              {pods.map((p) => (
                <tr key={p.name} data-testid={`row-${p.name}`}>
                  <td><KindBadge kind="Pod" />{p.name}</td>
                  <td>{phasePill(p)}</td>
                  <td>{p.ready ? "Yes" : <span className="error-text">No</span>}</td>
                  <td>{p.restarts > 0 ? <span className="pill pill-warn">{p.restarts}</span> : 0}</td>
                  <td><span className="labels">{(p.containers ?? []).map((c) => <span key={c} className="label-chip">{c}</span>)}</span></td>
                  <td>{p.istioSidecar ? <span className="pill pill-ok">Yes</span> : <span className="pill pill-warn">No</span>}</td>
                  <td title={p.createdAt}>{age(p.createdAt)}</td>
                </tr>
              ))}
              {pods.length === 0 && <tr><td colSpan={7} className="empty">No pods</td></tr>}
            </tbody>
          </table>
        </section>
        {pods[0]?.labels && (
          <section className="panel">
            <h3>Pod labels</h3>
            <Labels labels={pods[0].labels} />
          </section>
        )}
      </div>
    </div>
  );
}
