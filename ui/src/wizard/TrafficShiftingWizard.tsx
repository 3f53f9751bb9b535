// Kiali's Traffic Shifting wizard: one weight slider per versioned workload, always totalling 100 %.
import { useEffect, useMemo, useRef, useState } from "react";
import { api, enc, type ApiError } from "../api";
import { Modal } from "../components/Modal";
import StatusIcon from "../components/StatusIcon";
import { useToast } from "../components/Toast";
import { distributeEvenly, normalize, rebalance, total, type WeightRow } from "./weights";
import { wizardPreviewYaml } from "./preview";

export interface TrafficShiftingInfo {
  service: string; namespace: string; host?: string;
  workloads: { name: string; version: string; weight: number }[];
  virtualService: string | null; destinationRule: string | null; wizard: boolean;
}

export const trafficShiftingPath = (ns: string, svc: string) => `/api/namespaces/${enc(ns)}/services/${enc(svc)}/traffic-shifting`;

interface Row extends WeightRow { version: string }

function LockIcon({ locked }: { locked: boolean }) {
  return (
    <svg width="12" height="12" viewBox="0 0 16 16" aria-hidden="true">
      <rect x="2.5" y="7" width="11" height="8" rx="1.5" fill="currentColor" />
      <path d={locked ? "M5 7V5a3 3 0 016 0v2" : "M5 7V5a3 3 0 015.8-1"} stroke="currentColor" strokeWidth="1.8" fill="none" />
    </svg>
  );
}

/**
 * A range or number input that reports every value the browser sets, including values set by script
 * followed by an `input`/`change` event (React's own onChange ignores those).
 */
function WeightInput(props: { type: "range" | "number"; value: string; testId: string; label: string;
  onValue: (raw: string) => void; onFocus: () => void; onBlur: () => void }) {
  const ref = useRef<HTMLInputElement>(null);
  const cb = useRef(props.onValue);
  cb.current = props.onValue;
  useEffect(() => {
    const el = ref.current!;
    const h = () => cb.current(el.value);
    el.addEventListener("input", h);
    el.addEventListener("change", h);
    return () => { el.removeEventListener("input", h); el.removeEventListener("change", h); };
  }, []);
  return (
    <input ref={ref} type={props.type} min={0} max={100} step={1} value={props.value} data-testid={props.testId}
      aria-label={props.label} onChange={() => {}} onFocus={props.onFocus} onBlur={props.onBlur} onPointerDown={props.onFocus} />
  );
}

