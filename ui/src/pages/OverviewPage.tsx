import { useMemo, useState } from "react";
import { Link } from "react-router-dom";
import { enc, type Health } from "../api";
import HealthIcon from "../components/HealthIcon";
import LabelChips from "../components/LabelChips";
import { filterByName, healthRank } from "../components/listUtils";
import Sparkline from "../components/Sparkline";
import StatusIcon from "../components/StatusIcon";
import { useApiData } from "../components/useApiData";
import "../components/lists.css";

// Kiali's (classic) Overview: one card per namespace with workload health, the Istio config validation
// summary, an inbound traffic sparkline (last 10 minutes) and links to the namespace's pages.
// Refreshed every 15 s.

interface NamespaceInfo {
  name: string; labels?: Record<string, string>; status?: string;
  health?: { status?: Health | string; workloads?: { healthy?: number; degraded?: number; failure?: number; na?: number } };
  istioConfig?: { objects?: number; valid?: number; warnings?: number; errors?: number };
  sparkline?: [number, number][];
}

function Count({ n, kind, label }: { n: number; kind: "ok" | "warning" | "error"; label: string }) {
  return (
    <span className={n ? "ov-count" : "ov-count ov-count-zero"} title={`${n} ${label}`} data-testid={`count-${label.replace(/\s+/g, "-")}`}>
      <StatusIcon kind={kind} size={13} /> {n}
    </span>
  );
}

function NamespaceCard({ ns }: { ns: NamespaceInfo }) {
  const w = ns.health?.workloads ?? {};
  const total = (w.healthy ?? 0) + (w.degraded ?? 0) + (w.failure ?? 0) + (w.na ?? 0);
  const cfg = ns.istioConfig ?? {};
  const q = `?namespace=${enc(ns.name)}`;
  return (
    <div className="ov-card" data-testid={`ns-card-${ns.name}`}>
      <div className="ov-card-head">
        <HealthIcon status={ns.health?.status ?? "NA"} />
        <h2><Link to={`/graph${q}`}>{ns.name}</Link></h2>
        {ns.status && ns.status !== "Active" && <span className="ov-status">{ns.status}</span>}
      </div>
      {ns.labels && Object.keys(ns.labels).length > 0 && <div><LabelChips labels={ns.labels} /></div>}
      <div className="ov-row" data-testid="ns-health">
        <span className="ov-row-title">
          <Link to={`/workloads${q}`}>{total} workload{total === 1 ? "" : "s"}</Link>
        </span>
        {total === 0 ? <span className="muted small">No workloads</span> : (
          <>
            <Count n={w.healthy ?? 0} kind="ok" label="healthy" />
            <Count n={w.degraded ?? 0} kind="warning" label="degraded" />
            <Count n={w.failure ?? 0} kind="error" label="failure" />
            {(w.na ?? 0) > 0 && <span className="ov-count muted" title={`${w.na} without health information`}><HealthIcon status="NA" />{w.na}</span>}
          </>
        )}
      </div>
      <div className="ov-row" data-testid="ns-istio-config">
        <span className="ov-row-title">
          <Link to={`/istio${q}`}>Istio config</Link>
        </span>
        {!cfg.objects ? <span className="muted small">No Istio config</span> : (
          <Link to={`/istio${q}`} className="ov-row" title={`${cfg.objects} objects: ${cfg.valid ?? 0} valid, ${cfg.warnings ?? 0} with warnings, ${cfg.errors ?? 0} with errors`}>
            <span className="ov-count">{cfg.objects} object{cfg.objects === 1 ? "" : "s"}</span>
            <Count n={cfg.valid ?? 0} kind="ok" label="valid" />
            <Count n={cfg.warnings ?? 0} kind="warning" label="warnings" />
            <Count n={cfg.errors ?? 0} kind="error" label="errors" />
          </Link>
        )}
      </div>
      <div className="ov-row">
        <span className="ov-row-title">Inbound traffic<br /><span className="small">last 10m</span></span>
        <Sparkline points={ns.sparkline} width={200} height={40} />
      </div>
      <div className="ov-links">
        <Link to={`/graph${q}`}>Graph</Link>
        <Link to={`/applications${q}`}>Applications</Link>
        <Link to={`/workloads${q}`}>Workloads</Link>
        <Link to={`/services${q}`}>Services</Link>
        <Link to={`/istio${q}`}>Istio config</Link>
      </div>
    </div>
  );
}

type SortBy = "name" | "health";

export default function OverviewPage() {
  const { data, error, loading, reload } = useApiData<{ namespaces: NamespaceInfo[] }>("/api/namespaces?sparkline=10m", 15000);
  const [filter, setFilter] = useState("");
  const [sortBy, setSortBy] = useState<SortBy>("name");
  const all = data?.namespaces ?? [];
  const shown = useMemo(() => {
    const rows = filterByName(all, filter);
    rows.sort((a, b) => (sortBy === "health" ? healthRank(a.health?.status) - healthRank(b.health?.status) : 0) || a.name.localeCompare(b.name));
    return rows;
  }, [all, filter, sortBy]);
  return (
    <div className="overview">
      <h1>Overview</h1>
      <div className="toolbar lp-toolbar">
        <label>
          Namespace
          <input type="search" data-testid="name-filter" placeholder="Filter by name" value={filter} onChange={(e) => setFilter(e.target.value)} />
        </label>
        <label>
          Sort by
          <select value={sortBy} onChange={(e) => setSortBy(e.target.value as SortBy)} data-testid="overview-sort">
            <option value="name">Name</option>
            <option value="health">Health</option>
          </select>
        </label>
        <span className="lp-spacer" />
        <span className="lp-count">{loading && !data ? "Loading…" : `${shown.length} namespace${shown.length === 1 ? "" : "s"}`} · refreshes every 15s</span>
        <button type="button" className="lp-refresh" title="Refresh" aria-label="Refresh" onClick={reload}>
          <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true"><path d="M13.5 8a5.5 5.5 0 1 1-1.6-3.9M12 1.5v3h-3" fill="none" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" strokeLinejoin="round" /></svg>
        </button>
      </div>
      {error && (
        <div className="lp-error" role="status">
          <strong>Could not load the namespaces.</strong> <span>{error.message}</span>
          <button type="button" onClick={reload}>Try again</button>
        </div>
      )}
      <div className="overview-grid">
        {shown.map((ns) => <NamespaceCard key={ns.name} ns={ns} />)}
      </div>
      {!loading && !error && !shown.length && <div className="empty">{all.length ? "No namespace matches the filter." : "No namespaces."}</div>}
    </div>
  );
}
