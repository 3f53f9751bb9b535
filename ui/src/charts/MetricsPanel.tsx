// The Inbound / Outbound Metrics tabs of the workload page: four charts, a period and an auto refresh.
import { useCallback, useEffect, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { api, enc } from "../api";
import { onLoggedIn } from "../auth";
import MetricChart from "./MetricChart";
import { DURATIONS, stepFor, type MetricsResponse } from "./format";

const REFRESH = [{ v: 0, label: "Pause" }, { v: 15, label: "Every 15s" }, { v: 30, label: "Every 30s" }, { v: 60, label: "Every 1m" }];

export default function MetricsPanel({ namespace, workload, direction }: { namespace: string; workload: string; direction: "inbound" | "outbound" }) {
  const [params, setParams] = useSearchParams();
  const duration = DURATIONS.some((d) => d.value === params.get("duration")) ? params.get("duration")! : "10m";
  const [refresh, setRefresh] = useState(15);
  const [data, setData] = useState<MetricsResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [updated, setUpdated] = useState<Date | null>(null);

  const load = useCallback(() => {
    setLoading(true);
    api.get<MetricsResponse>(`/api/namespaces/${enc(namespace)}/workloads/${enc(workload)}/metrics?direction=${direction}&duration=${duration}&step=${stepFor(duration)}`)
      .then((d) => { setData(d); setError(null); setUpdated(new Date()); })
      .catch((e: Error) => setError(e.message))
      .finally(() => setLoading(false));
  }, [namespace, workload, direction, duration]);

  useEffect(() => { setData(null); load(); }, [load]);
  useEffect(() => onLoggedIn(load), [load]); // reload what a 401 left empty
  useEffect(() => {
    if (!refresh) return;
    const t = setInterval(load, refresh * 1000);
    return () => clearInterval(t);
  }, [load, refresh]);

  const setDuration = (v: string) => setParams((p) => { const n = new URLSearchParams(p); n.set("duration", v); return n; }, { replace: true });
  return (
    <div data-testid={`metrics-${direction}`}>
      <div className="toolbar">
        <span className="muted small">{direction === "inbound" ? "Reported by the destination proxy (requests into this workload)" : "Reported by the source proxy (requests sent by this workload)"}</span>
        <span className="toolbar-spacer" />
        <label>
          Period
          <select data-testid="metrics-duration" value={duration} onChange={(e) => setDuration(e.target.value)}>
            {DURATIONS.map((d) => <option key={d.value} value={d.value}>{d.label}</option>)}
          </select>
        </label>
        <label>
          Refresh
          <select data-testid="metrics-refresh" value={refresh} onChange={(e) => setRefresh(Number(e.target.value))}>
            {REFRESH.map((r) => <option key={r.v} value={r.v}>{r.label}</option>)}
          </select>
        </label>
        <button onClick={load} disabled={loading}>{loading ? "Loading…" : "Refresh"}</button>
      </div>
      {error && <div className="inline-alert inline-alert-danger" data-testid="metrics-error">Could not load {direction} metrics: {error}</div>}
      {!data && !error && <div className="empty">Loading metrics…</div>}
      {data && (
        <div className="charts-grid">
          {data.charts.map((c) => <MetricChart key={c.name} chart={c} />)}
        </div>
      )}
      {updated && <div className="logs-status">Last updated {updated.toLocaleTimeString()}</div>}
    </div>
  );
}