export default function TrafficShiftingWizard({ namespace, service, onClose, onApplied }: {
  namespace: string; service: string; onClose: () => void; onApplied: () => void;
}) {
  const toast = useToast();
  const [info, setInfo] = useState<TrafficShiftingInfo | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [rows, setRows] = useState<Row[]>([]);
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<string | null>(null);
  // Weights when the user started moving a slider: a drag rebalances from there, not from its own steps.
  const base = useRef<{ index: number; rows: Row[] } | null>(null);

  useEffect(() => {
    api.get<TrafficShiftingInfo>(trafficShiftingPath(namespace, service))
      .then((d) => {
        setInfo(d);
        const ws = normalize(d.workloads.map((w) => w.weight));
        setRows(d.workloads.map((w, i) => ({ name: w.name, version: w.version, weight: ws[i], locked: false })));
      })
      .catch((e: Error) => setLoadError(e.message));
  }, [namespace, service]);

  const startMove = (index: number) => { if (!base.current || base.current.index !== index) base.current = { index, rows }; };
  const endMove = (name: string) => {
    base.current = null;
    setDrafts((d) => { if (!(name in d)) return d; const n = { ...d }; delete n[name]; return n; });
  };

  const setWeight = (index: number, raw: string, fromNumber: boolean) => {
    const name = rows[index].name;
    if (fromNumber) setDrafts((d) => ({ ...d, [name]: raw }));
    if (raw.trim() === "") return;
    const v = Number(raw);
    if (!Number.isFinite(v)) return;
    const from = base.current && base.current.index === index ? base.current.rows : rows;
    const next = rebalance(from, index, v);
    setRows((rs) => rs.map((r, i) => ({ ...r, weight: next[i] })));
    if (fromNumber && next[index] !== Math.round(v)) setDrafts((d) => ({ ...d, [name]: String(next[index]) }));
  };

  const toggleLock = (index: number) => { base.current = null; setRows((rs) => rs.map((r, i) => (i === index ? { ...r, locked: !r.locked } : r))); };
  const evenly = () => { base.current = null; const w = distributeEvenly(rows); setRows((rs) => rs.map((r, i) => ({ ...r, weight: w[i] }))); };

  const sum = total(rows.map((r) => r.weight));
  const preview = useMemo(() => (info ? wizardPreviewYaml(service, namespace, info.host, rows) : ""), [info, rows, service, namespace]);
  const replacing = info && !info.wizard && (info.virtualService || info.destinationRule);
  const updating = !!info && !!(info.virtualService || info.destinationRule);

  const submit = async () => {
    if (!info || sum !== 100) return;
    setSubmitting(true);
    setSubmitError(null);
    try {
      await api.post(trafficShiftingPath(namespace, service), { workloads: rows.map((r) => ({ name: r.name, weight: r.weight })) });
      toast("success", `Istio Config ${updating ? "updated" : "created"} for ${service} service`,
        `Traffic Shifting: ${rows.filter((r) => r.weight > 0).map((r) => `${r.version} ${r.weight}%`).join(", ")}`);
      onApplied();
      onClose();
    } catch (e) {
      const err = e as ApiError;
      toast("danger", `Could not ${updating ? "update" : "create"} Istio Config for ${service} service`, err.message);
      setSubmitError(err.message);
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <Modal title="Traffic Shifting" testId="wizard" width={780} onClose={onClose}
      footer={<>
        <button className="primary" data-testid="wizard-submit" disabled={!info || submitting || sum !== 100 || rows.length === 0} onClick={() => void submit()}>
          {submitting ? "Applying…" : updating ? "Update" : "Create"}
        </button>
        <button onClick={onClose}>Cancel</button>
      </>}>
      <p className="muted small">Service <strong>{service}</strong> in namespace <strong>{namespace}</strong>: weights of the traffic sent to each version.</p>
      {loadError && <div className="inline-alert inline-alert-danger" data-testid="wizard-error">Could not load the workloads of {service}: {loadError}</div>}
      {!info && !loadError && <div className="empty">Loading…</div>}
      {replacing && (
        <div className="inline-alert inline-alert-warning" data-testid="wizard-replace-notice">
          <StatusIcon kind="warning" />
          <div>
            This service already has {[info.virtualService && `VirtualService ${info.virtualService}`, info.destinationRule && `DestinationRule ${info.destinationRule}`].filter(Boolean).join(" and ")},
            {" "}not created by a wizard. Applying Traffic Shifting replaces {info.virtualService && info.destinationRule ? "them" : "it"} with
            the generated VirtualService and DestinationRule <strong>{service}</strong>.
          </div>
        </div>
      )}
      {info && rows.length === 0 && <div className="empty">No versioned workloads behind {service}: Traffic Shifting needs workloads with a <code>version</code> label.</div>}
      {info && rows.length > 0 && (
        <>
          <table className="wizard-table">
            <thead><tr><th>Workload</th><th>Version</th><th style={{ width: "55%" }}>Traffic Weight</th><th>Lock</th></tr></thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={r.name} data-testid={`wizard-row-${r.name}`}>
                  <td>{r.name}</td>
                  <td><span className="pill">{r.version}</span></td>
                  <td>
                    <div className="weight-cell">
                      <WeightInput type="range" value={String(r.weight)} testId={`weight-${r.name}`} label={`Weight of ${r.name}`}
                        onValue={(v) => setWeight(i, v, false)} onFocus={() => startMove(i)} onBlur={() => endMove(r.name)} />
                      <WeightInput type="number" value={drafts[r.name] ?? String(r.weight)} testId={`weight-input-${r.name}`} label={`Weight of ${r.name} (%)`}
                        onValue={(v) => setWeight(i, v, true)} onFocus={() => startMove(i)} onBlur={() => endMove(r.name)} />
                      <span className="muted">%</span>
                    </div>
                  </td>
                  <td>
                    <label className={`lock-toggle${r.locked ? " locked" : ""}`} title={r.locked ? "Unlock this weight" : "Lock this weight"}>
                      <input type="checkbox" data-testid={`lock-${r.name}`} checked={r.locked} onChange={() => toggleLock(i)} aria-label={`Lock ${r.name}`} />
                      <LockIcon locked={r.locked} />
                    </label>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="wizard-total">
            <button data-testid="wizard-evenly" onClick={evenly}>Evenly distribute</button>
            <span data-testid="wizard-total" className={sum === 100 ? "muted" : "error-text"}>Total: {sum} %</span>
          </div>
          {submitError && <div className="inline-alert inline-alert-danger" data-testid="wizard-submit-error"><StatusIcon kind="error" /><div>{submitError}</div></div>}
          <details className="preview" data-testid="wizard-preview">
            <summary>Preview the DestinationRule and VirtualService</summary>
            <pre>{preview}</pre>
          </details>
        </>
      )}
    </Modal>
  );
}
