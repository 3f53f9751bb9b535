import { useMemo } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { enc, type Health } from "../api";
import HealthIcon from "../components/HealthIcon";
import LabelChips from "../components/LabelChips";
import ListView, { EmptyRow, HealthNameHeaders, useHealthList } from "../components/ListView";
import { podsText } from "../components/listUtils";
import SidecarStatus from "../components/SidecarStatus";
import { useApiData } from "../components/useApiData";
import { useNamespace } from "../namespace";

// Kiali's Workloads list: health, name (→ workload detail), namespace, type, app/version labels, pods,
// sidecar. `?app=` narrows it to one app (the Applications list links here).

interface Pod { name: string; ready?: boolean }
interface Workload {
  name: string; namespace: string; type?: string; labels?: Record<string, string>; app?: string; version?: string;
  desiredReplicas?: number; availableReplicas?: number; istioSidecar?: boolean; pods?: Pod[];
  health?: { status?: Health | string; pods?: string; traffic?: string };
}

/** app and version first (from the workload's fields, which also cover pod-template labels), then the rest. */
function workloadLabels(w: Workload): Record<string, string> {
  const out: Record<string, string> = {};
  const app = w.app || w.labels?.app;
  const version = w.version || w.labels?.version;
  if (app) out.app = app;
  if (version) out.version = version;
  for (const [k, v] of Object.entries(w.labels ?? {})) if (!(k in out)) out[k] = v;
  return out;
}

export default function WorkloadsPage() {
  const [ns] = useNamespace();
  const [params, setParams] = useSearchParams();
  const app = params.get("app") ?? "";
  const { data, error, loading, reload } = useApiData<{ workloads: Workload[] }>(`/api/namespaces/${enc(ns)}/workloads`, 15000);
  const all = useMemo(() => (data?.workloads ?? []).filter((w) => !app || (w.app ?? w.labels?.app) === app), [data, app]);
  const { filter, setFilter, sort, onSort, rows } = useHealthList(all);
  const clearApp = () => setParams((p) => { const n = new URLSearchParams(p); n.delete("app"); return n; });
  return (
    <ListView title="Workloads" what="workloads" filter={filter} onFilter={setFilter} count={rows.length} total={all.length}
              loading={loading} error={error} onRefresh={reload}
              extraTools={app ? (
                <span className="lp-filter-chip" data-testid="app-filter">app = {app}
                  <button type="button" aria-label="Clear the app filter" onClick={clearApp}>×</button></span>
              ) : undefined}>
      <table className="list">
        <thead>
          <tr>
            <HealthNameHeaders sort={sort} onSort={onSort} />
            <th>Namespace</th>
            <th>Type</th>
            <th>Labels</th>
            <th>Pods</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((w) => {
            const ready = w.pods ? w.pods.filter((p) => p.ready).length : (w.availableReplicas ?? 0);
            const desired = w.desiredReplicas ?? w.pods?.length ?? 0;
            return (
              <tr key={w.name} data-testid={`row-${w.name}`}>
                <td><HealthIcon status={w.health?.status ?? "NA"} /></td>
                <td><Link to={`/namespaces/${enc(w.namespace || ns)}/workloads/${enc(w.name)}?namespace=${enc(w.namespace || ns)}`}>{w.name}</Link></td>
                <td>{w.namespace || ns}</td>
                <td>{w.type ?? "Deployment"}</td>
                <td><LabelChips labels={workloadLabels(w)} /></td>
                <td className={ready < desired ? "lp-pods lp-pods-short" : "lp-pods"} title={`${ready} ready of ${desired} desired`}>{podsText(ready, desired)}</td>
                <td><SidecarStatus present={w.istioSidecar} /></td>
              </tr>
            );
          })}
          {!rows.length && !loading && (
            <EmptyRow cols={7}>{error ? "No data." : all.length ? "No workload matches the filter." : `No workloads in namespace ${ns}.`}</EmptyRow>
          )}
        </tbody>
      </table>
    </ListView>
  );
}
