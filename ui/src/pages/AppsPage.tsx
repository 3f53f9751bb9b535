import { useMemo } from "react";
import { Link } from "react-router-dom";
import { enc, type Health } from "../api";
import HealthIcon from "../components/HealthIcon";
import ListView, { EmptyRow, HealthNameHeaders, useHealthList } from "../components/ListView";
import SidecarStatus from "../components/SidecarStatus";
import { useApiData } from "../components/useApiData";
import { useNamespace } from "../namespace";

// Kiali's Applications list: workloads grouped by their `app` label. The name opens the workloads of the
// app; the graph link opens the traffic graph with the app's nodes highlighted.

interface App {
  name: string; workloads?: string[]; versions?: string[]; services?: string[]; istioSidecar?: boolean;
  health?: { status?: Health | string };
}

export default function AppsPage() {
  const [ns] = useNamespace();
  const { data, error, loading, reload } = useApiData<{ apps: App[] }>(`/api/namespaces/${enc(ns)}/apps`, 15000);
  const all = useMemo(() => data?.apps ?? [], [data]);
  const { filter, setFilter, sort, onSort, rows } = useHealthList(all);
  const q = `namespace=${enc(ns)}`;
  return (
    <ListView title="Applications" what="applications" filter={filter} onFilter={setFilter} count={rows.length} total={all.length}
              loading={loading} error={error} onRefresh={reload}>
      <table className="list">
        <thead>
          <tr>
            <HealthNameHeaders sort={sort} onSort={onSort} />
            <th>Namespace</th>
            <th>Versions</th>
            <th>Workloads</th>
            <th>Services</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.name} data-testid={`row-${a.name}`}>
              <td><HealthIcon status={a.health?.status ?? "NA"} /></td>
              <td>
                <Link to={`/workloads?${q}&app=${enc(a.name)}`} title={`Workloads of ${a.name}`}>{a.name}</Link>
                <Link className="lp-graph-link" to={`/graph?${q}&find=${enc(`app = ${a.name}`)}`} title={`${a.name} in the traffic graph`}>graph</Link>
              </td>
              <td>{ns}</td>
              <td>
                {(a.versions ?? []).length
                  ? <span className="chips">{(a.versions ?? []).map((v) => <span key={v} className="chip">version={v}</span>)}</span>
                  : <span className="muted">—</span>}
              </td>
              <td className="lp-links">
                {(a.workloads ?? []).map((w) => <Link key={w} to={`/namespaces/${enc(ns)}/workloads/${enc(w)}?${q}`}>{w}</Link>)}
              </td>
              <td className="lp-links">
                {(a.services ?? []).length
                  ? (a.services ?? []).map((s) => <Link key={s} to={`/namespaces/${enc(ns)}/services/${enc(s)}?${q}`}>{s}</Link>)
                  : <span className="muted">—</span>}
              </td>
              <td><SidecarStatus present={a.istioSidecar} /></td>
            </tr>
          ))}
          {!rows.length && !loading && (
            <EmptyRow cols={7}>{error ? "No data." : all.length ? "No application matches the filter." : `No applications in namespace ${ns}.`}</EmptyRow>
          )}
        </tbody>
      </table>
    </ListView>
  );
}
