import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, enc } from "../api";
import PageHeader from "../components/PageHeader";
import { detailPath } from "../components/istio";
import { useToast } from "../components/Toast";
import { useApiData } from "../components/useApiData";
import { PHASE_ICONS, RUN_ICONS, stepText, weightSteps, type RolloutDetail } from "../rollouts/types";
import "../components/details.css";
import "../rollouts/rollouts.css";

// One Argo Rollout: its steps, the canary weight over time, revisions and analysis runs with every measured
// value and verdict, and the buttons kubectl argo rollouts has (promote, abort, retry, pause, resume).

function WeightChart({ history }: { history: RolloutDetail["weightHistory"] }) {
  const pts = weightSteps(history, Date.now());
  if (pts.length < 2) return <div className="empty">No weight change recorded yet.</div>;
  const W = 520, H = 120, t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
  const x = (t: number) => 30 + ((t - t0) / (t1 - t0)) * (W - 40);
  const y = (w: number) => 10 + (1 - w / 100) * (H - 30);
  const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.w).toFixed(1)}`).join(" ");
  return (
    <svg className="weight-chart" width={W} height={H} role="img" aria-label="Canary weight over time" data-testid="weight-chart">
      {[0, 50, 100].map((w) => <g key={w}><line x1={30} x2={W - 10} y1={y(w)} y2={y(w)} className="grid" />
        <text x={24} y={y(w) + 4} textAnchor="end">{w}</text></g>)}
      <path d={d} className="weight-line" />
      {history.map((h, i) => <circle key={i} cx={x(Date.parse(h.time))} cy={y(h.weight)} r={3} className="weight-dot"><title>{`${h.weight}% at ${h.time}`}</title></circle>)}
    </svg>
  );
}

export default function RolloutDetailPage() {
  const { ns = "", name = "" } = useParams();
  const toast = useToast();
  const [busy, setBusy] = useState("");
  const { data: ro, error, reload } = useApiData<RolloutDetail>(`/api/namespaces/${enc(ns)}/rollouts/${enc(name)}`, 3000);

  const act = async (action: string) => {
    setBusy(action);
    try {
      const r = await api.post<{ message: string }>(`/api/namespaces/${enc(ns)}/rollouts/${enc(name)}/${action}`, {});
      toast("success", r.message);
      reload();
    } catch (e) {
      toast("danger", `Could not ${action} rollout ${name}`, (e as Error).message);
    } finally {
      setBusy("");
    }
  };
  const button = (action: string, label: string, danger = false) => (
    <button key={action} type="button" className={danger ? "rollout-btn rollout-btn-danger" : "rollout-btn"} disabled={!!busy} onClick={() => void act(action)}
            data-testid={`rollout-${action}`}>{label}</button>
  );
  const crumbs = [{ label: "Rollouts", to: `/rollouts?namespace=${enc(ns)}` }, { label: `Namespace: ${ns}` }, { label: `Rollout: ${name}` }];
  return (
    <div className="rollout-detail-page">
      <PageHeader crumbs={crumbs} kind="Rollout" title={name}
        actions={ro ? [button("promote", "Promote"), ro.aborted ? button("retry", "Retry") : button("abort", "Abort", true),
          ro.paused ? button("resume", "Resume") : button("pause", "Pause")] : undefined}>
        {ro && <span className={`phase phase-${ro.phase}`} data-testid="rollout-phase">{PHASE_ICONS[ro.phase] ?? "?"} {ro.phase}</span>}
      </PageHeader>
      {error && <div className="inline-alert inline-alert-danger" data-testid="load-error">Could not load rollout {name}: {error.message}</div>}
      {!ro && !error && <div className="empty">Loading…</div>}
      {ro && (
        <div className="detail-grid">
          <div className="detail-col">
            <section className="panel">
              <h3>Status</h3>
              <dl className="props">
                <dt>Message</dt><dd data-testid="rollout-message">{ro.message || "–"}</dd>
                <dt>Strategy</dt><dd>{ro.strategy}</dd>
                <dt>Step</dt><dd data-testid="rollout-step">{stepText(ro)}</dd>
                <dt>Set weight</dt><dd data-testid="rollout-set-weight">{ro.setWeight}</dd>
                <dt>Actual weight</dt><dd data-testid="rollout-actual-weight">{ro.actualWeight ?? "–"}</dd>
                <dt>Replicas</dt><dd>{ro.replicas.ready} ready, {ro.replicas.updated} updated, {ro.replicas.desired} desired</dd>
                <dt>Routing</dt><dd>{ro.virtualServices.map((v) => (
                  <Link key={v} className="routing-link" to={detailPath(ns, "VirtualService", v)}>VirtualService {v}</Link>))}
                  {ro.destinationRule && <Link className="routing-link" to={detailPath(ns, "DestinationRule", ro.destinationRule)}>DestinationRule {ro.destinationRule}</Link>}
                  {!ro.virtualServices.length && !ro.destinationRule && "–"}</dd>
              </dl>
            </section>
            <section className="panel">
              <h3>Steps</h3>
              <ol className="rollout-steps" data-testid="rollout-steps">
                {ro.steps.map((s) => <li key={s.index} className={`step step-${s.state}`} data-state={s.state}>{s.text}</li>)}
              </ol>
            </section>
            <section className="panel">
              <h3>Canary weight over time</h3>
              <WeightChart history={ro.weightHistory} />
            </section>
          </div>
          <div className="detail-col">
            <section className="panel panel-table">
              <h3>Revisions</h3>
              <table className="list" data-testid="rollout-replicasets">
                <thead><tr><th>Revision</th><th>ReplicaSet</th><th>Role</th><th>Pods</th><th>Images</th></tr></thead>
                <tbody>
                  {ro.replicaSets.map((rs) => (
                    <tr key={rs.name}><td>{rs.revision ?? "–"}</td><td>{rs.name}</td>
                      <td>{rs.role ? <span className={`pill pill-${rs.role}`}>{rs.role}</span> : "–"}</td>
                      <td>{rs.ready}/{rs.replicas}</td><td>{rs.images.join(", ")}</td></tr>
                  ))}
                  {!ro.replicaSets.length && <tr><td colSpan={5} className="empty">No ReplicaSets yet.</td></tr>}
                </tbody>
              </table>
            </section>
            <section className="panel panel-table">
              <h3>Analysis runs</h3>
              {ro.analysisRuns.map((run) => (
                <div key={run.name} className="analysis-run" data-testid={`analysis-${run.name}`}>
                  <div className="analysis-run-title">{RUN_ICONS[run.phase] ?? "?"} {run.name} <span className="muted">{run.phase}{run.message ? `: ${run.message}` : ""}</span></div>
                  <table className="list">
                    <thead><tr><th>Metric</th><th>Time</th><th>Value</th><th>Verdict</th></tr></thead>
                    <tbody>
                      {run.metrics.flatMap((m) => m.measurements.map((x, i) => (
                        <tr key={`${m.name}-${i}`}><td>{m.name}</td><td>{x.finishedAt ?? x.startedAt ?? "–"}</td>
                          <td className="measured" title={x.message}>{x.value ?? "–"}</td><td>{RUN_ICONS[x.phase] ?? "?"} {x.phase}</td></tr>
                      )))}
                    </tbody>
                  </table>
                </div>
              ))}
              {!ro.analysisRuns.length && <div className="empty">No analysis runs.</div>}
            </section>
            <section className="panel panel-table">
              <h3>Events</h3>
              <table className="list" data-testid="rollout-events">
                <thead><tr><th>Time</th><th>Reason</th><th>Message</th></tr></thead>
                <tbody>
                  {ro.events.map((e, i) => <tr key={i} className={e.type === "Warning" ? "event-warning" : ""}><td>{e.time}</td><td>{e.reason}</td><td>{e.message}</td></tr>)}
                  {!ro.events.length && <tr><td colSpan={3} className="empty">No events.</td></tr>}
                </tbody>
              </table>
            </section>
          </div>
        </div>
      )}
    </div>
  );
}
