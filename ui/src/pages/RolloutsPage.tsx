import { Link } from "react-router-dom";
import { enc } from "../api";
import { useApiData } from "../components/useApiData";
import { useNamespace } from "../namespace";
import { PHASE_ICONS, stepText, type RolloutRow } from "../rollouts/types";
import "../rollouts/rollouts.css";

// Argo Rollouts in the namespace, with kubectl argo rollouts list's columns (status, step, set weight, replicas)
// plus the canary's actual weight and the Istio objects it drives.
export default function RolloutsPage() {
  const [ns] = useNamespace();
  const { data, error, loading } = useApiData<{ rollouts: RolloutRow[] }>(`/api/namespaces/${enc(ns)}/rollouts`, 5000);
  const rows = data?.rollouts ?? [];
  return (
    <div className="rollouts-page">
      <div className="page-header"><div className="page-title"><h1>Rollouts</h1></div></div>
      <table className="list" data-testid="rollouts">
        <thead>
          <tr><th>Name</th><th>Status</th><th>Step</th><th>Set weight</th><th>Actual weight</th><th>Ready</th><th>Routing</th></tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.name} data-testid={`row-${r.name}`}>
              <td><Link to={`/namespaces/${enc(r.namespace)}/rollouts/${enc(r.name)}?namespace=${enc(r.namespace)}`}>{r.name}</Link></td>
              <td><span className={`phase phase-${r.phase}`}>{PHASE_ICONS[r.phase] ?? "?"} {r.phase}</span></td>
              <td>{stepText(r)}</td>
              <td>{r.setWeight}</td>
              <td>{r.actualWeight ?? "–"}</td>
              <td>{r.replicas.ready}/{r.replicas.desired}</td>
              <td>{[...r.virtualServices.map((v) => `VirtualService ${v}`), r.destinationRule && `DestinationRule ${r.destinationRule}`,
                r.canaryService && `canary Service ${r.canaryService}`].filter(Boolean).join(", ") || "–"}</td>
            </tr>
          ))}
          {!rows.length && !loading && <tr><td colSpan={7} className="empty">{error ? "No data." : `No rollouts in namespace ${ns}.`}</td></tr>}
        </tbody>
      </table>
    </div>
  );
}
