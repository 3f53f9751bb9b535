import { useCallback, useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, enc, type ApiError } from "../api";
import { onLoggedIn } from "../auth";
import HealthIcon from "../components/HealthIcon";
import KindBadge from "../components/KindBadge";
import Labels from "../components/Labels";
import PageHeader from "../components/PageHeader";
import ActionsMenu, { type MenuAction } from "../components/ActionsMenu";
import { ConfirmDialog } from "../components/Modal";
import { useToast } from "../components/Toast";
import ValidationIcon from "../components/ValidationIcon";
import { detailPath, rowTestIds, type IstioItem } from "../components/istio";
import TrafficShiftingWizard, { trafficShiftingPath, type TrafficShiftingInfo } from "../wizard/TrafficShiftingWizard";
import "../components/details.css";

interface Service {
  name: string; namespace: string; type?: string; clusterIP?: string;
  ports?: { name?: string; port: number; protocol?: string; targetPort?: number | string }[];
  selector?: Record<string, string>; labels?: Record<string, string>; health?: { status: string };
  workloads?: { name: string; app?: string; version?: string }[];
  virtualServices?: string[]; destinationRules?: string[];
}

// Kiali's service details: network info, workloads, Istio config, and the Actions menu with the wizards.
export default function ServiceDetailPage() {
  const { ns = "", name = "" } = useParams();
  const toast = useToast();
  const [svc, setSvc] = useState<Service | null>(null);
  const [error, setError] = useState<{ code: number; message: string } | null>(null);
  const [shifting, setShifting] = useState<TrafficShiftingInfo | null>(null);
  const [config, setConfig] = useState<IstioItem[]>([]);
  const [wizardOpen, setWizardOpen] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);

  const load = useCallback(() => {
    api.get<Service>(`/api/namespaces/${enc(ns)}/services/${enc(name)}`)
      .then((s) => { setSvc(s); setError(null); })
      .catch((e: ApiError) => setError({ code: e.code, message: e.message }));
    api.get<TrafficShiftingInfo>(trafficShiftingPath(ns, name)).then(setShifting).catch(() => setShifting(null));
    api.get<{ items: IstioItem[] }>(`/api/istio/config?namespace=${enc(ns)}&kinds=VirtualService,DestinationRule`)
      .then((d) => setConfig(d.items ?? [])).catch(() => setConfig([]));
  }, [ns, name]);
  useEffect(load, [load]);
  useEffect(() => onLoggedIn(load), [load]); // reload what a 401 left empty

  const deleteRouting = async () => {
    setDeleting(true);
    try {
      await api.del(trafficShiftingPath(ns, name));
      toast("success", `Traffic routing deleted for ${name} service`,
        [shifting?.virtualService && `VirtualService ${shifting.virtualService}`, shifting?.destinationRule && `DestinationRule ${shifting.destinationRule}`].filter(Boolean).join(" and ") + " deleted");
      load();
    } catch (e) {
      toast("danger", `Could not delete traffic routing for ${name} service`, (e as Error).message);
    } finally {
      setDeleting(false);
      setConfirmDelete(false);
    }
  };

  const actions: MenuAction[] = [{ id: "traffic-shifting", label: "Traffic Shifting", onClick: () => setWizardOpen(true) }];
  if (shifting?.wizard) actions.push({ id: "delete-traffic-routing", label: "Delete Traffic Routing", danger: true, separatorBefore: true, onClick: () => setConfirmDelete(true) });

  const crumbs = [
    { label: "Services", to: `/services?namespace=${enc(ns)}` },
    { label: `Namespace: ${ns}`, to: `/services?namespace=${enc(ns)}` },
    { label: `Service: ${name}` },
  ];
  const header = (
    <PageHeader crumbs={crumbs} kind="Service" title={name}>
      {svc?.health && <HealthIcon status={svc.health.status} label />}
      <ActionsMenu actions={actions} />
    </PageHeader>
  );

  const vsNames = svc?.virtualServices ?? (shifting?.virtualService ? [shifting.virtualService] : []);
  const drNames = svc?.destinationRules ?? (shifting?.destinationRule ? [shifting.destinationRule] : []);
  const configRows = [
    ...vsNames.map((n) => ({ kind: "VirtualService", name: n })),
    ...drNames.map((n) => ({ kind: "DestinationRule", name: n })),
  ].map((r) => ({ ...r, item: config.find((c) => c.kind === r.kind && c.name === r.name) }));
  const configIds = rowTestIds(configRows.map((r) => ({ namespace: ns, kind: r.kind, name: r.name })));
  const versions = new Map((shifting?.workloads ?? []).map((w) => [w.name, w]));

  return (
    <div className="service-detail-page">
      {header}
      {error && (
        <div className="inline-alert inline-alert-danger" data-testid="load-error">
          {error.code === 404 && !/no console API/.test(error.message)
            ? `Service ${name} was not found in namespace ${ns}.`
            : `Could not load service ${name}: ${error.message}`}
        </div>
      )}
      {!svc && !error && <div className="empty">Loading…</div>}
      {svc && (
        <div className="detail-grid">
          <div className="detail-col">
            <section className="panel">
              <h3>Service</h3>
              <dl className="props">
                <dt>Name</dt><dd>{svc.name}</dd>
                <dt>Namespace</dt><dd>{svc.namespace}</dd>
                <dt>Labels</dt><dd><Labels labels={svc.labels} /></dd>
                <dt>Selector</dt><dd><Labels labels={svc.selector} empty="No selector" /></dd>
                <dt>Type</dt><dd>{svc.type ?? "–"}</dd>
                <dt>Cluster IP</dt><dd>{svc.clusterIP ?? "–"}</dd>
                <dt>Health</dt><dd>{svc.health ? <HealthIcon status={svc.health.status} label /> : "–"}</dd>
              </dl>
            </section>
            <section className="panel panel-table">
              <h3>Ports</h3>
              <table className="list" data-testid="ports">
                <thead><tr><th>Name</th><th>Port</th><th>Protocol</th><th>Target port</th></tr></thead>
                <tbody>
                  {(svc.ports ?? []).map((p, i) => (
                    <tr key={i}><td>{p.name || "–"}</td><td>{p.port}</td><td>{p.protocol ?? "TCP"}</td><td>{p.targetPort ?? p.port}</td></tr>
                  ))}
                  {(svc.ports ?? []).length === 0 && <tr><td colSpan={4} className="empty">No ports</td></tr>}
                </tbody>
              </table>
            </section>
          </div>
          <div className="detail-col">
            <section className="panel panel-table">
              <h3>Workloads</h3>
              <table className="list" data-testid="service-workloads">
                <thead><tr><th>Name</th><th>App</th><th>Version</th>{shifting && <th>Traffic weight</th>}</tr></thead>
                <tbody>
                  {(svc.workloads ?? []).map((w) => (
                    <tr key={w.name} data-testid={`row-${w.name}`}>
                      <td><KindBadge kind="Workload" /><Link to={`/namespaces/${enc(ns)}/workloads/${enc(w.name)}`}>{w.name}</Link></td>
                      <td>{w.app ?? "–"}</td>
                      <td>{w.version ? <span className="pill">{w.version}</span> : "–"}</td>
                      {shifting && <td>{versions.has(w.name) ? `${versions.get(w.name)!.weight} %` : "–"}</td>}
                    </tr>
                  ))}
                  {(svc.workloads ?? []).length === 0 && <tr><td colSpan={4} className="empty">No workloads match the selector</td></tr>}
                </tbody>
              </table>
            </section>
            <section className="panel panel-table">
              <h3>Istio Config</h3>
              <table className="list" data-testid="service-istio-config">
                <thead><tr><th>Name</th><th>Type</th><th>Configuration</th><th /></tr></thead>
                <tbody>
                  {configRows.map((r) => (
                    <tr key={`${r.kind}/${r.name}`} data-testid={configIds.get(`${ns}/${r.kind}/${r.name}`)} data-kind={r.kind} data-name={r.name}>
                      <td><KindBadge kind={r.kind} /><Link to={detailPath(ns, r.kind, r.name)}>{r.name}</Link></td>
                      <td>{r.kind}</td>
                      <td><ValidationIcon validation={r.item?.validation} /></td>
                      <td>{r.item?.labels?.["kiali_wizard"] ? <span className="pill" title="Generated by a Kiali wizard">wizard: {r.item.labels["kiali_wizard"]}</span> : null}</td>
                    </tr>
                  ))}
                  {configRows.length === 0 && <tr><td colSpan={4} className="empty">No VirtualService or DestinationRule for this service. Use Actions › Traffic Shifting to create them.</td></tr>}
                </tbody>
              </table>
            </section>
          </div>
        </div>
      )}
      {wizardOpen && <TrafficShiftingWizard namespace={ns} service={name} onClose={() => setWizardOpen(false)} onApplied={load} />}
      {confirmDelete && (
        <ConfirmDialog title="Delete Traffic Routing" busy={deleting}
          message={<p>This deletes the Istio config generated for service <strong>{name}</strong>:{" "}
            {[shifting?.virtualService && `VirtualService ${shifting.virtualService}`, shifting?.destinationRule && `DestinationRule ${shifting.destinationRule}`].filter(Boolean).join(" and ")}.
            Traffic will be routed without them.</p>}
          onConfirm={() => void deleteRouting()} onCancel={() => setConfirmDelete(false)} />
      )}
    </div>
  );
}
