import { useMemo } from "react";
import { Link } from "react-router-dom";
import { enc, type Health } from "../api";
import HealthIcon from "../components/HealthIcon";
import KindBadge from "../components/KindBadge";
import LabelChips from "../components/LabelChips";
import ListView, { EmptyRow, HealthNameHeaders, useHealthList } from "../components/ListView";
import { useApiData } from "../components/useApiData";
import { useNamespace } from "../namespace";

// Kiali's Services list: health, name (→ service detail), namespace, type and ports, labels, the workloads
// behind it, and the Istio config naming it (VirtualServices, DestinationRules → the config editor).

interface Service {
  name: string; namespace: string; type?: string; clusterIP?: string;
  ports?: { name?: string; port: number; protocol?: string; targetPort?: number | string }[];
  selector?: Record<string, string>; labels?: Record<string, string>; health?: { status?: Health | string };
  workloads?: { name: string; app?: string; version?: string }[]; virtualServices?: string[]; destinationRules?: string[];
}

function configPath(ns: string, kind: string, name: string) {
  return `/namespaces/${enc(ns)}/istio/${enc(kind)}/${enc(name)}?namespace=${enc(ns)}`;
}

export default function ServicesPage() {
  const [ns] = useNamespace();
  const { data, error, loading, reload } = useApiData<{ services: Service[] }>(`/api/namespaces/${enc(ns)}/services`, 15000);
  const all = useMemo(() => data?.services ?? [], [data]);
  const { filter, setFilter, sort, onSort, rows } = useHealthList(all);
  return (
    <ListView title="Services" what="services" filter={filter} onFilter={setFilter} count={rows.length} total={all.length}
              loading={loading} error={error} onRefresh={reload}>
      <table className="list">
        <thead>
          <tr>
            <HealthNameHeaders sort={sort} onSort={onSort} />
            <th>Namespace</th>
            <th>Type / Ports</th>
            <th>Labels</th>
            <th>Workloads</th>
            <th>Istio config</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => {
            const sns = s.namespace || ns;
            const configs = [
              ...(s.virtualServices ?? []).map((n) => ["VirtualService", n] as const),
              ...(s.destinationRules ?? []).map((n) => ["DestinationRule", n] as const),
            ];
            return (
              <tr key={s.name} data-testid={`row-${s.name}`}>
                <td><HealthIcon status={s.health?.status ?? "NA"} /></td>
                <td><Link to={`/namespaces/${enc(sns)}/services/${enc(s.name)}?namespace=${enc(sns)}`}>{s.name}</Link></td>
                <td>{sns}</td>
                <td>
                  <span>{s.type ?? "ClusterIP"}</span>
                  {(s.ports ?? []).length > 0 && (
                    <span className="muted small lp-ports">{(s.ports ?? []).map((p) => `${p.name ? `${p.name} ` : ""}${p.port}/${p.protocol ?? "TCP"}`).join(", ")}</span>
                  )}
                </td>
                <td><LabelChips labels={s.labels} /></td>
                <td className="lp-links">
                  {(s.workloads ?? []).length
                    ? (s.workloads ?? []).map((w) => <Link key={w.name} to={`/namespaces/${enc(sns)}/workloads/${enc(w.name)}?namespace=${enc(sns)}`}>{w.name}</Link>)
                    : <span className="muted">No workloads</span>}
                </td>
                <td className="lp-links" data-testid={`config-${s.name}`}>
                  {configs.length
                    ? configs.map(([kind, name]) => (
                      <Link key={`${kind}/${name}`} to={configPath(sns, kind, name)} className="lp-config-link">
                        <KindBadge kind={kind} />{name}
                      </Link>
                    ))
                    : <span className="muted">—</span>}
                </td>
              </tr>
            );
          })}
          {!rows.length && !loading && (
            <EmptyRow cols={7}>{error ? "No data." : all.length ? "No service matches the filter." : `No services in namespace ${ns}.`}</EmptyRow>
          )}
        </tbody>
      </table>
    </ListView>
  );
}
